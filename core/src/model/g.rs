//! Building G into a caller buffer, and espm's bremsstrahlung update from a composition W.

use super::absorption::{max_mac_knots, Mac};
use super::bremsstrahlung::{self, BremsScratch};
use super::detector::{self, Detector};
use super::{peaks, spline, Column, EdxsModel};
use crate::error::ModelError;
use crate::float::Float;

/// The divisors G was normalised with; needed to update the bremsstrahlung columns later.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalisation<T> {
    /// Common divisor of all characteristic columns (the mean of their raw sums).
    pub characteristic: T,
    /// Raw sum of b0 (its divisor), if the model has bremsstrahlung.
    pub b0: T,
    /// Raw sum of b1 (its divisor), if the model has bremsstrahlung.
    pub b1: T,
}

impl<T: Float> Normalisation<T> {
    /// The divisor of column `j` of a model with `m` columns, as espm's `model.norm[j]`.
    pub fn divisor(&self, j: usize, m: usize, bremsstrahlung: bool) -> T {
        if bremsstrahlung && j + 2 == m {
            self.b0
        } else if bremsstrahlung && j + 1 == m {
            self.b1
        } else {
            self.characteristic
        }
    }
}

/// Scratch split into the regions the model needs.
struct Regions<'s, T> {
    sdd_m: &'s mut [T],
    work: &'s mut [T],
    mac_m: &'s mut [T],
    mu: &'s mut [T],
}

impl<'a> EdxsModel<'a> {
    /// Length of the scratch buffer [`build_g`](Self::build_g) and
    /// [`update_bremsstrahlung`](Self::update_bremsstrahlung) need.
    pub fn scratch_len(&self) -> usize {
        let mac = if self.params.absorption.is_some() {
            max_mac_knots()
        } else {
            0
        };
        detector::KNOTS + spline::work_len(detector::KNOTS.max(mac)) + mac + self.n_channels()
    }

