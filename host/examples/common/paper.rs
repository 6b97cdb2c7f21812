//! Paper-like data for the performance examples, generated in memory without a dense L×P
//! array: the paper's three phases (edxs's `paper` preset, spec §3.7) on `channels` channels,
//! two spherical particles, and per pixel a Poisson total split over the channels by the
//! pixel's expected spectrum (the same distribution as independent Poisson counts per
//! channel). Rows are drawn in parallel with one seed per row, so the data depend on the seed
//! only. Also the examples' shared command-line and memory helpers.

use edxs::sim::{maps, phases, poisson, presets};
use edxs_core::rng::Rng;
use edxs_core::{EdxsModel, Element, ModelParams};
use rayon::prelude::*;

/// A spectrum image with its model and a start for the solver.
pub struct Paper {
    pub rows: usize,
    pub cols: usize,
    pub l: usize,
    pub m: usize,
    pub g: Vec<f64>,
    pub simplex_rows: Vec<usize>,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f64>,
    pub w0: Vec<f64>,
    pub h0: Vec<f64>,
}

impl Paper {
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    pub fn counts(&self) -> edxs_core::Counts<'_, f64> {
        edxs_core::Counts::Sparse {
            channels: self.l,
            pixels: self.pixels(),
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        }
    }
}

/// `rows`×`cols` pixels, `channels` channels (0.01 keV from 0.3 keV), `n` counts per pixel.
pub fn paper(rows: usize, cols: usize, channels: usize, n: f64, seed: u64) -> Paper {
    let mut cfg = presets::paper();
    cfg.model.axis.channels = channels;
    let set = phases::generate_phases(&cfg.model, &cfg.phases).expect("paper phases");
    let k = cfg.phases.len();
    let dens: Vec<f64> = cfg.phases.iter().map(|p| p.density).collect();
    let l = channels;
    // Particles at the paper's relative positions, radius 25/128 of the smaller side.
    let s = rows.min(cols) as f64;
    let centers = [
        (94.0 / 128.0 * rows as f64, 50.0 / 128.0 * cols as f64),
        (69.0 / 128.0 * rows as f64, 80.0 / 128.0 * cols as f64),
    ];
    let (h_true, _) = maps::spheres(rows, cols, k, 25.0 / 128.0 * s, &centers).expect("maps");
    let p = rows * cols;
    // Cumulative spectra for drawing channels.
    let cdf: Vec<Vec<f64>> = set
        .spectra
        .chunks_exact(l)
        .map(|row| {
            let mut acc = 0.0;
            let mut c: Vec<f64> = row
                .iter()
                .map(|v| {
                    acc += v;
                    acc
                })
                .collect();
            let last = *c.last().unwrap();
            c.iter_mut().for_each(|v| *v /= last);
            c
        })
        .collect();
    let per_row: Vec<(Vec<usize>, Vec<u32>, Vec<f64>)> = (0..rows)
        .into_par_iter()
        .map(|r| {
            let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (r as u64 + 1));
            let (mut lens, mut idx, mut val) = (Vec::new(), Vec::new(), Vec::new());
            let mut draws: Vec<u32> = Vec::new();
            for c in 0..cols {
                let px = r * cols + c;
                let wts: Vec<f64> = (0..k).map(|q| h_true[q * p + px] * dens[q]).collect();
                let tot: f64 = wts.iter().sum();
                let total = poisson::poisson(&mut rng, n * tot);
                draws.clear();
                for _ in 0..total {
                    let mut u = rng.uniform() * tot;
                    let mut q = 0;
                    while q + 1 < k && u >= wts[q] {
                        u -= wts[q];
                        q += 1;
                    }
                    let v = rng.uniform();
                    let ch = cdf[q].partition_point(|&x| x <= v).min(l - 1);
                    draws.push(ch as u32);
                }
                draws.sort_unstable();
                let start = idx.len();
                for &ch in &draws {
                    if idx.len() > start && *idx.last().unwrap() == ch {
                        *val.last_mut().unwrap() += 1.0;
                    } else {
                        idx.push(ch);
                        val.push(1.0);
                    }
                }
                lens.push(idx.len() - start);
            }
            (lens, idx, val)
        })
        .collect();
    let nnz: usize = per_row.iter().map(|r| r.1.len()).sum();
    let (mut indptr, mut indices, mut values) = (
        Vec::with_capacity(p + 1),
        Vec::with_capacity(nnz),
        Vec::with_capacity(nnz),
    );
    indptr.push(0);
    for (lens, idx, val) in per_row {
        for n in lens {
            indptr.push(indptr.last().unwrap() + n);
        }
        indices.extend_from_slice(&idx);
        values.extend_from_slice(&val);
    }
    // The decomposition model: the paper's elements, Cu also modelled line by line.
    let elements = &cfg.elements;
    let cu = [Element::parse("Cu").unwrap()];
    let mut mp = ModelParams::new(elements);
    mp.ignored = &cu;
    mp.e0 = cfg.model.e0;
    mp.axis = cfg.model.axis;
    mp.width_slope = cfg.model.width_slope;
    mp.width_intercept = cfg.model.width_intercept;
    mp.absorption = cfg.model.absorption;
    mp.bremsstrahlung = cfg.model.bremsstrahlung;
    let model = EdxsModel::new(mp).expect("model");
    let m = model.n_columns();
    let mut g = vec![0.0; model.g_len()];
    let mut scratch = vec![0.0; model.scratch_len()];
    model.build_g(&mut g, &mut scratch).expect("G");
    let simplex_rows: Vec<usize> = model.simplex_rows().collect();
    // Start: uniform compositions, small continuum and ignored lines; flat maps.
    let mut w0 = vec![1e-3; m * k];
    for &j in &simplex_rows {
        for c in 0..k {
            w0[j * k + c] = 1.0 / simplex_rows.len() as f64 * (1.0 + 0.1 * c as f64);
        }
    }
    let mut h0 = vec![0.0; k * p];
    for px in 0..p {
        let tot = (indptr[px]..indptr[px + 1]).map(|i| values[i]).sum::<f64>();
        for c in 0..k {
            h0[c * p + px] = (tot / k as f64).max(1e-3) * (1.0 + 0.2 * c as f64);
        }
    }
    Paper {
        rows,
        cols,
        l,
        m,
        g,
        simplex_rows,
        indptr,
        indices,
        values,
        w0,
        h0,
    }
}

/// Peak resident set size of this process so far (VmHWM), in MiB.
#[allow(dead_code)]
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The value after `name` in `args`, parsed, or `default` when the flag is absent.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .ok()
                .unwrap_or_else(|| panic!("bad value for {name}"))
        })
        .unwrap_or(default)
}
