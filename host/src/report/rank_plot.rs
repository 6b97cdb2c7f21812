//! The held-out likelihood curve of `edxs rank` (and `decompose -k auto`) as a PNG.

use super::plots::{err, font};
use crate::rank::RankReport;
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

/// Held-out log-likelihood minus the best K's against K, with ± one standard error bars and
/// the chosen K marked.
pub fn rank_png(path: &Path, report: &RankReport) -> Result<()> {
    font();
    let root = BitMapBackend::new(path, (720, 460)).into_drawing_area();
    root.fill(&WHITE).map_err(err("rank"))?;
    let pts = &report.curve;
    let k_max = pts.iter().map(|p| p.k).max().unwrap_or(1);
    let lo = pts
        .iter()
        .map(|p| p.delta_from_best - p.std_error)
        .fold(0.0f64, f64::min);
    let hi = pts.iter().map(|p| p.std_error).fold(0.0f64, f64::max);
    let pad = 0.05 * (hi - lo).max(1.0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "held-out Poisson log-likelihood (chosen K = {}, best K = {})",
                report.chosen, report.best
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5..k_max as f64 + 0.5, lo - pad..hi + pad)
        .map_err(err("rank"))?;
    chart
        .configure_mesh()
        .x_desc("number of phases K")
        .y_desc("log-likelihood − best")
        .x_labels(k_max + 1)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(err("rank"))?;
    chart
        .draw_series(LineSeries::new(
            pts.iter().map(|p| (p.k as f64, p.delta_from_best)),
            BLUE,
        ))
        .map_err(err("rank"))?;
    for p in pts {
        let (x, y, e) = (p.k as f64, p.delta_from_best, p.std_error);
        chart
            .draw_series(LineSeries::new([(x, y - e), (x, y + e)], BLACK))
            .map_err(err("rank"))?;
        let style = if p.k == report.chosen {
            RED.filled()
        } else {
            BLUE.filled()
        };
        let r = if p.k == report.chosen { 7 } else { 4 };
        chart
            .draw_series(std::iter::once(Circle::new((x, y), r, style)))
            .map_err(err("rank"))?;
    }
    root.present().map_err(err("rank"))?;
    Ok(())
}
