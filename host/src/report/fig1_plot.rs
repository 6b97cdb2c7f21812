//! The Figure-1-like scatter: mean spectral angle against mean map MSE, one panel per dose,
//! one marker per method and sampling.

use super::plots::{err, font};
use crate::repro::Outcome;
use anyhow::Result;
use plotters::prelude::*;
use std::path::Path;

const PALETTE: [RGBColor; 8] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
];

/// Writes the scatter of `outcomes` to `path`; `methods` fixes the colour and legend order.
pub fn fig1_png(path: &Path, outcomes: &[Outcome], methods: &[String]) -> Result<()> {
    font();
    let mut doses: Vec<f64> = Vec::new();
    for o in outcomes {
        if !doses.contains(&o.dose) {
            doses.push(o.dose);
        }
    }
    let panels = doses.len().max(1);
    let root = BitMapBackend::new(path, (560 * panels as u32, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err("fig1"))?;
    for (area, dose) in root.split_evenly((1, panels)).iter().zip(&doses) {
        let pts: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.dose == *dose && o.mean_angle().is_finite() && o.mean_mse().is_finite())
            .collect();
        let amax = pts.iter().map(|o| o.mean_angle()).fold(1.0f64, f64::max) * 1.1;
        let (mlo, mhi) = pts
            .iter()
            .map(|o| o.mean_mse())
            .fold((1e-3f64, 1e-3f64), |(a, b), v| {
                (a.min(v.max(1e-6)), b.max(v))
            });
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{dose} counts/pixel"),
                ("sans-serif", 20).into_font(),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(65)
            .build_cartesian_2d(0.0..amax, (mlo / 1.5..mhi * 1.5).log_scale())
            .map_err(err("fig1"))?;
        chart
            .configure_mesh()
            .x_desc("mean spectral angle (degrees)")
            .y_desc("mean map MSE")
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(err("fig1"))?;
        for (i, name) in methods.iter().enumerate() {
            let col = PALETTE[i % PALETTE.len()];
            let series: Vec<(f64, f64)> = pts
                .iter()
                .filter(|o| &o.method == name)
                .map(|o| (o.mean_angle(), o.mean_mse().max(1e-6)))
                .collect();
            let shape = i % 3;
            chart
                .draw_series(series.into_iter().map(move |xy| -> DynElement<_, _> {
                    match shape {
                        0 => Circle::new(xy, 6, col.filled()).into_dyn(),
                        1 => TriangleMarker::new(xy, 7, col.filled()).into_dyn(),
                        _ => Cross::new(xy, 6, col.stroke_width(2)).into_dyn(),
                    }
                }))
                .map_err(err("fig1"))?
                .label(name.clone())
                .legend(move |(x, y)| -> DynElement<_, _> {
                    let xy = (x + 8, y);
                    match shape {
                        0 => Circle::new(xy, 5, col.filled()).into_dyn(),
                        1 => TriangleMarker::new(xy, 6, col.filled()).into_dyn(),
                        _ => Cross::new(xy, 5, col.stroke_width(2)).into_dyn(),
                    }
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(err("fig1"))?;
    }
    root.present().map_err(err("fig1"))?;
    Ok(())
}
