//! The one place a multiplicative-update run's [`SolverParams`] are built, and espm's
//! `normalize` scaling: the pipeline's runs and the Python binding's direct fit both go through
//! here, so their penalties, stopping rule and G model cannot drift apart.

use crate::io::counts::SpectrumImage;
use edxs_core::solver::{GModel, Laplacian, Simplex, SimplexSolver, Stopping};
use edxs_core::SolverParams;

/// How often (in iterations) G is rewritten from W when the bremsstrahlung is updated: espm's
/// `G_update` schedule.
pub const G_UPDATE_EVERY: usize = 3;

/// What one run of the core solver is asked to do, apart from the data and the start.
#[derive(Clone, Copy, Debug)]
pub struct SolverSpec<'a> {
    /// n_components.
    pub k: usize,
    /// μ on the raw counts (one value or one per component).
    pub mu: &'a [f64],
    /// λ_L on the raw counts.
    pub lambda_l: f64,
    /// ε_reg on the raw counts.
    pub epsilon_reg: f64,
    /// The scan's (rows, cols): the Laplacian's grid (none: the identity).
    pub shape: Option<(usize, usize)>,
    /// Which factor sums to one.
    pub simplex: Simplex<'a>,
    /// G is the identity (no model: W is the spectra).
    pub identity_g: bool,
    /// The bremsstrahlung columns of G are rewritten from W every [`G_UPDATE_EVERY`] iterations.
    pub g_update: bool,
    /// W entries held (negative: free).
    pub fixed_w: Option<&'a [f64]>,
    /// H entries held on the raw counts (negative: free).
    pub fixed_h: Option<&'a [f64]>,
    /// The stopping rule's tolerance.
    pub tol: f64,
    /// The iteration budget.
    pub max_iter: usize,
    /// espm's simplex bisection and stopping rule instead of ours.
    pub espm: bool,
}

impl<'a> SolverSpec<'a> {
    /// G's update period: [`G_UPDATE_EVERY`] when G is updated, 0 (never) otherwise.
    pub fn update_every(&self) -> usize {
        if self.g_update && !self.identity_g {
            G_UPDATE_EVERY
        } else {
            0
        }
    }

    /// The core's parameters for this run.
    pub fn params(&self) -> SolverParams<'a, f64> {
        let mut params = SolverParams::new(self.k, &[]);
        params.mu = self.mu;
        params.epsilon_reg = self.epsilon_reg;
        params.lambda_l = self.lambda_l;
        params.laplacian = match self.shape {
            Some((rows, cols)) => Laplacian::Grid { rows, cols },
            None => Laplacian::Identity,
        };
        params.g = if self.identity_g {
            GModel::Identity
        } else {
            GModel::Matrix {
                update_every: self.update_every(),
            }
        };
        params.simplex = self.simplex;
        params.fixed_w = self.fixed_w;
        params.fixed_h = self.fixed_h;
        params.tol = self.tol;
        params.max_iter = self.max_iter;
        (params.stopping, params.simplex_solver) = if self.espm {
            (Stopping::Espm, SimplexSolver::EspmBisection)
        } else {
            (Stopping::Relative, SimplexSolver::Newton)
        };
        params
    }
}

/// espm's `normalize`, which fits f·X with f making the mean pixel total K. Scaling μ, λ and
/// ε_reg instead leaves the counts integers (the compact kernels need exact f32 counts) and
/// gives the same iterates: the same W, and H/f.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Normalize {
    /// The factor f (1 when off or when the image has no counts).
    pub f: f64,
}

impl Normalize {
    /// The scaling of `img` for `k` components, `on` or off.
    pub fn of(img: &SpectrumImage, k: usize, on: bool) -> Self {
        let mean = img.mean();
        let f = if on && mean > 0.0 {
            k as f64 / (mean * img.channels as f64)
        } else {
            1.0
        };
        Normalize { f }
    }

    /// μ/f, λ·f and ε_reg/f: the penalties on the raw counts.
    pub fn regularisation(
        &self,
        mu: &[f64],
        lambda: f64,
        epsilon_reg: f64,
    ) -> (Vec<f64>, f64, f64) {
        let f = self.f;
        (
            mu.iter().map(|m| m / f).collect(),
            lambda * f,
            epsilon_reg / f,
        )
    }

    /// W/f and H·f: a raw-count fit as espm returns it on f·X.
    pub fn unscale(&self, w: &mut [f64], h: &mut [f64]) {
        if self.f != 1.0 {
            w.iter_mut().for_each(|v| *v /= self.f);
            h.iter_mut().for_each(|v| *v *= self.f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2x2 pixels, 3 channels, 24 counts: the mean pixel total is 6.
    fn img() -> SpectrumImage {
        let dense = [1.0, 2.0, 3.0, 0.0, 6.0, 0.0, 4.0, 1.0, 1.0, 2.0, 2.0, 2.0];
        SpectrumImage::from_dense("t", &dense, 4, 3, Some((2, 2))).unwrap()
    }

    #[test]
    fn normalize_makes_the_mean_pixel_total_k_and_unscales_back() {
        let n = Normalize::of(&img(), 3, true);
        assert_eq!(n.f, 0.5);
        let (mu, lambda, eps) = n.regularisation(&[0.1, 0.2], 4.0, 1.0);
        assert_eq!((mu, lambda, eps), (vec![0.2, 0.4], 2.0, 2.0));
        let (mut w, mut h) = (vec![1.0, 3.0], vec![2.0, 8.0]);
        n.unscale(&mut w, &mut h);
        assert_eq!((w, h), (vec![2.0, 6.0], vec![1.0, 4.0]));
        // Off, or no counts to scale by: the raw units, untouched.
        assert_eq!(Normalize::of(&img(), 3, false).f, 1.0);
        let empty = SpectrumImage::from_dense("t", &[0.0; 6], 2, 3, None).unwrap();
        assert_eq!(Normalize::of(&empty, 3, true).f, 1.0);
    }

    #[test]
    fn params_follow_the_spec() {
        let rows = [0, 1];
        let spec = SolverSpec {
            k: 2,
            mu: &[0.3],
            lambda_l: 2.0,
            epsilon_reg: 0.5,
            shape: Some((4, 5)),
            simplex: Simplex::W { rows: &rows },
            identity_g: false,
            g_update: true,
            fixed_w: None,
            fixed_h: None,
            tol: 1e-6,
            max_iter: 7,
            espm: true,
        };
        let p = spec.params();
        assert_eq!((p.n_components, p.mu, p.max_iter), (2, &[0.3][..], 7));
        assert_eq!((p.lambda_l, p.epsilon_reg, p.tol), (2.0, 0.5, 1e-6));
        assert_eq!(p.laplacian, Laplacian::Grid { rows: 4, cols: 5 });
        assert_eq!(p.simplex, Simplex::W { rows: &rows });
        assert_eq!(p.g, GModel::Matrix { update_every: 3 });
        assert_eq!(
            (p.stopping, p.simplex_solver),
            (Stopping::Espm, SimplexSolver::EspmBisection)
        );
        let ours = SolverSpec {
            shape: None,
            g_update: false,
            espm: false,
            ..spec
        }
        .params();
        assert_eq!(ours.laplacian, Laplacian::Identity);
        assert_eq!(ours.g, GModel::Matrix { update_every: 0 });
        assert_eq!(
            (ours.stopping, ours.simplex_solver),
            (Stopping::Relative, SimplexSolver::Newton)
        );
        let plain = SolverSpec {
            identity_g: true,
            ..spec
        };
        assert_eq!(plain.update_every(), 0);
        assert_eq!(plain.params().g, GModel::Identity);
    }
}
