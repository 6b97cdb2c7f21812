//! `edxs model`: build G, print its columns with their lines, optionally write G.npy + G.json
//! (the table and the files are [`crate::report::model`]'s).

use super::args::ModelArgs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

/// Options of `edxs model`.
#[derive(Debug, Args)]
pub struct ModelCmd {
    /// Model options.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Write G (L×M, float64, C order) here, and the column names and energy axis beside it
    /// as a .json file of the same stem.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl ModelCmd {
    /// Builds G and reports it.
    pub fn run(&self) -> Result<()> {
        if let Some(out) = &self.out {
            crate::report::model::check_out(out)?;
        }
        let spec = self.model.options().spec(&Default::default(), None, "")?;
        let model = spec.model()?;
        let (l, m) = (model.n_channels(), model.n_columns());
        crate::limits::need(
            &format!("the model of {l} channels x {m} columns"),
            crate::limits::total(&[
                crate::limits::bytes(&[l, m], 8 * 2),
                crate::limits::bytes(&[model.scratch_len()], 8),
                crate::limits::bytes(&[l], 64),
            ]),
        )?;
        let mut g = vec![0.0f64; model.g_len()];
        let mut scratch = vec![0.0f64; model.scratch_len()];
        let norm = model
            .build_g(&mut g, &mut scratch)
            .map_err(|e| anyhow::anyhow!("model: {e}"))?;
        print!("{}", crate::report::model::describe(&model, &g));
        if let Some(out) = &self.out {
            let json_path = crate::report::model::write(out, &model, &g, &norm)?;
            println!("wrote {} and {}", out.display(), json_path.display());
        }
        Ok(())
    }
}
