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
    /// Common divisor of all characteristic columns (the mean of their raw sums, over
    /// `characteristic_scale`).
    pub characteristic: T,
    /// Raw sum of b0 (its divisor, over `brems_scale`), if the model has bremsstrahlung.
    pub b0: T,
    /// Raw sum of b1 (its divisor, over `brems_scale`), if the model has bremsstrahlung.
    pub b1: T,
    /// Power of two the raw characteristic columns were divided by before summing.
    ///
    /// Brings the strongest line to ~1 so that f32 holds G even where espm's MAC spline rings
    /// negative (thick film, low take-off angle) and absorption factors reach 1e59; being a
    /// power of two, it leaves the normalised G bit for bit as espm's.
    pub characteristic_scale: f64,
    /// Power of two (≥ 1) the raw bremsstrahlung columns were divided by before summing.
    pub brems_scale: f64,
}

impl<T: Float> Normalisation<T> {
    /// espm's `model.norm[j]` (the divisor in raw units, cm²-scaled) for column `j` of `m`.
    pub fn raw_divisor(&self, j: usize, m: usize, bremsstrahlung: bool) -> f64 {
        let scale = if bremsstrahlung && j + 2 >= m {
            self.brems_scale
        } else {
            self.characteristic_scale
        };
        self.divisor(j, m, bremsstrahlung).to_f64() * scale
    }

