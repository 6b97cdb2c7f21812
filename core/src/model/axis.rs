//! The energy axis of the model.

use crate::error::ModelError;

/// Which reference behaviour to reproduce where espm differs from the textbook model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compat {
    /// espm 1.1.3 exactly, including its energy-axis step of `channels·scale/(channels−1)`.
    #[default]
    Espm,
}

/// The channel energies of a spectrum: `channels` values starting at `offset` keV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EnergyAxis {
    /// Energy of the first channel, keV (> 0).
    pub offset: f64,
    /// Channel width, keV.
    pub scale: f64,
    /// Number of channels (≥ 2).
    pub channels: usize,
    /// Which definition of the channel energies to use.
    pub compat: Compat,
}

impl EnergyAxis {
    /// Checks that the axis is usable: positive offset and scale, at least two channels.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.offset > 0.0 && self.offset.is_finite()) {
            return Err(ModelError::InvalidOffset {
                offset: self.offset,
            });
        }
        if !(self.scale > 0.0 && self.scale.is_finite()) {
            return Err(ModelError::InvalidScale { scale: self.scale });
        }
        if self.channels < 2 {
            return Err(ModelError::InvalidChannels {
                channels: self.channels,
            });
        }
        Ok(())
    }

    /// Energy of channel `i` in keV.
    ///
    /// In [`Compat::Espm`] this is NumPy's `linspace(offset, offset + channels·scale, channels)`
    /// evaluated as NumPy does (`i·step + offset`, last point exact), so the step is
    /// `channels·scale/(channels−1)` rather than `scale`.
    pub fn energy(&self, i: usize) -> f64 {
        match self.compat {
            Compat::Espm => {
                let n = self.channels;
                let stop = self.offset + n as f64 * self.scale;
                if i + 1 >= n {
                    return stop;
                }
                let step = (stop - self.offset) / (n - 1) as f64;
                i as f64 * step + self.offset
            }
        }
    }

    /// First channel energy (keV).
    pub fn first(&self) -> f64 {
        self.energy(0)
    }

    /// Last channel energy (keV).
    pub fn last(&self) -> f64 {
        self.energy(self.channels.saturating_sub(1))
    }

    /// True when a line at `e` keV lies strictly inside the axis (espm's selection rule).
    pub fn contains_line(&self, e: f64) -> bool {
        e > self.first() && e < self.last()
    }
}
