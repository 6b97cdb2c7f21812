//! The H update (espm's `multiplicative_step_h`, log-surrogate algorithm).
//!
//! H ← max(H ⊙ (Dᵀ(Y⊘DH) + λσm) / (Dᵀ1 + μ/(H+ε_reg) + λσm + λ·HΔ + ν), ε) with D = GW, m the
//! row maxima of H and ν the per-pixel simplex multiplier when `simplex_h`.

use super::data::Counts;
use super::params::SimplexSolver;
use super::{laplacian, simplex, Solver, Work};
use crate::float::Float;

impl<T: Float> Solver<'_, T> {
    /// The multiplicative numerator H⊙(Dᵀ(y⊘Dh) + λσm) and denominator of pixel `px`, handed
    /// to `out(component, num, den)`; `acc` holds K values of scratch.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn pixel_terms(
        &self,
        y: &Counts<'_, T>,
        d: &[T],
        colsum_d: &[T],
        max_h: &[T],
        h: &[T],
        px: usize,
        acc: &mut [T],
        mut out: impl FnMut(usize, T, T),
    ) {
        let (k, p) = (self.k, self.p);
        let prm = &self.params;
        let eps = prm.log_shift;
        let lambda = prm.lambda_l;
        let acc = &mut acc[..k];
        acc.iter_mut().for_each(|v| *v = T::ZERO);
        y.for_each_nz(px, |l, yv| {
            let drow = &d[l * k..(l + 1) * k];
            let mut dh = T::ZERO;
            for (c, dv) in drow.iter().enumerate() {
                dh += *dv * h[c * p + px];
            }
            let q = yv / dh.max(eps);
            for (a, dv) in acc.iter_mut().zip(drow) {
                *a += *dv * q;
            }
        });
        for (c, &a) in acc.iter().enumerate() {
            let hv = h[c * p + px];
            let mut num = a;
            let mut den = colsum_d[c] + prm.mu_of(c) / (hv + prm.epsilon_reg);
            if lambda != T::ZERO {
                let reg = lambda * prm.sigma_l * max_h[c];
                num += reg;
                den += reg + lambda * laplacian::apply(prm.laplacian, &h[c * p..(c + 1) * p], px);
            }
            out(c, hv * num, den);
        }
    }

    pub(crate) fn h_step(&self, y: &Counts<'_, T>, h: &mut [T], work: &mut Work<'_, T>) {
        let (k, p) = (self.k, self.p);
        let prm = &self.params;
        let eps = prm.log_shift;
        let lambda = prm.lambda_l;
        let smooth = lambda != T::ZERO;
        let simplex_h = prm.simplex_h && !prm.simplex_w;
        if smooth {
            for (c, mh) in work.max_h.iter_mut().enumerate() {
                *mh = h[c * p..(c + 1) * p].iter().fold(-T::MAX, |a, &v| a.max(v));
            }
        }
        for px in 0..p {
            let (h_new, h_den) = (&mut *work.h_new, &mut *work.h_den);
            self.pixel_terms(
                y,
                work.d,
                work.colsum_d,
                work.max_h,
                h,
                px,
                work.acc,
                |c, num, den| {
                    h_new[c * p + px] = num;
                    h_den[c * p + px] = den;
                },
            );
        }
        if simplex_h {
            match prm.simplex_solver {
                SimplexSolver::Newton => {
                    for px in 0..p {
                        let (num, den) = (&*work.h_new, &*work.h_den);
                        let col = (0..k).map(|c| (num[c * p + px], den[c * p + px]));
                        match simplex::newton(col, k, eps, T::ONE) {
                            Some(nu) => work.bis[px] = nu,
                            None => {
                                // No evidence in this pixel: spread it evenly.
                                for c in 0..k {
                                    work.h_new[c * p + px] = T::ONE;
                                    work.h_den[c * p + px] = T::from_usize(k);
                                }
                                work.bis[px] = T::ZERO;
                            }
                        }
                    }
                }
                SimplexSolver::EspmBisection => {
                    let (nu, rest) = work.bis.split_at_mut(p);
                    let (a, rest) = rest.split_at_mut(p);
                    let (b, f) = rest.split_at_mut(p);
                    simplex::espm_bisection(
                        work.h_new,
                        work.h_den,
                        k,
                        p,
                        eps,
                        T::from_f64(1e-5),
                        nu,
                        a,
                        b,
                        &mut f[..p],
                    );
                }
            }
        }
        for c in 0..k {
            for px in 0..p {
                let i = c * p + px;
                let nu = if simplex_h { work.bis[px] } else { T::ZERO };
                let mut v = (work.h_new[i] / (work.h_den[i] + nu)).max(eps);
                if let Some(fh) = prm.fixed_h {
                    if fh[i] >= T::ZERO {
                        v = fh[i];
                    }
                }
                h[i] = v;
            }
        }
    }
}
