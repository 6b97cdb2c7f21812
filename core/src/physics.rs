//! The bridge between the solver and the physics model: espm's `NMF_update` as a [`GUpdate`].

use crate::error::ModelError;
use crate::float::Float;
use crate::model::{EdxsModel, Normalisation};
use crate::solver::GUpdate;

/// Recomputes the bremsstrahlung columns of G from W's composition (absorption of the mixture).
pub struct BremsstrahlungUpdate<'m, 's, T> {
    /// The model G was built from.
    pub model: &'m EdxsModel<'m>,
    /// The divisors returned by [`EdxsModel::build_g`].
    pub norm: Normalisation<T>,
    /// Scratch of [`EdxsModel::scratch_len`] elements.
    pub scratch: &'s mut [T],
}

impl<T: Float> GUpdate<T> for BremsstrahlungUpdate<'_, '_, T> {
    fn update(&mut self, g: &mut [T], w: &[T], k: usize) -> Result<(), ModelError> {
        self.model
            .update_bremsstrahlung(&self.norm, w, k, g, self.scratch)
    }
}
