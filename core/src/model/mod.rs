//! The EDXS model: the design matrix G (channels × columns) computed from the X-ray tables.
//!
//! Set up a [`EdxsModel`] once from [`ModelParams`] (this validates everything and fixes the
//! column layout), ask it for [`EdxsModel::g_len`] and [`EdxsModel::scratch_len`], then build G
//! into your own buffers with [`EdxsModel::build_g`]. Nothing here allocates.

mod absorption;
mod axis;
mod bremsstrahlung;
mod detector;
mod g;
mod peaks;
mod spline;

pub use absorption::{has_mac, Absorption};
pub use axis::{Compat, EnergyAxis};
pub use detector::detector_range;
pub use g::Normalisation;

use crate::element::Element;
use crate::error::ModelError;
use core::fmt;
use edxs_tables::{Line, LineTable};

/// Everything that defines G, with espm's parameter names and defaults.
#[derive(Debug, Clone, Copy)]
pub struct ModelParams<'a> {
    /// Modelled elements, one column each (two when split), in this order.
    pub elements: &'a [Element],
    /// Elements split into a low-energy and a high-energy column at the given energy (keV).
    pub split: &'a [(Element, f64)],
    /// Elements modelled line by line, one free column per line, outside the simplex (e.g. Cu
    /// from the grid).
    pub ignored: &'a [Element],
    /// Beam energy in keV (selects the line table: 100, 200 or 300).
    pub e0: f64,
    /// The energy axis.
    pub axis: EnergyAxis,
    /// FWHM slope: FWHM(E) = width_slope·E + width_intercept (keV).
    pub width_slope: f64,
    /// FWHM at zero energy (keV).
    pub width_intercept: f64,
    /// Thin-film absorption, or `None` for none (espm's thickness 0).
    pub absorption: Option<Absorption>,
    /// Append the two bremsstrahlung columns (espm's `g_type="bremsstrahlung"`).
    pub bremsstrahlung: bool,
}

impl<'a> ModelParams<'a> {
    /// espm's `DEFAULT_EDXS_PARAMS` for these elements (nothing ignored, nothing split).
    pub fn new(elements: &'a [Element]) -> Self {
        ModelParams {
            elements,
            split: &[],
            ignored: &[],
            e0: 200.0,
            axis: EnergyAxis {
                offset: 0.2,
                scale: 0.01,
                channels: 1980,
                compat: Compat::Espm,
            },
            width_slope: 0.01,
            width_intercept: 0.065,
            absorption: Some(Absorption::default()),
            bremsstrahlung: true,
        }
    }
}

/// What one column of G models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ColumnKind {
    /// All in-axis lines of a modelled element.
    Element,
    /// Lines of a split element below the cut energy.
    SplitLow,
    /// Lines of a split element at or above the cut energy (the one in the simplex).
    SplitHigh,
    /// One line of an ignored element.
    IgnoredLine {
        /// Running number among this element's in-axis lines (espm's `_ign<n>`).
        index: u16,
        /// Position of the line in the element's table entry.
        line: u16,
    },
    /// The bremsstrahlung column linear in E (espm's b0).
    Bremsstrahlung0,
    /// The bremsstrahlung column ~1/E (espm's b1).
    Bremsstrahlung1,
}

/// One column of G: its element (none for bremsstrahlung) and kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Column {
    /// The element, or `None` for a bremsstrahlung column.
    pub element: Option<Element>,
    /// What the column models.
    pub kind: ColumnKind,
}

impl Column {
    /// True for the rows of W constrained to the simplex (one per element; espm's `NMF_simplex`).
    pub fn in_simplex(&self) -> bool {
        matches!(self.kind, ColumnKind::Element | ColumnKind::SplitHigh)
    }

    /// True for characteristic (line) columns, false for bremsstrahlung.
    pub fn is_characteristic(&self) -> bool {
        self.element.is_some()
    }

    /// espm's name of the column (`"26"`, `"78_lo"`, `"29_ign3"`, `"b0"`).
    pub fn espm_name(&self) -> EspmName {
        EspmName(*self)
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.element.map(|e| e.symbol()).unwrap_or("");
        match self.kind {
            ColumnKind::Element => write!(f, "{s}"),
            ColumnKind::SplitLow => write!(f, "{s}_lo"),
            ColumnKind::SplitHigh => write!(f, "{s}_hi"),
            ColumnKind::IgnoredLine { index, .. } => write!(f, "{s}_ign{index}"),
            ColumnKind::Bremsstrahlung0 => write!(f, "b0"),
            ColumnKind::Bremsstrahlung1 => write!(f, "b1"),
        }
    }
}

