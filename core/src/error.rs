//! Typed errors of the core; each variant names the offending value.

use core::fmt;

/// Why a model could not be set up, or G could not be built or updated.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ModelError {
    /// A symbol that is not a chemical element of the tables.
    UnknownElement {
        /// The symbol as given, truncated to 8 bytes.
        symbol: [u8; 8],
        /// Its length in bytes (before truncation, capped at 255).
        len: u8,
    },
    /// An atomic number outside the tables (valid: 1–98).
    UnknownAtomicNumber {
        /// The atomic number.
        z: u32,
    },
    /// An element has no emission line strictly inside the energy axis.
    NoLineInAxis {
        /// Atomic number of the element.
        z: u8,
        /// First energy of the axis (keV).
        lo: f64,
        /// Last energy of the axis (keV).
        hi: f64,
    },
    /// An element appears twice in the list of modelled (or ignored) elements.
    DuplicateElement {
        /// Atomic number of the element.
        z: u8,
    },
    /// A split element that is not among the modelled elements.
    SplitNotModelled {
        /// Atomic number of the element.
        z: u8,
    },
    /// Splitting an element at this energy leaves one of its two columns without lines.
    EmptySplitColumn {
        /// Atomic number of the element.
        z: u8,
        /// The cut energy (keV).
        cut: f64,
    },
    /// No modelled element was given.
    NoElements,
    /// The energy offset must be positive and finite.
    InvalidOffset {
        /// The offset (keV).
        offset: f64,
    },
    /// The channel width must be positive and finite.
    InvalidScale {
        /// The scale (keV per channel).
        scale: f64,
    },
    /// At least two channels are needed.
    InvalidChannels {
        /// The number of channels.
        channels: usize,
    },
    /// The beam energy has no line table (100, 200 and 300 keV are tabulated).
    UnsupportedBeamEnergy {
        /// The beam energy (keV).
        e0: f64,
    },
    /// An energy outside the tabulated detector efficiency curve.
    EnergyOutsideDetectorCurve {
        /// The energy (keV).
        energy: f64,
        /// First tabulated energy (keV).
        min: f64,
        /// Last tabulated energy (keV).
        max: f64,
    },
    /// The peak width (FWHM = slope·E + intercept) is not positive at some line energy.
    InvalidPeakWidth {
        /// The line energy (keV).
        energy: f64,
        /// The resulting FWHM (keV).
        fwhm: f64,
    },
    /// Sample thickness must be positive and finite (disable absorption instead of passing 0).
    NonPositiveThickness {
        /// The thickness (cm).
        thickness: f64,
    },
    /// Sample density must be positive and finite.
    NonPositiveDensity {
        /// The density (g/cm³).
        density: f64,
    },
    /// The take-off angle must be in (0, 90] degrees.
    InvalidTakeOffAngle {
        /// The angle (degrees).
        toa: f64,
    },
    /// No mass attenuation data for this element (tabulated: Z 3–92), or the core was built
    /// without the `absorption` feature.
    NoAbsorptionData {
        /// Atomic number of the element.
        z: u8,
    },
    /// No density is known for this element; give the sample density explicitly.
    UnknownDensity {
        /// Atomic number of the element.
        z: u8,
    },
    /// A caller buffer is shorter than required.
    BufferTooSmall {
        /// Which buffer (`"g"`, `"scratch"`, `"w"`).
        buffer: &'static str,
        /// Required length.
        needed: usize,
        /// Given length.
        got: usize,
    },
    /// The number of components must be at least one.
    ZeroComponents,
    /// A composition derived from W is not usable (negative, non-finite or all zero).
    InvalidComposition,
    /// The model has no bremsstrahlung columns to update.
    NoBremsstrahlung,
    /// A computed value was not finite (inputs far outside physical ranges).
    NonFinite {
        /// Where it happened.
        what: &'static str,
    },
}

