//! Iterations spread over threads by pixel groups, with results that do not depend on the
//! number of threads: the groups are fixed by the data size alone, and their partial sums are
//! added in group order.
//!
//! Each iteration reads every non-zero twice (see `edxs_core::solver` blocks): the loss pass
//! also leaves each pixel's data term Dᵀ(Y⊘DH) for the next H step, and the H step adds each
//! pixel's share of the W statistics right after updating its abundances, while its non-zeros
//! are still in cache. Every sum is formed in f64.
//!
//! One file per part: `compact` (the counts as 16-bit channels and f32 counts when that is
//! exact), `kernels` (the block passes, chosen once when an executor is planned), `avx2` (the
//! intrinsics for compact counts) and `exec` ([`ParallelExec`], the groups on a rayon pool).

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
mod compact;
mod exec;
mod kernels;

pub use exec::ParallelExec;
pub use kernels::Kernels;

/// Smallest number of pixels per group.
pub const BLOCK: usize = 256;
/// Largest number of groups, i.e. of partial sums of the W statistics and of the loss (a
/// function of the pixel count only, so the reduction order is the same for every thread
/// count).
pub const GROUPS: usize = 16;
