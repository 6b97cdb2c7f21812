//! Chemical elements, identified by atomic number and named by symbol.

use crate::error::ModelError;
use core::fmt;

/// A chemical element known to the tables (Z 1–98).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Element(u8);

impl Element {
    /// The element with this symbol (exact, case-sensitive, e.g. `"Fe"`), or a number (`"26"`),
    /// as espm accepts both.
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let t = s.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            let z: u32 = t.parse().map_err(|_| ModelError::unknown_element(s))?;
            return Self::from_z(z);
        }
        edxs_tables::z_from_symbol(t)
            .map(Element)
            .ok_or_else(|| ModelError::unknown_element(s))
    }

    /// The element with atomic number `z`.
    pub fn from_z(z: u32) -> Result<Self, ModelError> {
        if (1..=edxs_tables::MAX_Z as u32).contains(&z) {
            Ok(Element(z as u8))
        } else {
            Err(ModelError::UnknownAtomicNumber { z })
        }
    }

    /// Atomic number.
    pub fn z(self) -> u8 {
        self.0
    }

    /// Chemical symbol.
    pub fn symbol(self) -> &'static str {
        edxs_tables::symbol(self.0).unwrap_or("?")
    }

    /// Tabulated physical data (masses, density).
    pub fn data(self) -> &'static edxs_tables::ElementData {
        &edxs_tables::ELEMENTS[self.0 as usize]
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}
