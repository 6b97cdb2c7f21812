//! `edxs simulate`: a synthetic spectrum image with its truth, as espm's simulation (spec §3);
//! the files are [`crate::report::simulation`]'s.

use super::args::parse_shape;
use crate::report::simulation::{self, CountStats, CountsDtype, Truth};
use crate::sim::{self, maps, phases, presets};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use edxs_core::rng::Rng;
use edxs_core::Element;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Built-in simulation set-ups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// The ESpM paper: Brg matrix with Fp and CaPv particles, 1980 channels from 0.3 keV.
    Paper,
}

/// Element type of `counts.npy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    /// float64.
    F64,
    /// int64 (espm's dtype).
    I64,
    /// uint32.
    U32,
    /// uint16 (an error if a count exceeds 65535).
    U16,
}

/// Options of `edxs simulate`.
#[derive(Debug, Args)]
pub struct SimulateCmd {
    /// Built-in set-up (the default when no --phases file is given).
    #[arg(long, value_enum, conflicts_with = "phases")]
    pub preset: Option<PresetArg>,
    /// Phases file (TOML).
    ///
    /// `[model]` (all optional, espm's defaults): e0, offset, scale, channels, width_slope,
    /// width_intercept, thickness (cm, 0 = no absorption), density (g/cm³), toa,
    /// atomic_fraction, elements (to decompose with; default: those of the phases).
    /// `[[phase]]`, one per phase: name, composition = { Fe = 0.5, O = 0.5 } (relative numbers
    /// of atoms), b0, b1, scale (continuum multiplier, default 1), density (count-rate
    /// multiplier, default 1).
    #[arg(long)]
    pub phases: Option<PathBuf>,
    /// Scan shape ROWSxCOLS (default 128x128; taken from --maps files when given).
    #[arg(long)]
    pub shape: Option<String>,
    /// Abundance maps instead of particles: one .npy (rows×cols×K, K×rows×cols or K×P), or
    /// greyscale PNGs, one per phase, comma separated; K−1 maps leave phase 0 the rest.
    #[arg(long, value_delimiter = ',')]
    pub maps: Vec<PathBuf>,
    /// Particle radius in pixels (espm's sphere maps).
    #[arg(long, default_value_t = 25.0)]
    pub radius: f64,
    /// Particle centres "ROW,COL;ROW,COL" for phases 1…K−1 (default: drawn from --map-seed).
    #[arg(long, allow_hyphen_values = true)]
    pub centers: Option<String>,
    /// Seed of the particle centres (default: --seed).
    #[arg(long)]
    pub map_seed: Option<u64>,
    /// Counts per pixel N (expected total of a pixel whose density-weighted abundances sum to 1).
    #[arg(short = 'N', long = "counts-per-pixel", default_value_t = 293.0)]
    pub counts_per_pixel: f64,
    /// Count-rate multipliers per phase, comma separated (default: the preset's or the file's).
    #[arg(long, value_delimiter = ',')]
    pub densities: Vec<f64>,
    /// Seed of the Poisson noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the expected counts instead of Poisson draws (espm's `continuous=True`).
    #[arg(long)]
    pub noiseless: bool,
    /// Element type of counts.npy.
    #[arg(long, value_enum, default_value_t = DtypeArg::F64)]
    pub dtype: DtypeArg,
    /// Output folder.
    #[arg(long, default_value = "edxs-sim")]
    pub out: PathBuf,
}

impl From<DtypeArg> for CountsDtype {
    fn from(d: DtypeArg) -> Self {
        match d {
            DtypeArg::F64 => CountsDtype::F64,
            DtypeArg::I64 => CountsDtype::I64,
            DtypeArg::U32 => CountsDtype::U32,
            DtypeArg::U16 => CountsDtype::U16,
        }
    }
}

/// How the abundance maps were made, kept together because sim.json records both so that a
/// run can be repeated: the seed of the particle centres and the `maps` entry.
struct MapOrigin {
    /// Seed of the particle centres (--map-seed, else --seed).
    seed: u64,
    /// Kind, radius and centres of particle maps, or the files read.
    info: serde_json::Map<String, serde_json::Value>,
}

impl SimulateCmd {
    /// The files this run reads, which `--out` must not hold.
    fn inputs(&self) -> Vec<&Path> {
        self.phases
            .iter()
            .chain(&self.maps)
            .map(PathBuf::as_path)
            .collect()
    }

