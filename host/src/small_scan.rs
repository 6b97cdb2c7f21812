//! Whether a spectrum image holds enough counts for its phases to be found reliably. On small
//! low-dose maps the phases found depend on the Poisson draw with every method edxs has (the
//! pipeline and the joint fit each lose a phase in some draws, not the same ones), so no
//! choice of method keeps them all; `decompose` says so rather than returning a lost phase
//! silently.

use crate::io::counts::SpectrumImage;

/// Counts per phase under which a phase may be lost whatever the method. Measured on the
/// paper's maps from espm 1.1.3's simulator (docs/robustness/small_maps.md): at 4 600 to
/// 18 400 counts in all (16×16 to 32×32 at 18 counts/pixel, 1 500 to 6 100 a phase) both
/// the default and the joint fit lost a phase in some of the samplings; from 41 000 (48×48
/// at 18, 13 800 a phase) and on every map at 293 counts/pixel the default kept all three.
pub const MIN_COUNTS_PER_PHASE: f64 = 10_000.0;

/// A one-line note when `img` has fewer than [`MIN_COUNTS_PER_PHASE`] counts for each of
/// `k` phases (None for one phase, which cannot be lost to another).
pub fn few_counts_note(img: &SpectrumImage, k: usize) -> Option<String> {
    let total: f64 = img.values.iter().sum();
    if k < 2 || total >= MIN_COUNTS_PER_PHASE * k as f64 {
        return None;
    }
    Some(format!(
        "{total:.0} counts for {k} phases (under {MIN_COUNTS_PER_PHASE:.0} a phase): at this \
         size and dose the phases found depend on the Poisson draw with any method, and one \
         may be lost or split (README \"Robustness\", small maps)"
    ))
}