    /// The divisor of column `j` of `m`, applied after the column's power-of-two scale.
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
        // Measure first, then write with cross-sections and absorption factors scaled by powers
        // of two (exact, so the normalised G is unchanged) that bring the largest line to ~1:
        // raw cross-sections (~1e-22 cm²) times espm's overshooting absorption factors (up to
        // 1e59 where its MAC spline rings negative) otherwise leave f32's range.
        let mut scales = LineScales { a: 1.0, cs_a: 0.0 };
        for (j, col) in self.columns().enumerate() {
            if col.is_characteristic() {
                let seen =
                    self.fill_characteristic(None, j, col, &det, &mut *r.mac_m, &mut *r.work)?;
                scales.a = scales.a.max(seen.a);
                scales.cs_a = scales.cs_a.max(seen.cs_a);
            }
        }
        if !(scales.a.is_finite() && scales.cs_a.is_finite()) {
            return Err(ModelError::NonFinite {
                what: "characteristic absorption factor (attenuation spline overshoot)",
            });
        }
        let k_a = power_of_two_above(scales.a);
        let k_cs = if scales.cs_a > 0.0 {
            -libm::frexp(libm::ldexp(scales.cs_a, -k_a)).1
        } else {
            0
        };
        for (j, col) in self.columns().enumerate() {
            if col.is_characteristic() {
                let write = Some((&mut *g, k_cs, k_a));
                self.fill_characteristic(write, j, col, &det, &mut *r.mac_m, &mut *r.work)?;
            }
        }
        let char_scale = libm::ldexp(1.0, k_a - k_cs);
        let mut norm = Normalisation {
            characteristic: T::ONE,
            b0: T::ONE,
            b1: T::ONE,
            characteristic_scale: char_scale,
            brems_scale: 1.0,
        };
        if p.bremsstrahlung {
            let n = T::from_usize(p.elements.len());
            let uniform = p.elements.iter().map(|e| (e.z(), T::ONE / n));
            let scratch = BremsScratch {
                mu: r.mu,
                mac_m: r.mac_m,
                work: r.work,
            };
            let source = bremsstrahlung::Source {
                axis: &p.axis,
                e0: T::from_f64(p.e0),
                absorption: p.absorption.as_ref(),
                composition: uniform,
                tables: bremsstrahlung::Tables::Splines(&det),
            };
            norm.brems_scale =
                bremsstrahlung::write_columns(g, m, source, scratch, (T::ONE, T::ONE), None)?;
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

    /// Adds column `j`'s peaks into `write`'s G with cross-sections times 2^k_cs and absorption
    /// factors times 2^−k_a, or with `write` = `None` only measures; returns the largest A and
    /// cs·A of its lines.
    fn fill_characteristic<T: Float>(
        &self,
        mut write: Option<(&mut [T], i32, i32)>,
        j: usize,
        col: Column,
        det: &Detector<'_, T>,
        mac_m: &mut [T],
        work: &mut [T],
    ) -> Result<LineScales, ModelError> {
        let p = &self.params;
        let mut seen = LineScales { a: 1.0, cs_a: 0.0 };
        let Some(el) = col.element else {
            return Ok(seen);
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
            let a = match &pure {
                Some((abs, mac, rho)) => abs.factor(mac.at(e)?.to_f64(), rho.to_f64()),
                None => 1.0,
            };
            seen.a = seen.a.max(a);
            seen.cs_a = seen.cs_a.max(line.cs * a);
            let Some((g, k_cs, k_a)) = write.as_mut() else {
                continue;
            };
            let a = T::from_f64(libm::ldexp(a, -*k_a));
            let d = det.efficiency(e)?;
            let fwhm = T::from_f64(p.width_slope) * e + T::from_f64(p.width_intercept);
            let peak = peaks::Peak {
                energy: e,
                fwhm,
                cs: T::from_f64(libm::ldexp(line.cs, *k_cs)),
                d,
                a,
            };
            peaks::add_peak(g, m, j, &p.axis, &peak);
        }
        Ok(seen)
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
        self.update_bremsstrahlung_with(norm, w, k, g, scratch, None)
    }

    /// Length of the cache [`fill_brems_cache`](Self::fill_brems_cache) fills: the detector
    /// efficiency at every channel and, with absorption, each simplex row's element's mass
    /// attenuation at every channel.
    pub fn brems_cache_len(&self) -> usize {
        let rows = match self.params.absorption {
            Some(_) => self.simplex_rows().count(),
            None => 0,
        };
        (1 + rows) * self.n_channels()
    }

    /// Evaluates once what every [`update_bremsstrahlung_cached`](Self::update_bremsstrahlung_cached)
    /// reads (`cache`: [`brems_cache_len`](Self::brems_cache_len) elements; `scratch`:
    /// [`scratch_len`](Self::scratch_len)).
    pub fn fill_brems_cache<T: Float>(
        &self,
        cache: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), ModelError> {
        let p = &self.params;
        if !p.bremsstrahlung {
            return Err(ModelError::NoBremsstrahlung);
        }
        let needed = self.check_brems_cache(cache.len())?;
        let r = self.regions(scratch)?;
        let det = Detector::new(r.sdd_m, &mut *r.work);
        let zs = p.absorption.as_ref().map(|_| {
            self.simplex_rows()
                .map(|j| self.column(j).and_then(|c| c.element).map_or(0, |e| e.z()))
        });
        let scratch = BremsScratch {
            mu: r.mu,
            mac_m: r.mac_m,
            work: r.work,
        };
        bremsstrahlung::fill_cache(&p.axis, &det, zs, scratch, &mut cache[..needed])
    }

    /// [`update_bremsstrahlung`](Self::update_bremsstrahlung) with the efficiency and
    /// attenuation read from a cache filled by [`fill_brems_cache`](Self::fill_brems_cache)
    /// for this model: the same G bit for bit, without setting up and evaluating the splines
    /// at every update (the larger part of an update's cost).
    pub fn update_bremsstrahlung_cached<T: Float>(
        &self,
        norm: &Normalisation<T>,
        w: &[T],
        k: usize,
        g: &mut [T],
        cache: &[T],
        scratch: &mut [T],
    ) -> Result<(), ModelError> {
        self.check_brems_cache(cache.len())?;
        self.update_bremsstrahlung_with(norm, w, k, g, scratch, Some(cache))
    }

    /// [`brems_cache_len`](Self::brems_cache_len), or the error naming a cache of `len` values
    /// too short for it: both cache entry points check here, so the tables read in range.
    fn check_brems_cache(&self, len: usize) -> Result<usize, ModelError> {
        let needed = self.brems_cache_len();
        if len < needed {
            return Err(ModelError::BufferTooSmall {
                buffer: "bremsstrahlung cache",
                needed,
                got: len,
            });
        }
        Ok(needed)
    }

    fn update_bremsstrahlung_with<T: Float>(
        &self,
        norm: &Normalisation<T>,
        w: &[T],
        k: usize,
        g: &mut [T],
        scratch: &mut [T],
        cache: Option<&[T]>,
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
        let det;
        let tables = match cache {
            Some(c) => bremsstrahlung::Tables::Cached(c),
            None => {
                det = Detector::new(r.sdd_m, &mut *r.work);
                bremsstrahlung::Tables::Splines(&det)
            }
        };
        let scratch = BremsScratch {
            mu: r.mu,
            mac_m: r.mac_m,
            work: r.work,
        };
        let source = bremsstrahlung::Source {
            axis: &p.axis,
            e0: T::from_f64(p.e0),
            absorption: p.absorption.as_ref(),
            composition,
            tables,
        };
        bremsstrahlung::write_columns(
            &mut g[..self.g_len()],
            m,
            source,
            scratch,
            (norm.b0, norm.b1),
            Some(norm.brems_scale),
        )
        .map(|_| ())
    }
}

/// The largest absorption factor and cross-section × factor over some lines.
#[derive(Clone, Copy)]
struct LineScales {
    a: f64,
    cs_a: f64,
}

/// The smallest k ≥ 0 with x ≤ 2^k, for finite x (0 for x ≤ 1).
pub(crate) fn power_of_two_above(x: f64) -> i32 {
    if x <= 1.0 {
        return 0;
    }
    let (mant, exp) = libm::frexp(x);
    if mant == 0.5 {
        exp - 1
    } else {
        exp
    }
}

fn column_sum<T: Float>(g: &[T], stride: usize, j: usize) -> T {
    g.chunks_exact(stride).fold(T::ZERO, |s, row| s + row[j])
}
