//! The convergence figure of the fast-solver benchmark (`examples/fast_bench.rs`): KKT
//! residual against time, log-log.

use super::plots::{err, font};
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// One curve: its label and (seconds, KKT residual) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Draws every series as residual against seconds (both axes logarithmic) into `path`; each
/// run of `per_colour` consecutive series (the methods on one problem) shares a colour, and a
/// series whose label names MU is drawn thin.
pub fn kkt_png(path: &Path, title: &str, series: &[Series], per_colour: usize) -> Result<()> {
    font();
    let pts = series
        .iter()
        .flat_map(|s| s.1.iter())
        .filter(|(t, r)| *t > 0.0 && *r > 0.0);
    let (mut t0, mut t1, mut r0, mut r1) = (f64::INFINITY, 0.0f64, f64::INFINITY, 0.0f64);
    for &(t, r) in pts {
        t0 = t0.min(t);
        t1 = t1.max(t);
        r0 = r0.min(r);
        r1 = r1.max(r);
    }
    if !(t1 > 0.0 && r1 > 0.0) {
        anyhow::bail!("nothing to plot");
    }
    let root = BitMapBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(err("kkt plot"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (t0 * 0.8..t1 * 1.25).log_scale(),
            (r0.min(1e-7) * 0.5..r1 * 2.0).log_scale(),
        )
        .map_err(err("kkt plot"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("KKT residual")
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(err("kkt plot"))?;
    for (i, (label, pts)) in series.iter().enumerate() {
        let c = Palette99::pick(i / per_colour.max(1)).to_rgba();
        let dashed = label.contains("MU");
        let data: Vec<(f64, f64)> = pts
            .iter()
            .copied()
            .filter(|(t, r)| *t > 0.0 && *r > 0.0)
            .collect();
        // Within a colour: MU thin, then the methods thicker in turn.
        let width = if dashed {
            1
        } else {
            2 + (i % per_colour.max(1)) as u32
        };
        let style = ShapeStyle::from(&c).stroke_width(width);
        chart
            .draw_series(LineSeries::new(data, style))
            .map_err(err("kkt plot"))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    chart
        .draw_series(LineSeries::new(
            vec![(t0 * 0.8, 1e-6), (t1 * 1.25, 1e-6)],
            ShapeStyle::from(&BLACK.mix(0.4)),
        ))
        .map_err(err("kkt plot"))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err("kkt plot"))?;
    root.present().map_err(err("kkt plot"))?;
    Ok(())
}