/// Displays a column with espm's `model_elts` naming (atomic numbers).
#[derive(Debug, Clone, Copy)]
pub struct EspmName(Column);

impl fmt::Display for EspmName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let z = self.0.element.map(|e| e.z()).unwrap_or(0);
        match self.0.kind {
            ColumnKind::Element => write!(f, "{z}"),
            ColumnKind::SplitLow => write!(f, "{z}_lo"),
            ColumnKind::SplitHigh => write!(f, "{z}_hi"),
            ColumnKind::IgnoredLine { index, .. } => write!(f, "{z}_ign{index}"),
            ColumnKind::Bremsstrahlung0 => write!(f, "b0"),
            ColumnKind::Bremsstrahlung1 => write!(f, "b1"),
        }
    }
}

/// A validated model: parameters plus the line table chosen from E0 and the column layout.
#[derive(Debug, Clone, Copy)]
pub struct EdxsModel<'a> {
    params: ModelParams<'a>,
    table: &'static LineTable,
    n_columns: usize,
}

impl<'a> EdxsModel<'a> {
    /// Validates `params` and fixes the column layout.
    pub fn new(params: ModelParams<'a>) -> Result<Self, ModelError> {
        let p = &params;
        p.axis.validate()?;
        let table =
            edxs_tables::line_table(p.e0).ok_or(ModelError::UnsupportedBeamEnergy { e0: p.e0 })?;
        if p.elements.is_empty() {
            return Err(ModelError::NoElements);
        }
        for list in [p.elements, p.ignored] {
            for (i, el) in list.iter().enumerate() {
                if list[..i].contains(el) {
                    return Err(ModelError::DuplicateElement { z: el.z() });
                }
            }
        }
        if let Some(abs) = &p.absorption {
            abs.validate()?;
        }
        let (lo, hi) = (p.axis.first(), p.axis.last());
        let (dmin, dmax) = detector_range();
        let outside = |e: f64| ModelError::EnergyOutsideDetectorCurve {
            energy: e,
            min: dmin,
            max: dmax,
        };
        if p.bremsstrahlung {
            if lo < dmin {
                return Err(outside(lo));
            }
            if hi > dmax {
                return Err(outside(hi));
            }
        }
        for el in p.elements.iter().chain(p.ignored) {
            let lines = table.lines_of(el.z());
            let mut any = false;
            for line in lines.iter().filter(|l| p.axis.contains_line(l.energy)) {
                any = true;
                if line.energy < dmin || line.energy > dmax {
                    return Err(outside(line.energy));
                }
                let fwhm = p.width_slope * line.energy + p.width_intercept;
                if !(fwhm > 0.0 && fwhm.is_finite()) {
                    return Err(ModelError::InvalidPeakWidth {
                        energy: line.energy,
                        fwhm,
                    });
                }
            }
            if !any {
                return Err(ModelError::NoLineInAxis { z: el.z(), lo, hi });
            }
            if let Some(abs) = &p.absorption {
                abs.check_element(*el)?;
            }
        }
        for (i, (el, cut)) in p.split.iter().enumerate() {
            if !p.elements.contains(el) {
                return Err(ModelError::SplitNotModelled { z: el.z() });
            }
            if p.split[..i].iter().any(|(e, _)| e == el) {
                return Err(ModelError::DuplicateElement { z: el.z() });
            }
            let in_axis = || {
                table
                    .lines_of(el.z())
                    .iter()
                    .filter(|l| p.axis.contains_line(l.energy))
            };
            let low = in_axis().any(|l| l.energy < *cut);
            let high = in_axis().any(|l| l.energy >= *cut);
            if !(low && high && cut.is_finite()) {
                return Err(ModelError::EmptySplitColumn {
                    z: el.z(),
                    cut: *cut,
                });
            }
        }
        if let Some(abs) = &p.absorption {
            if abs.density.is_none() && p.bremsstrahlung {
                // The bremsstrahlung mixture needs every element's density.
                for el in p.elements {
                    abs.check_element(*el)?;
                }
            }
        }
        let mut model = EdxsModel {
            params,
            table,
            n_columns: 0,
        };
        model.n_columns = model.count_columns();
        Ok(model)
    }