impl ModelError {
    /// Builds [`ModelError::UnknownElement`] from the offending symbol.
    pub fn unknown_element(symbol: &str) -> Self {
        let mut buf = [0u8; 8];
        let bytes = symbol.as_bytes();
        let n = bytes.len().min(8);
        buf[..n].copy_from_slice(&bytes[..n]);
        ModelError::UnknownElement {
            symbol: buf,
            len: bytes.len().min(255) as u8,
        }
    }
}

fn sym(z: u8) -> &'static str {
    edxs_tables::symbol(z).unwrap_or("?")
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ModelError::*;
        match *self {
            UnknownElement { symbol, len } => {
                let n = (len as usize).min(8);
                let s = core::str::from_utf8(&symbol[..n]).unwrap_or("<non-UTF-8>");
                let more = if len as usize > 8 { "…" } else { "" };
                write!(f, "unknown element '{s}{more}'")
            }
            UnknownAtomicNumber { z } => write!(f, "unknown atomic number {z} (valid: 1-98)"),
            NoLineInAxis { z, lo, hi } => write!(
                f,
                "element {} (Z={z}) has no X-ray line inside the energy axis {lo}..{hi} keV",
                sym(z)
            ),
            DuplicateElement { z } => write!(f, "element {} (Z={z}) is listed twice", sym(z)),
            SplitNotModelled { z } => write!(
                f,
                "split element {} (Z={z}) is not among the modelled elements",
                sym(z)
            ),
            EmptySplitColumn { z, cut } => write!(
                f,
                "splitting {} (Z={z}) at {cut} keV leaves a column with no line inside the axis",
                sym(z)
            ),
            NoElements => write!(f, "no element to model"),
            InvalidOffset { offset } => {
                write!(f, "energy offset must be positive, got {offset} keV")
            }
            InvalidScale { scale } => {
                write!(f, "energy scale must be positive, got {scale} keV/channel")
            }
            InvalidChannels { channels } => {
                write!(f, "need at least 2 channels, got {channels}")
            }
            UnsupportedBeamEnergy { e0 } => write!(
                f,
                "no X-ray line table for beam energy {e0} keV (tabulated: 100, 200, 300 keV)"
            ),
            EnergyOutsideDetectorCurve { energy, min, max } => write!(
                f,
                "energy {energy} keV is outside the detector efficiency curve ({min}..{max} keV)"
            ),
            InvalidPeakWidth { energy, fwhm } => write!(
                f,
                "peak width (FWHM) at {energy} keV is {fwhm} keV; it must be positive"
            ),
            NonPositiveThickness { thickness } => {
                write!(f, "sample thickness must be positive, got {thickness} cm")
            }
            NonPositiveDensity { density } => {
                write!(f, "sample density must be positive, got {density} g/cm3")
            }
            InvalidTakeOffAngle { toa } => {
                write!(f, "take-off angle must be in (0, 90] degrees, got {toa}")
            }
            NoAbsorptionData { z } => write!(
                f,
                "no mass attenuation data for {} (Z={z}); tabulated: Z 3-92 with the 'absorption' feature",
                sym(z)
            ),
            UnknownDensity { z } => write!(
                f,
                "no tabulated density for {} (Z={z}); give the sample density",
                sym(z)
            ),
            BufferTooSmall {
                buffer,
                needed,
                got,
            } => write!(
                f,
                "buffer '{buffer}' too small: need {needed} elements, got {got}"
            ),
            ZeroComponents => write!(f, "the number of components must be at least 1"),
            InvalidComposition => write!(
                f,
                "composition from W is unusable (negative, non-finite or all zero)"
            ),
            NoBremsstrahlung => write!(f, "the model has no bremsstrahlung columns"),
            NonFinite { what } => write!(f, "non-finite value computed in {what}"),
        }
    }
}

impl core::error::Error for ModelError {}

