//! Row-major matrix views that carry their dimensions (faer's `MatRef`/`MatMut`): a function
//! takes one checked view per matrix instead of a bare slice and its dimensions, and the
//! lengths are checked once, where the view is made.

use crate::error::SolverError;

/// The length of a `rows`×`cols` matrix in `buffer`, checked against `len`.
fn checked_len(
    buffer: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<usize, SolverError> {
    let need = rows.saturating_mul(cols);
    if len < need {
        return Err(SolverError::DimensionMismatch {
            buffer,
            expected: need,
            got: len,
        });
    }
    Ok(need)
}

/// A read-only `rows`×`cols` row-major matrix.
///
/// ```
/// use edxs_core::view::MatRef;
///
/// let g = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let view = MatRef::new("g", &g, 3, 2).unwrap();
/// assert_eq!((view.rows(), view.cols()), (3, 2));
/// assert!(MatRef::new("g", &g, 4, 2).is_err()); // names "g" and the lengths
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// Views the first `rows`·`cols` values of `data`; an error naming `buffer` when it holds
    /// fewer.
    pub fn new(
        buffer: &'static str,
        data: &'a [T],
        rows: usize,
        cols: usize,
    ) -> Result<Self, SolverError> {
        let n = checked_len(buffer, data.len(), rows, cols)?;
        Ok(MatRef {
            data: &data[..n],
            rows,
            cols,
        })
    }

    /// [`MatRef::new`] for buffers whose length the crate has already checked.
    ///
    /// # Panics
    /// When `data` holds fewer than `rows`·`cols` values.
    pub(crate) fn of(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data: &data[..rows * cols],
            rows,
            cols,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `rows`·`cols` values, row-major.
    pub fn as_slice(&self) -> &'a [T] {
        self.data
    }
}

/// A writable `rows`×`cols` row-major matrix.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// Views the first `rows`·`cols` values of `data`; an error naming `buffer` when it holds
    /// fewer.
    pub fn new(
        buffer: &'static str,
        data: &'a mut [T],
        rows: usize,
        cols: usize,
    ) -> Result<Self, SolverError> {
        let n = checked_len(buffer, data.len(), rows, cols)?;
        Ok(MatMut {
            data: &mut data[..n],
            rows,
            cols,
        })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `rows`·`cols` values, row-major.
    pub fn into_slice(self) -> &'a mut [T] {
        self.data
    }
}