    /// Refuses a simulation whose files would not fit on the disk of --out.
    fn disk_plan(&self, rows: usize, cols: usize, k: usize, l: usize) -> Result<()> {
        let value_size = CountsDtype::from(self.dtype).size();
        crate::limits::disk(
            &format!("simulating {rows}x{cols} pixels x {l} channels"),
            &self.out,
            crate::limits::total(&[
                crate::limits::bytes(&[rows, cols, l], value_size),
                crate::limits::bytes(&[k, rows, cols], 8),
                crate::limits::bytes(&[k, l], 16),
            ]),
        )?;
        Ok(())
    }

    /// Simulates and writes counts, truth and sim.json.
    pub fn run(&self) -> Result<()> {
        crate::io::output::check_dir("--out", &self.out, &self.inputs())?;
        let mut cfg = match &self.phases {
            Some(path) => presets::from_toml_file(path)?,
            None => match self.preset.unwrap_or(PresetArg::Paper) {
                PresetArg::Paper => presets::paper(),
            },
        };
        let k = cfg.phases.len();
        if !self.densities.is_empty() {
            if self.densities.len() != k {
                bail!(
                    "--densities: {} values for {k} phases",
                    self.densities.len()
                );
            }
            for (p, d) in cfg.phases.iter_mut().zip(&self.densities) {
                if !(d.is_finite() && *d >= 0.0) {
                    bail!("--densities: {d} is not a finite number >= 0");
                }
                p.density = *d;
            }
        }
        let n = self.counts_per_pixel;
        if !(n > 0.0 && n.is_finite()) {
            bail!("--counts-per-pixel must be finite and > 0, got {n}");
        }
        if self.noiseless && self.dtype != DtypeArg::F64 {
            bail!("--noiseless writes expected (non-integer) counts: use --dtype f64");
        }
        let set = phases::generate_phases(&cfg.model, &cfg.phases)?;
        let l = set.channels;

        let shape = self.shape.as_deref().map(parse_shape).transpose()?;
        let map_seed = self.map_seed.unwrap_or(self.seed);
        let mut map_info = serde_json::Map::new();
        let (h, rows, cols) = if self.maps.is_empty() {
            let (rows, cols) = shape.unwrap_or((128, 128));
            if !(self.radius.is_finite() && self.radius > 0.0) {
                bail!("--radius: {} is not a finite number > 0", self.radius);
            }
            // The maps, one spectrum per phase and the expected spectra, before any of them.
            crate::limits::need(
                &format!("simulating {rows}x{cols} pixels"),
                crate::limits::total(&[
                    crate::limits::bytes(&[rows, cols, k], 8 * 2),
                    crate::limits::bytes(&[k, l], 8 * 4),
                ]),
            )?;
            self.disk_plan(rows, cols, k, l)?;
            let centers = match &self.centers {
                Some(s) => maps::parse_centers(s)?,
                None => maps::random_centers(rows, cols, k, &mut Rng::new(map_seed)),
            };
            let (h, skipped) = maps::spheres(rows, cols, k, self.radius, &centers)?;
            for s in &skipped {
                eprintln!(
                    "edxs: warning: the particle of phase {s} would push some abundances above 1; \
                     left out (as espm does)"
                );
            }
            map_info.insert("kind".into(), "spheres".into());
            map_info.insert("radius".into(), self.radius.into());
            map_info.insert(
                "centers".into(),
                serde_json::json!(centers.iter().map(|c| [c.0, c.1]).collect::<Vec<_>>()),
            );
            map_info.insert(
                "centers_from".into(),
                if self.centers.is_some() {
                    "--centers".into()
                } else {
                    format!("edxs Rng, map seed {map_seed}").into()
                },
            );
            map_info.insert("skipped_phases".into(), serde_json::json!(skipped));
            (h, rows, cols)
        } else {
            if self.centers.is_some() {
                bail!("--centers only applies to particle maps, not with --maps");
            }
            let is_npy = self.maps.len() == 1
                && self.maps[0].extension().and_then(|e| e.to_str()) == Some("npy");
            let (h, rows, cols, fix) = if is_npy {
                maps::from_npy(&self.maps[0], k, shape)?
            } else {
                let (h, r, c, fix) = maps::from_pngs(&self.maps, k)?;
                if let Some(s) = shape {
                    if s != (r, c) {
                        bail!("the map images are {r}x{c} but --shape is {}x{}", s.0, s.1);
                    }
                }
                (h, r, c, fix)
            };
            if fix > 1e-6 {
                eprintln!(
                    "edxs: note: map abundances renormalised per pixel (largest change of a \
                     pixel sum: {fix:.3e})"
                );
            }
            map_info.insert("kind".into(), "files".into());
            map_info.insert(
                "files".into(),
                serde_json::json!(self
                    .maps
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()),
            );
            map_info.insert("renormalised_by".into(), fix.into());
            (h, rows, cols)
        };
        // Again for maps read from files, whose shape is known only now.
        self.disk_plan(rows, cols, k, l)?;
        if cfg.phases.iter().all(|ph| ph.density == 0.0) {
            bail!("every phase has density 0: the image would hold no counts");
        }

        let densities: Vec<f64> = cfg.phases.iter().map(|ph| ph.density).collect();
        let gw = sim::spectra_counts(&set.spectra, &densities, n, l);
        let truth = Truth {
            phases: &set.spectra,
            maps: &h,
            spectra_counts: &gw,
            k,
            channels: l,
            shape: (rows, cols),
        };
        let origin = MapOrigin {
            seed: map_seed,
            info: map_info,
        };
        let mut rng = Rng::new(self.seed);
        let (stats, json) = simulation::write(
            &self.out,
            &self.inputs(),
            &truth,
            self.dtype.into(),
            |px, lam, stats| self.fill_pixel(px, &truth, &densities, lam, &mut rng, stats),
            |stats| self.sim_json(&cfg, &set, &truth, origin, stats),
        )?;
        print!("{}", self.report(&cfg, &set, (rows, cols), &stats, &json));
        Ok(())
    }

