//! Abundance maps: espm's particle ("sphere") maps (spec §3.3) and maps read from files.
//!
//! Maps are returned phase-major, K×P with pixels row-major, and sum to 1 in every pixel.

use anyhow::{bail, Context, Result};
use edxs_core::rng::Rng;
use std::path::Path;

/// espm's `Abundance`: pixel-major weights (rows×cols×K) built phase by phase.
#[derive(Debug, Clone)]
pub struct Abundance {
    rows: usize,
    cols: usize,
    k: usize,
    /// `w[(r*cols + c)*k + phase]`, as espm's `(nx, ny, k)` array.
    w: Vec<f64>,
}

impl Abundance {
    /// All-zero weights.
    pub fn new(rows: usize, cols: usize, k: usize) -> Self {
        Abundance {
            rows,
            cols,
            k,
            w: vec![0.0; rows * cols * k],
        }
    }

    /// espm's `check_add_weights`: adds `val` (one value per pixel) to `phase` only if no pixel's
    /// total would exceed 1; returns whether it was added.
    pub fn check_add(&mut self, val: &[f64], phase: usize) -> bool {
        let k = self.k;
        let fits = self
            .w
            .chunks_exact(k)
            .zip(val)
            .all(|(px, v)| px.iter().fold(0.0, |s, x| s + x) + v <= 1.0);
        if fits {
            for (px, v) in self.w.chunks_exact_mut(k).zip(val) {
                px[phase] += v;
            }
        }
        fits
    }

    /// espm's `add_sphere(center, radius, conc_max, phase)`: the projected thickness of a ball,
    /// 2·√(r² − d²), scaled to [0, conc_max] and added with [`Abundance::check_add`].
    pub fn add_sphere(
        &mut self,
        center: (f64, f64),
        radius: f64,
        conc_max: f64,
        phase: usize,
    ) -> bool {
        let r2 = radius.powi(2);
        let mut v = vec![0.0; self.rows * self.cols];
        for (i, s) in v.iter_mut().enumerate() {
            let (x, y) = ((i / self.cols) as f64, (i % self.cols) as f64);
            let q = r2 - (x - center.0).powi(2) - (y - center.1).powi(2);
            if q > 0.0 {
                *s = 2.0 * q.sqrt();
            }
        }
        let v = scale_phase(v, 0.0, conc_max);
        self.check_add(&v, phase)
    }

    /// espm's `weights`: if phase 0 is still empty it becomes 1 − Σ other phases. Returned
    /// phase-major (K×P).
    pub fn into_maps(mut self) -> Vec<f64> {
        let k = self.k;
        if self.w.chunks_exact(k).map(|px| px[0]).sum::<f64>() == 0.0 {
            for px in self.w.chunks_exact_mut(k) {
                px[0] = 1.0 - px.iter().fold(0.0, |s, x| s + x);
            }
        }
        let p = self.rows * self.cols;
        let mut out = vec![0.0; k * p];
        for (i, px) in self.w.chunks_exact(k).enumerate() {
            for (c, v) in px.iter().enumerate() {
                out[c * p + i] = *v;
            }
        }
        out
    }
}

/// espm's `scale_phase`: linear map of `v` onto [cmin, cmax]; all-zero input is left as is.
pub fn scale_phase(v: Vec<f64>, cmin: f64, cmax: f64) -> Vec<f64> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo == 0.0 && hi == 0.0 {
        return v;
    }
    if hi == lo {
        // espm divides by zero here (one-pixel images); a flat map at cmax is the sane limit.
        return vec![cmax; v.len()];
    }
    v.into_iter()
        .map(|x| (x - lo) / (hi - lo) * (cmax - cmin) + cmin)
        .collect()
}