/// Why the solver refused its inputs or could not proceed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SolverError {
    /// A buffer has the wrong length.
    DimensionMismatch {
        /// Which buffer (`"g"`, `"w"`, `"h"`, `"counts"`, `"workspace"`, …).
        buffer: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        got: usize,
    },
    /// A count is negative or not finite.
    InvalidCount {
        /// Pixel index.
        pixel: usize,
        /// Channel index.
        channel: usize,
        /// The value.
        value: f64,
    },
    /// Sparse counts are malformed (indptr not monotone, channel out of range or unsorted).
    MalformedSparse {
        /// Pixel index where the problem was found.
        pixel: usize,
    },
    /// The number of components must be at least one.
    ZeroComponents,
    /// The data has no pixel or no channel.
    EmptyData,
    /// The scan shape does not match the number of pixels.
    ShapeMismatch {
        /// Rows of the scan.
        rows: usize,
        /// Columns of the scan.
        cols: usize,
        /// Number of pixels.
        pixels: usize,
    },
    /// A parameter is out of range (negative μ or λ, ε_reg ≤ 0, non-finite values…).
    InvalidParameter {
        /// Parameter name.
        name: &'static str,
        /// The value.
        value: f64,
    },
    /// `mu` must have 1 or K entries.
    MuLength {
        /// Given length.
        got: usize,
        /// Number of components.
        k: usize,
    },
    /// A simplex row index is outside W.
    SimplexRowOutOfRange {
        /// The row.
        row: usize,
    },
    /// ε·(number of simplex rows) ≥ 1: no point of the simplex satisfies the lower bound.
    SimplexInfeasible {
        /// Number of rows in the simplex.
        rows: usize,
    },
    /// Fixed W entries of a component already exceed 1 on the simplex rows (or leave no free row
    /// while summing to less than 1).
    FixedWBreaksSimplex {
        /// Component index.
        component: usize,
        /// Sum of its fixed simplex entries.
        sum: f64,
    },
    /// An initial W or H entry is negative or not finite.
    InvalidInitial {
        /// `"w"` or `"h"`.
        buffer: &'static str,
        /// Flat index.
        index: usize,
    },
    /// A pixel range of a block call is reversed or reaches past the last pixel.
    PixelRange {
        /// First pixel of the range.
        start: usize,
        /// One past the last pixel.
        end: usize,
        /// Number of pixels P.
        pixels: usize,
    },
    /// The G update failed.
    Model(ModelError),
}

impl From<ModelError> for SolverError {
    fn from(e: ModelError) -> Self {
        SolverError::Model(e)
    }
}

impl fmt::Display for SolverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SolverError::*;
        match *self {
            DimensionMismatch {
                buffer,
                expected,
                got,
            } => write!(
                f,
                "buffer '{buffer}' has {got} elements, expected {expected}"
            ),
            InvalidCount {
                pixel,
                channel,
                value,
            } => write!(
                f,
                "count at pixel {pixel}, channel {channel} is {value}; counts must be finite and >= 0"
            ),
            MalformedSparse { pixel } => write!(
                f,
                "sparse counts malformed at pixel {pixel} (indptr not increasing, or channels out of range or unsorted)"
            ),
            ZeroComponents => write!(f, "the number of components must be at least 1"),
            EmptyData => write!(f, "the data has no pixel or no channel"),
            ShapeMismatch { rows, cols, pixels } => write!(
                f,
                "scan shape {rows}x{cols} does not match {pixels} pixels"
            ),
            InvalidParameter { name, value } => write!(f, "invalid {name}: {value}"),
            MuLength { got, k } => write!(f, "mu has {got} values; give 1 or {k}"),
            SimplexRowOutOfRange { row } => write!(f, "simplex row {row} is outside W"),
            SimplexInfeasible { rows } => write!(
                f,
                "no solution: {rows} simplex rows times the lower bound epsilon is >= 1"
            ),
            FixedWBreaksSimplex { component, sum } => write!(
                f,
                "fixed W entries of component {component} sum to {sum} on the simplex rows; they must leave room to sum to 1"
            ),
            InvalidInitial { buffer, index } => write!(
                f,
                "initial {buffer}[{index}] is negative or not finite"
            ),
            PixelRange { start, end, pixels } => write!(
                f,
                "pixel range {start}..{end} is not within the {pixels} pixels"
            ),
            Model(e) => write!(f, "model update: {e}"),
        }
    }
}

impl core::error::Error for SolverError {}
