//! X-ray data for EDX modelling as `const` tables, usable from `no_std` without allocation.
//!
//! Everything under `generated/` is written by `gen/gen_tables.py` from espm 1.1.3 and its
//! dependencies (see `gen/README.md` for provenance and licences); do not edit it by hand.
#![no_std]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod generated;

pub use generated::elements::ELEMENTS;
pub use generated::lines_100kev::LINES_100KEV;
pub use generated::lines_200kev::LINES_200KEV;
pub use generated::lines_300kev::LINES_300KEV;
#[cfg(feature = "absorption")]
pub use generated::mac::MAC_TABLES;
pub use generated::names::IUPAC_NAMES;
pub use generated::sdd::{SDD_EFFICIENCY, SDD_ENERGIES};
pub use generated::siegbahn::SIEGBAHN_TO_IUPAC;

/// Largest atomic number present in any table.
pub const MAX_Z: u8 = 98;

/// One characteristic X-ray line of an element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Line {
    /// Line energy in keV.
    pub energy: f64,
    /// Production cross-section per atom and incident electron, in cm².
    pub cs: f64,
    /// Index of the IUPAC transition name in [`IUPAC_NAMES`].
    pub name: u8,
}

impl Line {
    /// IUPAC transition name of the line (e.g. `"KL3"`).
    pub fn iupac(&self) -> &'static str {
        IUPAC_NAMES.get(self.name as usize).copied().unwrap_or("?")
    }
}

/// The lines of all elements for one beam energy, in espm's per-element order.
#[derive(Debug)]
pub struct LineTable {
    /// Beam energy the cross-sections were computed for, in keV.
    pub beam_energy_kev: u16,
    /// All lines, grouped by element in increasing Z.
    pub lines: &'static [Line],
    /// For each Z (index), `(start, len)` into `lines`; `len == 0` when the element has no line.
    pub element_ranges: &'static [(u16, u16); MAX_Z as usize + 1],
}

impl LineTable {
    /// Lines of element `z` in espm's order; empty when the table has none.
    pub fn lines_of(&self, z: u8) -> &'static [Line] {
        match self.element_ranges.get(z as usize) {
            Some(&(start, len)) => {
                let (s, l) = (start as usize, len as usize);
                self.lines.get(s..s + l).unwrap_or(&[])
            }
            None => &[],
        }
    }
}

/// Picks the line table computed for beam energy `e0_kev` (100, 200 or 300 keV exactly).
pub fn line_table(e0_kev: f64) -> Option<&'static LineTable> {
    if e0_kev == 100.0 {
        Some(&LINES_100KEV)
    } else if e0_kev == 200.0 {
        Some(&LINES_200KEV)
    } else if e0_kev == 300.0 {
        Some(&LINES_300KEV)
    } else {
        None
    }
}

/// Physical data of one element.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElementData {
    /// Chemical symbol (`""` for index 0).
    pub symbol: &'static str,
    /// Atomic mass from espm's periodic table (g/mol), used for mass-thickness and wt.%.
    pub atomic_mass: f64,
    /// Atomic weight used for absorption (atomic → weight fractions), from the exspy database.
    pub atomic_weight: f64,
    /// Density in g/cm³ used for absorption (gases at their gas density), from the exspy
    /// database; `NaN` when unknown.
    pub density: f64,
}

/// Atomic number of a chemical symbol (exact, case-sensitive), as espm converts symbols.
pub fn z_from_symbol(symbol: &str) -> Option<u8> {
    ELEMENTS
        .iter()
        .position(|e| !e.symbol.is_empty() && e.symbol == symbol)
        .map(|z| z as u8)
}

/// Chemical symbol of atomic number `z`, if tabulated.
pub fn symbol(z: u8) -> Option<&'static str> {
    ELEMENTS
        .get(z as usize)
        .map(|e| e.symbol)
        .filter(|s| !s.is_empty())
}

/// Mass attenuation coefficients of one element, sorted by energy, as espm interpolates them.
#[derive(Debug)]
pub struct MacTable {
    /// Knot energies in keV, strictly increasing (the first is the spurious 0 keV point).
    pub energies: &'static [f64],
    /// Mass attenuation coefficient at each knot, in cm²/g.
    pub mac: &'static [f64],
}

/// Mass attenuation table of element `z`, if tabulated (Z 3–92).
#[cfg(feature = "absorption")]
pub fn mac_table(z: u8) -> Option<&'static MacTable> {
    MAC_TABLES
        .get(z as usize)
        .filter(|t| !t.energies.is_empty())
}