/// Particle maps as espm's `generate_weights("sphere", …)`: phase i ≥ 1 is a ball of `radius`
/// at `centers[i−1]` with maximum abundance 1/(K−1); phase 0 (the matrix) fills the rest.
/// Returns the K×P maps and the phases whose particle was refused because a pixel would
/// exceed 1 (espm prints and skips them).
pub fn spheres(
    rows: usize,
    cols: usize,
    k: usize,
    radius: f64,
    centers: &[(f64, f64)],
) -> Result<(Vec<f64>, Vec<usize>)> {
    if k < 1 {
        bail!("at least one phase is needed");
    }
    if centers.len() != k - 1 {
        bail!(
            "{} particle centre(s) given for {k} phases; give K−1 = {}",
            centers.len(),
            k - 1
        );
    }
    if !(radius > 0.0 && radius.is_finite()) {
        bail!("--radius must be finite and > 0, got {radius}");
    }
    let mut a = Abundance::new(rows, cols, k);
    let mut skipped = Vec::new();
    for (i, c) in centers.iter().enumerate() {
        if !(c.0.is_finite() && c.1.is_finite()) {
            bail!("particle centre {:?} is not finite", c);
        }
        if !a.add_sphere(*c, radius, 1.0 / (k as f64 - 1.0), i + 1) {
            skipped.push(i + 1);
        }
    }
    Ok((a.into_maps(), skipped))
}

/// Random particle centres as espm draws them: row in [1, rows), column in [1, cols)
/// (NumPy's `randint(1, n)`), one per phase after the matrix; our generator, not NumPy's.
pub fn random_centers(rows: usize, cols: usize, k: usize, rng: &mut Rng) -> Vec<(f64, f64)> {
    let draw = |rng: &mut Rng, n: usize| -> f64 {
        if n <= 1 {
            // randint(1, 1) is an error in NumPy; a 1-pixel axis can only hold index 0.
            return 0.0;
        }
        let span = (n - 1) as u64;
        // Multiply-shift keeps the draw unbiased enough for spans far below 2^32.
        (1 + (((rng.next_u64() >> 32) * span) >> 32)) as f64
    };
    (1..k)
        .map(|_| {
            let r = draw(rng, rows);
            let c = draw(rng, cols);
            (r, c)
        })
        .collect()
}

/// Parses "R,C;R,C;…" into centres (row, column), in pixels.
pub fn parse_centers(s: &str) -> Result<Vec<(f64, f64)>> {
    s.split(';')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            let (r, c) = t
                .split_once(',')
                .with_context(|| format!("--centers: expected ROW,COL;ROW,COL…, got '{t}'"))?;
            let r: f64 = r
                .trim()
                .parse()
                .with_context(|| format!("--centers: bad row '{r}'"))?;
            let c: f64 = c
                .trim()
                .parse()
                .with_context(|| format!("--centers: bad column '{c}'"))?;
            Ok((r, c))
        })
        .collect()
}

/// Completes maps given per phase (`given` maps of P pixels, phase-major): K maps are
/// normalised per pixel; K−1 maps are the phases after the matrix, and phase 0 becomes
/// 1 − Σ others (which must stay >= 0). Returns the K×P maps and the largest correction
/// applied to a pixel sum (0 for K−1 maps).
pub fn complete(what: &str, given: Vec<f64>, n_given: usize, k: usize) -> Result<(Vec<f64>, f64)> {
    let p = given.len() / n_given.max(1);
    if let Some(i) = given.iter().position(|v| !(*v >= 0.0 && v.is_finite())) {
        bail!(
            "{what}: abundance {} at phase {}, pixel {}; abundances must be finite and >= 0",
            given[i],
            i / p,
            i % p
        );
    }
    if n_given == k {
        let mut maps = given;
        let mut worst = 0.0f64;
        for px in 0..p {
            let s: f64 = (0..k).map(|c| maps[c * p + px]).sum();
            if !(s > 0.0) {
                bail!("{what}: pixel {px} has zero abundance in every phase");
            }
            worst = worst.max((s - 1.0).abs());
            for c in 0..k {
                maps[c * p + px] /= s;
            }
        }
        Ok((maps, worst))
    } else if n_given + 1 == k {
        let mut maps = vec![0.0; k * p];
        maps[p..].copy_from_slice(&given);
        for px in 0..p {
            let s: f64 = (1..k).map(|c| maps[c * p + px]).sum();
            if s > 1.0 + 1e-12 {
                bail!(
                    "{what}: the {} given phases sum to {s} > 1 at pixel {px}, leaving nothing \
                     for phase 0; give all {k} maps to have them normalised instead",
                    k - 1
                );
            }
            maps[px] = (1.0 - s).max(0.0);
        }
        Ok((maps, 0.0))
    } else {
        bail!("{what}: {n_given} maps for {k} phases; give K = {k} maps (normalised per pixel) or K−1 = {} (phase 0 is the rest)", k - 1)
    }
}