    /// Expected counts of pixel `px` (the truth's phases mixed by its maps, each phase's
    /// counts scaled by its density) into `lam`, then Poisson draws unless noiseless.
    fn fill_pixel(
        &self,
        px: usize,
        truth: &Truth<'_>,
        densities: &[f64],
        lam: &mut [f64],
        rng: &mut Rng,
        stats: &mut CountStats,
    ) -> Result<()> {
        let n = self.counts_per_pixel;
        sim::expected_pixel(truth.phases, densities, truth.maps, n, px, lam);
        stats.expected += lam.iter().sum::<f64>();
        if let Some(v) = lam
            .iter()
            .find(|v| v.is_nan() || **v > sim::poisson::MAX_LAMBDA)
        {
            bail!("expected count {v} at pixel {px} is too large for a Poisson draw");
        }
        if !self.noiseless {
            sim::draw_counts(rng, lam);
        }
        stats.total += lam.iter().sum::<f64>();
        stats.max = lam.iter().fold(stats.max, |m, v| m.max(*v));
        Ok(())
    }

    fn sim_json(
        &self,
        cfg: &presets::SimConfig,
        set: &phases::PhaseSet,
        truth: &Truth<'_>,
        origin: MapOrigin,
        stats: &CountStats,
    ) -> serde_json::Value {
        let (h, (rows, cols)) = (truth.maps, truth.shape);
        let m = &cfg.model;
        let p = rows * cols;
        let abs = m.absorption.map(|a| {
            serde_json::json!({
                "thickness": a.thickness, "density": a.density, "toa": a.toa,
                "atomic_fraction": a.atomic_fraction,
            })
        });
        let phases_json: Vec<serde_json::Value> = cfg
            .phases
            .iter()
            .enumerate()
            .map(|(i, ph)| {
                let comp: serde_json::Map<String, serde_json::Value> = ph
                    .composition
                    .iter()
                    .map(|(e, c)| (e.symbol().to_string(), (*c).into()))
                    .collect();
                let at: serde_json::Map<String, serde_json::Value> =
                    at_percent(&ph.composition, &cfg.elements)
                        .into_iter()
                        .map(|(e, v)| (e.symbol().to_string(), v.into()))
                        .collect();
                let unmodelled: Vec<&str> = ph
                    .composition
                    .iter()
                    .filter(|(e, c)| *c > 0.0 && !cfg.elements.contains(e))
                    .map(|(e, _)| e.symbol())
                    .collect();
                serde_json::json!({
                    "name": ph.name, "composition": comp, "b0": ph.b0, "b1": ph.b1,
                    "scale": ph.scale, "density": ph.density,
                    "composition_at_percent": at,
                    "unmodelled_elements": unmodelled,
                    "continuum_share": set.continuum_share[i],
                    "mean_abundance": h[i * p..(i + 1) * p].iter().sum::<f64>() / p as f64,
                })
            })
            .collect();
        serde_json::json!({
            "source": cfg.source,
            "shape": [rows, cols],
            "channels": set.channels,
            "pixels": p,
            "n_components": cfg.phases.len(),
            "counts_per_pixel": self.counts_per_pixel,
            "densities": cfg.phases.iter().map(|ph| ph.density).collect::<Vec<_>>(),
            "seed": self.seed,
            "map_seed": origin.seed,
            "noiseless": self.noiseless,
            "dtype": format!("{:?}", self.dtype).to_lowercase(),
            "maps": origin.info,
            "model": {
                "e0": m.e0, "offset": m.axis.offset, "scale": m.axis.scale,
                "channels": m.axis.channels, "width_slope": m.width_slope,
                "width_intercept": m.width_intercept, "absorption": abs,
                "axis": "espm (numpy linspace: step = channels*scale/(channels-1))",
            },
            "elements": cfg.elements.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
            "simulated_elements": set.elements.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
            "absorption_mix": set.absorption_mix.iter()
                .map(|(e, c)| (e.symbol().to_string(), serde_json::Value::from(*c)))
                .collect::<serde_json::Map<_, _>>(),
            "decompose_args": decompose_args(cfg),
            "phases": phases_json,
            "expected_counts_per_pixel": stats.expected / p as f64,
            "mean_counts_per_pixel": stats.total / p as f64,
            "total_counts": stats.total,
            "max_count": stats.max,
            "files": {
                "counts": "counts.npy (rows x cols x channels)",
                "phases": "phases.npy (K x channels, rows sum to 1)",
                "maps": "maps.npy (K x pixels, columns sum to 1)",
                "spectra_counts": "spectra_counts.npy (K x channels: N * density_k * phase_k)",
            },
            "edxs_version": env!("CARGO_PKG_VERSION"),
        })
    }

