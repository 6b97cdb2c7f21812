//! Detector efficiency D(E): the SDD curve espm ships, interpolated by a not-a-knot spline.

use super::spline;
use crate::error::ModelError;
use crate::float::Float;
use edxs_tables::{SDD_EFFICIENCY, SDD_ENERGIES};

/// Number of knots of the detector curve.
pub(crate) const KNOTS: usize = SDD_ENERGIES.len();

/// First and last tabulated energies of the detector curve (keV).
pub fn detector_range() -> (f64, f64) {
    (SDD_ENERGIES[0], SDD_ENERGIES[KNOTS - 1])
}

/// The detector curve's spline, with its second derivatives living in caller scratch.
pub(crate) struct Detector<'s, T> {
    m: &'s [T],
}

impl<'s, T: Float> Detector<'s, T> {
    /// Solves the spline into `m` (length [`KNOTS`]) using `work` (length [`KNOTS`]).
    pub(crate) fn new(m: &'s mut [T], work: &mut [T]) -> Self {
        spline::second_derivatives(&SDD_ENERGIES, &SDD_EFFICIENCY, m, work);
        Detector { m }
    }

    /// Efficiency at `e` keV; an error outside the tabulated range, as espm (SciPy) raises.
    pub(crate) fn efficiency(&self, e: T) -> Result<T, ModelError> {
        spline::eval(&SDD_ENERGIES, &SDD_EFFICIENCY, self.m, e).ok_or_else(|| {
            let (min, max) = detector_range();
            ModelError::EnergyOutsideDetectorCurve {
                energy: e.to_f64(),
                min,
                max,
            }
        })
    }
}
