//! A model with its G built once, shared by every fit of K components on the same axis.

use anyhow::{anyhow, Result};
use edxs_core::EdxsModel;

/// A model with its G, ready for fits of `k` components.
#[derive(Clone)]
pub struct Prepared<'m> {
    /// The model.
    pub model: &'m EdxsModel<'m>,
    pub(super) g: Vec<f64>,
    pub(super) norm: edxs_core::Normalisation<f64>,
    pub(super) rows: Vec<usize>,
    pub(super) brems_rows: Vec<usize>,
    pub(super) k: usize,
    /// Channel groups of a grouped copy (the binned fits, [`super::chan_groups`]): `g` is then the
    /// grouped G and this holds the full-resolution G the bremsstrahlung update rewrites.
    pub(super) groups: Option<super::chan_groups::Grouping>,
}

impl<'m> Prepared<'m> {
    /// Builds G (L×M) for `model`, for fits of `k` components.
    pub fn new(model: &'m EdxsModel<'m>, k: usize) -> Result<Self> {
        anyhow::ensure!(k >= 1, "the number of components must be at least 1");
        let (l, m) = (model.n_channels(), model.n_columns());
        let mut g = vec![0.0; l * m];
        let mut scratch = vec![0.0; model.scratch_len()];
        let norm = model
            .build_g(&mut g, &mut scratch)
            .map_err(|e| anyhow!("model: {e}"))?;
        Ok(Prepared {
            model,
            g,
            norm,
            rows: model.simplex_rows().collect(),
            brems_rows: model
                .columns()
                .enumerate()
                .filter(|(_, c)| {
                    let n = c.to_string();
                    n == "b0" || n == "b1"
                })
                .map(|(j, _)| j)
                .collect(),
            k,
            groups: None,
        })
    }

    /// A copy whose G is summed over `groups` of channels, for fits on grouped images.
    pub(super) fn grouped(&self, groups: super::chan_groups::ChannelGroups) -> Self {
        let m = self.model.n_columns();
        Prepared {
            model: self.model,
            g: groups.g(&self.g, m),
            norm: self.norm,
            rows: self.rows.clone(),
            brems_rows: self.brems_rows.clone(),
            k: self.k,
            groups: Some(super::chan_groups::Grouping {
                groups,
                full: self.g.clone(),
            }),
        }
    }

    /// The simplex row of an element column (None when the model has no such element).
    pub fn element_row(&self, symbol: &str) -> Option<usize> {
        self.model
            .columns()
            .position(|c| c.in_simplex() && c.element.map(|e| e.symbol()) == Some(symbol))
    }
}
