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

/// [`BremsstrahlungUpdate`] with the detector efficiency and the elements' attenuation on the
/// axis evaluated once ([`EdxsModel::fill_brems_cache`]) instead of at every update: the same G
/// bit for bit at a fraction of the cost (the spline set-ups and evaluations were most of it).
pub struct CachedBremsstrahlungUpdate<'m, 's, T> {
    model: &'m EdxsModel<'m>,
    norm: Normalisation<T>,
    scratch: &'s mut [T],
    cache: &'s [T],
}

impl<'m, 's, T: Float> CachedBremsstrahlungUpdate<'m, 's, T> {
    /// Fills `cache` ([`EdxsModel::brems_cache_len`] elements) for `model` and returns the
    /// update; `scratch` holds [`EdxsModel::scratch_len`] elements.
    pub fn new(
        model: &'m EdxsModel<'m>,
        norm: Normalisation<T>,
        scratch: &'s mut [T],
        cache: &'s mut [T],
    ) -> Result<Self, ModelError> {
        model.fill_brems_cache(cache, scratch)?;
        Ok(CachedBremsstrahlungUpdate {
            model,
            norm,
            scratch,
            cache,
        })
    }
}

impl<T: Float> GUpdate<T> for CachedBremsstrahlungUpdate<'_, '_, T> {
    fn update(&mut self, g: &mut [T], w: &[T], k: usize) -> Result<(), ModelError> {
        self.model
            .update_bremsstrahlung_cached(&self.norm, w, k, g, self.cache, self.scratch)
    }
}