    fn regions<'s, T: Float>(&self, scratch: &'s mut [T]) -> Result<Regions<'s, T>, ModelError> {
        let needed = self.scratch_len();
        if scratch.len() < needed {
            return Err(ModelError::BufferTooSmall {
                buffer: "scratch",
                needed,
                got: scratch.len(),
            });
        }
        let mac = if self.params.absorption.is_some() {
            max_mac_knots()
        } else {
            0
        };
        let (sdd_m, rest) = scratch.split_at_mut(detector::KNOTS);
        let (work, rest) = rest.split_at_mut(spline::work_len(detector::KNOTS.max(mac)));
        let (mac_m, rest) = rest.split_at_mut(mac);
        let (mu, _) = rest.split_at_mut(self.n_channels());
        Ok(Regions {
            sdd_m,
            work,
            mac_m,
            mu,
        })
    }

    fn check_g<T>(&self, g: &[T]) -> Result<(), ModelError> {
        if g.len() < self.g_len() {
            return Err(ModelError::BufferTooSmall {
                buffer: "g",
                needed: self.g_len(),
                got: g.len(),
            });
        }
        Ok(())
    }

    /// Builds the normalised G into `g[..g_len()]` (row-major L×M) as espm's
    /// `generate_g_matr`, and returns the divisors used.
    pub fn build_g<T: Float>(
        &self,
        g: &mut [T],
        scratch: &mut [T],
    ) -> Result<Normalisation<T>, ModelError> {
        self.check_g(g)?;
        let r = self.regions(scratch)?;
        let p = &self.params;
        let (l, m) = (self.n_channels(), self.n_columns);
        let g = &mut g[..l * m];
        g.iter_mut().for_each(|v| *v = T::ZERO);
        let det = Detector::new(r.sdd_m, &mut *r.work);
        for (j, col) in self.columns().enumerate() {
            if col.is_characteristic() {
                self.fill_characteristic(g, j, col, &det, &mut *r.mac_m, &mut *r.work)?;
            }
        }
        let mut norm = Normalisation {
            characteristic: T::ONE,
            b0: T::ONE,
            b1: T::ONE,
        };
        if p.bremsstrahlung {
            let n = T::from_usize(p.elements.len());
            let uniform = p.elements.iter().map(|e| (e.z(), T::ONE / n));
            let scratch = BremsScratch {
                mu: r.mu,
                mac_m: r.mac_m,
                work: r.work,
            };
            bremsstrahlung::write_columns(
                g,
                m,
                &p.axis,
                T::from_f64(p.e0),
                p.absorption.as_ref(),
                uniform,
                &det,
                scratch,
                (T::ONE, T::ONE),
            )?;
        }
        // Column sums, then espm's normalisation: one common divisor (the mean sum) for the
        // characteristic columns, each bremsstrahlung column by its own sum.
        let n_char = if p.bremsstrahlung { m - 2 } else { m };
        let mut char_sum = T::ZERO;
        for j in 0..m {
            let s = column_sum(g, m, j);
            if !(s > T::ZERO && s.is_finite()) {
                return Err(ModelError::NonFinite {
                    what: "G column sum (a column is empty or overflowed)",
                });
            }
            if j < n_char {
                char_sum += s;
            } else if j == n_char {
                norm.b0 = s;
            } else {
                norm.b1 = s;
            }
        }
        norm.characteristic = char_sum / T::from_usize(n_char);
        for row in g.chunks_exact_mut(m) {
            for (j, v) in row.iter_mut().enumerate() {
                *v /= norm.divisor(j, m, p.bremsstrahlung);
            }
        }
        Ok(norm)
    }

    fn fill_characteristic<T: Float>(
        &self,
        g: &mut [T],
        j: usize,
        col: Column,
        det: &Detector<'_, T>,
        mac_m: &mut [T],
        work: &mut [T],
    ) -> Result<(), ModelError> {
        let p = &self.params;
        let Some(el) = col.element else {
            return Ok(());
        };
        let m = self.n_columns;
        // Characteristic lines are absorbed as if the sample were the pure element (espm).
        let pure = match &p.absorption {
            Some(abs) => {
                let mac = Mac::new(el.z(), mac_m, work)?;
                let rho: T = abs.density_of(core::iter::once((el.z(), T::ONE)));
                Some((abs, mac, rho))
            }
            None => None,
        };
        for line in self.lines_of_column(col) {
            let e = T::from_f64(line.energy);
            let d = det.efficiency(e)?;
            let a = match &pure {
                Some((abs, mac, rho)) => abs.factor(mac.at(e)?, *rho),
                None => T::ONE,
            };
            let fwhm = T::from_f64(p.width_slope) * e + T::from_f64(p.width_intercept);
            let peak = peaks::Peak {
                energy: e,
                fwhm,
                cs: T::from_f64(line.cs),
                d,
                a,
            };
            peaks::add_peak(g, m, j, &p.axis, &peak);
        }
        Ok(())
    }

    /// Recomputes the bremsstrahlung columns of `g` for the composition in W (M×K row-major),
    /// as espm's `NMF_update`: the mean over components of the simplex rows, normalised, used
    /// as (weight) fractions; columns divided by the build-time sums in `norm`.
    pub fn update_bremsstrahlung<T: Float>(
        &self,
        norm: &Normalisation<T>,
        w: &[T],
        k: usize,
        g: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), ModelError> {
        let p = &self.params;
        if !p.bremsstrahlung {
            return Err(ModelError::NoBremsstrahlung);
        }
        if k == 0 {
            return Err(ModelError::ZeroComponents);
        }
        let m = self.n_columns;
        if w.len() < m * k {
            return Err(ModelError::BufferTooSmall {
                buffer: "w",
                needed: m * k,
                got: w.len(),
            });
        }
        self.check_g(g)?;
        let r = self.regions(scratch)?;
        let kf = T::from_usize(k);
        let row_mean = |j: usize| w[j * k..(j + 1) * k].iter().fold(T::ZERO, |s, &v| s + v) / kf;
        let mut total = T::ZERO;
        for j in self.simplex_rows() {
            let c = row_mean(j);
            if !(c >= T::ZERO && c.is_finite()) {
                return Err(ModelError::InvalidComposition);
            }
            total += c;
        }
        if !(total > T::ZERO && total.is_finite()) {
            return Err(ModelError::InvalidComposition);
        }
        let composition = self.simplex_rows().map(|j| {
            let z = self.column(j).and_then(|c| c.element).map_or(0, |e| e.z());
            (z, row_mean(j) / total)
        });
        let det = Detector::new(r.sdd_m, &mut *r.work);
        let scratch = BremsScratch {
            mu: r.mu,
            mac_m: r.mac_m,
            work: r.work,
        };
        bremsstrahlung::write_columns(
            &mut g[..self.g_len()],
            m,
            &p.axis,
            T::from_f64(p.e0),
            p.absorption.as_ref(),
            composition,
            &det,
            scratch,
            (norm.b0, norm.b1),
        )
    }
}

fn column_sum<T: Float>(g: &[T], stride: usize, j: usize) -> T {
    g.chunks_exact(stride).fold(T::ZERO, |s, row| s + row[j])
}