    fn count_columns(&self) -> usize {
        let p = &self.params;
        let elements: usize = p
            .elements
            .iter()
            .map(|e| if self.split_of(*e).is_some() { 2 } else { 1 })
            .sum();
        let ignored: usize = p
            .ignored
            .iter()
            .map(|e| self.lines_in_axis(*e).count())
            .sum();
        elements + ignored + if p.bremsstrahlung { 2 } else { 0 }
    }

    /// The validated parameters.
    pub fn params(&self) -> &ModelParams<'a> {
        &self.params
    }

    /// The line table chosen from E0.
    pub fn line_table(&self) -> &'static LineTable {
        self.table
    }

    /// Number of energy channels L (rows of G).
    pub fn n_channels(&self) -> usize {
        self.params.axis.channels
    }

    /// Number of columns M of G (rows of W).
    pub fn n_columns(&self) -> usize {
        self.n_columns
    }

    /// Length of the G buffer: L·M, row-major (`g[l * M + m]`), as NumPy's C order.
    pub fn g_len(&self) -> usize {
        self.n_channels() * self.n_columns
    }

    /// Energy of channel `i` in keV.
    pub fn energy(&self, i: usize) -> f64 {
        self.params.axis.energy(i)
    }

    /// The cut energy if `el` is split.
    pub fn split_of(&self, el: Element) -> Option<f64> {
        self.params
            .split
            .iter()
            .find(|(e, _)| *e == el)
            .map(|(_, c)| *c)
    }

    /// The lines of `el` strictly inside the axis, in table order, with their table position.
    pub fn lines_in_axis(&self, el: Element) -> impl Iterator<Item = (usize, &'static Line)> + '_ {
        let axis = self.params.axis;
        self.table
            .lines_of(el.z())
            .iter()
            .enumerate()
            .filter(move |(_, l)| axis.contains_line(l.energy))
    }

    /// The lines that make up column `col` (none for bremsstrahlung).
    pub fn lines_of_column(&self, col: Column) -> impl Iterator<Item = &'static Line> + '_ {
        let el = col.element;
        let cut = el.and_then(|e| self.split_of(e)).unwrap_or(0.0);
        el.into_iter()
            .flat_map(move |e| self.lines_in_axis(e))
            .filter(move |(pos, l)| match col.kind {
                ColumnKind::Element => true,
                ColumnKind::SplitLow => l.energy < cut,
                ColumnKind::SplitHigh => l.energy >= cut,
                ColumnKind::IgnoredLine { line, .. } => *pos == line as usize,
                _ => false,
            })
            .map(|(_, l)| l)
    }

    /// Column `j` of G, in espm's order: elements (split ones as low, high), ignored elements'
    /// lines, then b0, b1.
    pub fn column(&self, j: usize) -> Option<Column> {
        let p = &self.params;
        let mut j = j;
        for el in p.elements {
            let element = Some(*el);
            if self.split_of(*el).is_some() {
                match j {
                    0 => {
                        return Some(Column {
                            element,
                            kind: ColumnKind::SplitLow,
                        })
                    }
                    1 => {
                        return Some(Column {
                            element,
                            kind: ColumnKind::SplitHigh,
                        })
                    }
                    _ => j -= 2,
                }
            } else if j == 0 {
                return Some(Column {
                    element,
                    kind: ColumnKind::Element,
                });
            } else {
                j -= 1;
            }
        }
        for el in p.ignored {
            for (index, (pos, _)) in self.lines_in_axis(*el).enumerate() {
                if j == 0 {
                    let kind = ColumnKind::IgnoredLine {
                        index: index as u16,
                        line: pos as u16,
                    };
                    return Some(Column {
                        element: Some(*el),
                        kind,
                    });
                }
                j -= 1;
            }
        }
        match (p.bremsstrahlung, j) {
            (true, 0) => Some(Column {
                element: None,
                kind: ColumnKind::Bremsstrahlung0,
            }),
            (true, 1) => Some(Column {
                element: None,
                kind: ColumnKind::Bremsstrahlung1,
            }),
            _ => None,
        }
    }

    /// All columns in order.
    pub fn columns(&self) -> impl Iterator<Item = Column> + Clone + '_ {
        (0..self.n_columns).filter_map(move |j| self.column(j))
    }

    /// Indices of the W rows on the simplex (espm's `NMF_simplex()`), in order.
    pub fn simplex_rows(&self) -> impl Iterator<Item = usize> + Clone + '_ {
        self.columns()
            .enumerate()
            .filter(|(_, c)| c.in_simplex())
            .map(|(j, _)| j)
    }
}