/// Maps from a `.npy` file: K×rows×cols, rows×cols×K (espm's layout; preferred when both fit)
/// or K×P, each possibly without phase 0 (see [`complete`]). Returns (maps K×P, rows, cols,
/// largest pixel-sum correction).
pub fn from_npy(
    path: &Path,
    k: usize,
    shape: Option<(usize, usize)>,
) -> Result<(Vec<f64>, usize, usize, f64)> {
    let what = path.display().to_string();
    let (dims, data) = crate::io::npy::read_f64(path)?;
    let fits = |n: usize| n == k || n + 1 == k;
    let (n, rows, cols, phase_major) = match dims.as_slice() {
        [a, b, c] if fits(*c) => (*c, *a, *b, false),
        [a, b, c] if fits(*a) => (*a, *b, *c, true),
        [a, p] if fits(*a) => {
            let Some((r, c)) = shape else {
                bail!("{what}: a {a}x{p} map file needs --shape ROWSxCOLS");
            };
            if r * c != *p {
                bail!("{what}: --shape {r}x{c} has {} pixels, the maps {p}", r * c);
            }
            (*a, r, c, true)
        }
        other => bail!(
            "{what}: expected maps of shape (rows, cols, K), (K, rows, cols) or (K, P) with K = {k} \
             (or {}), got {other:?}",
            k.saturating_sub(1)
        ),
    };
    if let Some(s) = shape {
        if s != (rows, cols) {
            bail!(
                "{what}: maps are {rows}x{cols} but --shape is {}x{}",
                s.0,
                s.1
            );
        }
    }
    let p = rows * cols;
    if p == 0 {
        bail!("{what}: maps have no pixel");
    }
    let given = if phase_major {
        data
    } else {
        let mut t = vec![0.0; n * p];
        for (px, v) in data.chunks_exact(n).enumerate() {
            for (c, x) in v.iter().enumerate() {
                t[c * p + px] = *x;
            }
        }
        t
    };
    let (maps, worst) = complete(&what, given, n, k)?;
    Ok((maps, rows, cols, worst))
}

/// Maps from greyscale PNG images, one per phase (K, or K−1 without the matrix): grey level /
/// maximum level (255 or 65535) is the abundance. Returns (maps K×P, rows, cols, largest
/// pixel-sum correction).
pub fn from_pngs(paths: &[std::path::PathBuf], k: usize) -> Result<(Vec<f64>, usize, usize, f64)> {
    let mut given = Vec::new();
    let mut dims = None;
    for path in paths {
        let (r, c, v) = read_grey_png(path)?;
        match dims {
            None => dims = Some((r, c)),
            Some(d) if d != (r, c) => bail!(
                "{}: {r}x{c} pixels, but {} has {}x{}",
                path.display(),
                paths[0].display(),
                d.0,
                d.1
            ),
            _ => {}
        }
        given.extend(v);
    }
    let Some((rows, cols)) = dims else {
        bail!("no map image given");
    };
    let (maps, worst) = complete("PNG maps", given, paths.len(), k)?;
    Ok((maps, rows, cols, worst))
}

/// Reads an 8- or 16-bit greyscale (or grey+alpha, alpha ignored) PNG as values in [0, 1].
fn read_grey_png(path: &Path) -> Result<(usize, usize, Vec<f64>)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    // Expand palettes and sub-byte depths so that every sample is a whole byte or two.
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder
        .read_info()
        .with_context(|| format!("{}: not a readable PNG", path.display()))?;
    let size = reader
        .output_buffer_size()
        .with_context(|| format!("{}: image too large", path.display()))?;
    let mut buf = vec![0; size];
    let info = reader
        .next_frame(&mut buf)
        .with_context(|| format!("{}: corrupt PNG data", path.display()))?;
    let (cols, rows) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        other => bail!(
            "{}: colour type {other:?}; abundance maps must be greyscale",
            path.display()
        ),
    };
    let line = info.line_size;
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let row = &buf[r * line..(r + 1) * line];
        for c in 0..cols {
            let v = match info.bit_depth {
                png::BitDepth::Sixteen => {
                    let i = 2 * channels * c;
                    u16::from_be_bytes([row[i], row[i + 1]]) as f64 / 65535.0
                }
                _ => row[channels * c] as f64 / 255.0,
            };
            out.push(v);
        }
    }
    Ok((rows, cols, out))
}
