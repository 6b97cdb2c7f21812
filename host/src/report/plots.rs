//! PNG figures of a decomposition: abundance maps and phase spectra.

use anyhow::{anyhow, bail, Result};
use edxs_core::view::MatRef;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

/// Registers the embedded DejaVu Sans so text renders without system font libraries.
pub(crate) fn font() {
    FONT.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    });
}

pub(crate) fn err<E: std::fmt::Debug>(what: &'static str) -> impl Fn(E) -> anyhow::Error {
    move |e| anyhow!("drawing {what}: {e:?}")
}

/// Viridis-like colour for t in [0, 1].
fn colour(t: f64) -> RGBColor {
    let c = ViridisRGB::get_color(t.clamp(0.0, 1.0));
    RGBColor(c.0, c.1, c.2)
}

/// One panel per phase: the abundance maps (`h`, K×P, each row a row-major scan
/// `rows`×`cols`) with a colour bar, the phase name and the scan size; a scan that does not
/// hold P pixels is an error naming both rather than a panic mid-figure.
pub fn maps_png(
    path: &Path,
    h: MatRef<'_, f64>,
    rows: usize,
    cols: usize,
    names: &[String],
) -> Result<()> {
    let (k, p) = (h.rows(), h.cols());
    if k == 0 || rows.checked_mul(cols) != Some(p) {
        bail!("drawing maps: a {rows}x{cols} scan for {k} maps of {p} pixels");
    }
    let h = h.as_slice();
    font();
    let cell = (360 / rows.max(cols)).clamp(1, 8) as u32;
    let (mw, mh) = (cols as u32 * cell, rows as u32 * cell);
    let panel_w = mw + 110;
    let root = BitMapBackend::new(path, (panel_w * k as u32, mh + 70)).into_drawing_area();
    root.fill(&WHITE).map_err(err("maps"))?;
    let panels = root.split_evenly((1, k));
    for (c, panel) in panels.iter().enumerate() {
        let row = &h[c * p..(c + 1) * p];
        let (lo, hi) = row
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        let title = names
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("phase {c}"));
        panel
            .draw(&Text::new(title, (10, 8), ("sans-serif", 18).into_font()))
            .map_err(err("maps"))?;
        let (x0, y0) = (10i32, 34i32);
        for r in 0..rows {
            for col in 0..cols {
                let v = (row[r * cols + col] - lo) / span;
                let (x, y) = (
                    x0 + (col as u32 * cell) as i32,
                    y0 + (r as u32 * cell) as i32,
                );
                panel
                    .draw(&Rectangle::new(
                        [(x, y), (x + cell as i32, y + cell as i32)],
                        colour(v).filled(),
                    ))
                    .map_err(err("maps"))?;
            }
        }
        // Colour bar with its end values.
        let bx = x0 + mw as i32 + 12;
        for i in 0..mh as i32 {
            let t = 1.0 - i as f64 / (mh.max(2) - 1) as f64;
            panel
                .draw(&Rectangle::new(
                    [(bx, y0 + i), (bx + 14, y0 + i + 1)],
                    colour(t).filled(),
                ))
                .map_err(err("maps"))?;
        }
        let label = |v: f64| {
            if v.abs() >= 1e3 || (v != 0.0 && v.abs() < 1e-2) {
                format!("{v:.2e}")
            } else {
                format!("{v:.3}")
            }
        };
        panel
            .draw(&Text::new(
                label(hi),
                (bx + 18, y0),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(err("maps"))?;
        panel
            .draw(&Text::new(
                label(lo),
                (bx + 18, y0 + mh as i32 - 12),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(err("maps"))?;
        panel
            .draw(&Text::new(
                format!("{rows} x {cols} pixels"),
                (x0, y0 + mh as i32 + 8),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(err("maps"))?;
    }
    root.present().map_err(err("maps"))?;
    Ok(())
}

/// Phase spectra (the K columns of `d`, L×K, each scaled to unit maximum) over the L channel
/// energies with element line markers, and the summed data against the summed model (L each);
/// lengths that disagree are an error naming them rather than a panic mid-figure.
pub fn spectra_png(
    path: &Path,
    energy: &[f64],
    d: MatRef<'_, f64>,
    names: &[String],
    markers: &[(String, f64)],
    sum_data: &[f64],
    sum_model: &[f64],
) -> Result<()> {
    let l = energy.len();
    if l == 0 || d.rows() != l || sum_data.len() != l || sum_model.len() != l {
        bail!(
            "drawing spectra: {l} energies for {} channels of D, {} of the summed data and {} \
             of the summed model",
            d.rows(),
            sum_data.len(),
            sum_model.len()
        );
    }
    let (d, k) = (d.as_slice(), d.cols());
    font();
    let root = BitMapBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(err("spectra"))?;
    let (top, bottom) = root.split_vertically(400);
    let (e0, e1) = (energy[0], energy[l - 1]);
    let palette = [
        BLUE,
        RED,
        GREEN,
        MAGENTA,
        CYAN,
        BLACK,
        RGBColor(255, 140, 0),
        RGBColor(128, 0, 128),
    ];
    {
        let mut chart = ChartBuilder::on(&top)
            .caption(
                "phase spectra (G W, each scaled to its maximum)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(45)
            .build_cartesian_2d(e0..e1, 0.0..1.15)
            .map_err(err("spectra"))?;
        chart
            .configure_mesh()
            .x_desc("energy (keV)")
            .disable_mesh()
            .draw()
            .map_err(err("spectra"))?;
        for (sym, e) in markers {
            if *e > e0 && *e < e1 {
                chart
                    .draw_series(LineSeries::new(
                        [(*e, 0.0), (*e, 1.05)],
                        RGBColor(180, 180, 180),
                    ))
                    .map_err(err("spectra"))?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        sym.clone(),
                        (*e, 1.12),
                        ("sans-serif", 11),
                    )))
                    .map_err(err("spectra"))?;
            }
        }
        for c in 0..k {
            let mx = (0..l)
                .map(|i| d[i * k + c])
                .fold(0.0f64, f64::max)
                .max(f64::MIN_POSITIVE);
            let col = palette[c % palette.len()];
            chart
                .draw_series(LineSeries::new(
                    (0..l).map(|i| (energy[i], d[i * k + c] / mx)),
                    col,
                ))
                .map_err(err("spectra"))?
                .label(
                    names
                        .get(c)
                        .cloned()
                        .unwrap_or_else(|| format!("phase {c}")),
                )
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], col));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err("spectra"))?;
    }
    {
        let top_v = sum_data
            .iter()
            .chain(sum_model)
            .fold(0.0f64, |m, v| m.max(*v))
            * 1.05;
        let mut chart = ChartBuilder::on(&bottom)
            .caption(
                "summed data (black) and summed model (red)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(e0..e1, 0.0..top_v.max(1.0))
            .map_err(err("spectra"))?;
        chart
            .configure_mesh()
            .x_desc("energy (keV)")
            .y_desc("counts")
            .disable_mesh()
            .draw()
            .map_err(err("spectra"))?;
        chart
            .draw_series(LineSeries::new(
                (0..l).map(|i| (energy[i], sum_data[i])),
                BLACK,
            ))
            .map_err(err("spectra"))?;
        chart
            .draw_series(LineSeries::new(
                (0..l).map(|i| (energy[i], sum_model[i])),
                RED,
            ))
            .map_err(err("spectra"))?;
    }
    root.present().map_err(err("spectra"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spectra_with_lengths_that_disagree_are_an_error_naming_them() {
        let (energy, d) = ([0.5, 1.0, 1.5], [1.0; 6]);
        let d = MatRef::new("D", &d, 3, 2).unwrap();
        let path = Path::new("never-written-spectra.png");
        let e = spectra_png(path, &energy, d, &[], &[], &[1.0; 3], &[1.0; 2]).unwrap_err();
        assert!(e.to_string().contains("2 of the summed model"), "{e}");
        assert!(!path.exists());
        let short = MatRef::new("D", &[1.0; 4], 2, 2).unwrap();
        let e = spectra_png(path, &energy, short, &[], &[], &[1.0; 3], &[1.0; 3]).unwrap_err();
        assert!(
            e.to_string().contains("3 energies for 2 channels of D"),
            "{e}"
        );
    }

    #[test]
    fn maps_whose_scan_does_not_hold_their_pixels_are_an_error_naming_both() {
        let h = [0.5; 12];
        let h = MatRef::new("H", &h, 2, 6).unwrap();
        let path = Path::new("never-written-maps.png");
        let e = maps_png(path, h, 2, 4, &[]).unwrap_err();
        assert!(
            e.to_string().contains("a 2x4 scan for 2 maps of 6 pixels"),
            "{e}"
        );
        let e = maps_png(path, h, usize::MAX, 2, &[]).unwrap_err();
        assert!(e.to_string().contains("maps of 6 pixels"), "{e}");
        assert!(!path.exists());
    }
}