    fn report(
        &self,
        cfg: &presets::SimConfig,
        set: &phases::PhaseSet,
        (rows, cols): (usize, usize),
        stats: &CountStats,
        json: &serde_json::Value,
    ) -> String {
        let p = (rows * cols) as f64;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}: {} phases, {rows}x{cols} pixels x {} channels, N = {}, seed {}",
            cfg.source,
            cfg.phases.len(),
            set.channels,
            self.counts_per_pixel,
            self.seed
        );
        for (i, ph) in cfg.phases.iter().enumerate() {
            let _ = writeln!(
                s,
                "  phase {i} {:<10} density {:<6} continuum {:5.1}% of its counts",
                ph.name,
                ph.density,
                100.0 * set.continuum_share[i]
            );
        }
        let _ = writeln!(
            s,
            "counts per pixel: expected {:.3}, drawn {:.3} (max count {})",
            stats.expected / p,
            stats.total / p,
            stats.max
        );
        if let Some(args) = json["decompose_args"].as_array() {
            let args: Vec<&str> = args.iter().filter_map(|a| a.as_str()).collect();
            let _ = writeln!(
                s,
                "decompose with: edxs decompose {} {}",
                self.out.join("counts.npy").display(),
                args.join(" ")
            );
        }
        let _ = writeln!(
            s,
            "wrote counts.npy, phases.npy, maps.npy, spectra_counts.npy, sim.json to {}",
            self.out.display()
        );
        s
    }
}

/// At.% of `composition` over `elements` (0 for an element not in the phase).
pub fn at_percent(composition: &[(Element, f64)], elements: &[Element]) -> Vec<(Element, f64)> {
    let total: f64 = composition
        .iter()
        .filter(|(e, _)| elements.contains(e))
        .map(|(_, c)| c)
        .sum();
    elements
        .iter()
        .map(|e| {
            let c = composition
                .iter()
                .find(|(x, _)| x == e)
                .map_or(0.0, |(_, c)| *c);
            (*e, if total > 0.0 { 100.0 * c / total } else { 0.0 })
        })
        .collect()
}

/// The `edxs decompose` model options that describe the simulation's model.
pub fn decompose_args(cfg: &presets::SimConfig) -> Vec<String> {
    let m = &cfg.model;
    let mut a: Vec<String> = vec![
        "--elements".into(),
        phases::symbols(&cfg.elements),
        "--e0".into(),
        m.e0.to_string(),
        "--offset".into(),
        m.axis.offset.to_string(),
        "--scale".into(),
        m.axis.scale.to_string(),
        "--width-slope".into(),
        m.width_slope.to_string(),
        "--width-intercept".into(),
        m.width_intercept.to_string(),
    ];
    match m.absorption {
        None => a.push("--no-absorption".into()),
        Some(abs) => {
            a.extend(["--thickness".into(), abs.thickness.to_string()]);
            a.extend(["--toa".into(), abs.toa.to_string()]);
            if let Some(d) = abs.density {
                a.extend(["--density".into(), d.to_string()]);
            }
            if abs.atomic_fraction {
                a.push("--atomic-fraction".into());
            }
        }
    }
    a
}
