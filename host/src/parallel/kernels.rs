//! The block passes of an executor, chosen once when it is planned (rustfft's planner idea):
//! the core's portable lane kernels over the counts or over their [`Compact`] copy, the same
//! code compiled a second time for AVX2, or the AVX2 intrinsics written for [`Compact`]
//! storage. Every choice does the same IEEE operations in the same order (Rust never fuses a
//! multiply and an add), so the results do not depend on the choice or on the CPU.

use super::compact::Compact;
use edxs_core::solver::{Pass, PixelCounts};
use edxs_core::{Counts, SolverError};
use std::ops::Range;

/// Which kernels a [`ParallelExec`](super::ParallelExec) may use. Every choice gives
/// bit-identical results; the switches exist for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// Keep a compact copy of the counts (16-bit channels, f32 counts) when that is exact.
    pub compact: bool,
    /// Use the AVX2 kernels when the CPU has AVX2.
    pub avx2: bool,
}

impl Default for Kernels {
    fn default() -> Self {
        Kernels {
            compact: true,
            avx2: true,
        }
    }
}

/// The two passes over the non-zeros of a block of pixels, over storage the kernel owns.
pub(super) trait BlockKernel: Sync {
    /// [`Pass::h_r_block`] over `range`.
    fn h_r(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError>;

    /// [`Pass::loss_data_block`] over `range`.
    fn loss_data(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError>;
}

/// The core's portable kernels over any storage.
struct Portable<C>(C);

impl<C: PixelCounts<f64>> BlockKernel for Portable<C> {
    fn h_r(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError> {
        pass.h_r_block(&self.0, range, data, out, r, acc)
    }

    fn loss_data(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError> {
        pass.loss_data_block(&self.0, range, data, part, acc)
    }
}

/// The core's portable kernels compiled for AVX2; only built when the CPU has it.
#[cfg(target_arch = "x86_64")]
struct PortableAvx2<C>(C);

#[cfg(target_arch = "x86_64")]
impl<C: PixelCounts<f64>> BlockKernel for PortableAvx2<C> {
    fn h_r(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError> {
        // SAFETY: `plan` builds this kernel only when the CPU reports AVX2.
        unsafe { h_r_avx2(pass, &self.0, range, data, out, r, acc) }
    }

    fn loss_data(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError> {
        // SAFETY: `plan` builds this kernel only when the CPU reports AVX2.
        unsafe { loss_data_avx2(pass, &self.0, range, data, part, acc) }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn h_r_avx2<C: PixelCounts<f64>>(
    pass: &Pass<'_, f64>,
    y: &C,
    range: Range<usize>,
    data: Option<&[f64]>,
    out: &mut [f64],
    r: &mut [f64],
    acc: &mut [f64],
) -> Result<(), SolverError> {
    pass.h_r_block(y, range, data, out, r, acc)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn loss_data_avx2<C: PixelCounts<f64>>(
    pass: &Pass<'_, f64>,
    y: &C,
    range: Range<usize>,
    data: &mut [f64],
    part: &mut [f64],
    acc: &mut [f64],
) -> Result<(), SolverError> {
    pass.loss_data_block(y, range, data, part, acc)
}

/// The AVX2 intrinsics over [`Compact`] counts; only built when the CPU has AVX2.
#[cfg(target_arch = "x86_64")]
struct CompactAvx2(Compact);

#[cfg(target_arch = "x86_64")]
impl BlockKernel for CompactAvx2 {
    fn h_r(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError> {
        // SAFETY: `plan` builds this kernel only when the CPU reports AVX2, over the solver's
        // own counts.
        unsafe { super::avx2::h_r(pass, &self.0, range, data, out, r, acc) }
    }

    fn loss_data(
        &self,
        pass: &Pass<'_, f64>,
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
        acc: &mut [f64],
    ) -> Result<(), SolverError> {
        // SAFETY: as in `h_r`.
        unsafe { super::avx2::loss_data(pass, &self.0, range, data, part, acc) }
    }
}

/// Picks the kernels for counts `y` once: the compact copy when `want.compact` and it is
/// exact, AVX2 when `want.avx2` and the CPU has it. Returns the kernel and what it uses.
pub(super) fn plan<'y>(y: Counts<'y, f64>, want: Kernels) -> (Box<dyn BlockKernel + 'y>, Kernels) {
    let compact = if want.compact {
        Compact::pack(&y)
    } else {
        None
    };
    let avx2 = want.avx2 && has_avx2();
    let used = Kernels {
        compact: compact.is_some(),
        avx2,
    };
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        let kernel: Box<dyn BlockKernel + 'y> = match compact {
            Some(c) => Box::new(CompactAvx2(c)),
            None => Box::new(PortableAvx2(y)),
        };
        return (kernel, used);
    }
    let kernel: Box<dyn BlockKernel + 'y> = match compact {
        Some(c) => Box::new(Portable(c)),
        None => Box::new(Portable(y)),
    };
    (kernel, used)
}

/// True when the AVX2 kernels can run here.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
