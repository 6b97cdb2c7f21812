//! One type that both sizes and carves a buffer into consecutive regions, so that the length a
//! caller allocates and the regions the code reads can never disagree (faer's composable
//! scratch requirements, without allocation).

use crate::error::SolverError;

/// The lengths of `N` consecutive regions of one buffer, in order.
///
/// ```
/// use edxs_core::solver::Layout;
///
/// let layout = Layout([3, 2]);
/// let mut buf = [0.0f64; 5];
/// let [a, b] = layout.carve_mut("buf", &mut buf).unwrap();
/// a[2] = 1.0;
/// b[0] = 2.0;
/// assert_eq!(buf, [0.0, 0.0, 1.0, 2.0, 0.0]);
/// assert!(layout.carve_mut("buf", &mut [0.0f64; 4]).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout<const N: usize>(pub [usize; N]);

impl<const N: usize> Layout<N> {
    /// Total length of the regions.
    pub fn len(&self) -> usize {
        self.0.iter().sum()
    }

    /// True when every region is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that `buf` (named `buffer` in the error) holds at least [`Layout::len`] values.
    pub fn check(&self, buffer: &'static str, len: usize) -> Result<(), SolverError> {
        if len < self.len() {
            return Err(SolverError::DimensionMismatch {
                buffer,
                expected: self.len(),
                got: len,
            });
        }
        Ok(())
    }

    /// The regions of `buf` (values past [`Layout::len`] are left out).
    pub fn carve_mut<'b, T>(
        &self,
        buffer: &'static str,
        buf: &'b mut [T],
    ) -> Result<[&'b mut [T]; N], SolverError> {
        self.check(buffer, buf.len())?;
        let mut rest = buf;
        Ok(self.0.map(|n| {
            let (region, tail) = core::mem::take(&mut rest).split_at_mut(n);
            rest = tail;
            region
        }))
    }

    /// The regions of `buf`, read-only.
    pub fn carve<'b, T>(
        &self,
        buffer: &'static str,
        buf: &'b [T],
    ) -> Result<[&'b [T]; N], SolverError> {
        self.check(buffer, buf.len())?;
        let mut rest = buf;
        Ok(self.0.map(|n| {
            let (region, tail) = rest.split_at(n);
            rest = tail;
            region
        }))
    }
}
