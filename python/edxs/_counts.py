"""Count matrices as the Rust solver takes them: per-pixel sparse (CSR over pixels).

Dense numpy arrays of any integer or float dtype, C or Fortran order, and scipy.sparse matrices
are converted without ever making a dense float64 copy: only the non-zero counts are copied.
"""

import hashlib

import numpy as np


def is_sparse(x):
    """True for scipy.sparse matrices and arrays (checked by duck typing: scipy is optional)."""
    return hasattr(x, "tocsr") and hasattr(x, "nnz") and hasattr(x, "format")


class Counts:
    """P pixels x L channels of counts, pixel by pixel: `indptr` (P+1), `indices`, `values`."""

    def __init__(self, indptr, indices, values, pixels, channels):
        self.indptr = np.ascontiguousarray(indptr, dtype=np.uint64)
        self.indices = np.ascontiguousarray(indices, dtype=np.uint32)
        self.values = np.ascontiguousarray(values, dtype=np.float64)
        self.pixels = int(pixels)
        self.channels = int(channels)

    @classmethod
    def concat(cls, parts):
        """Pixels of `parts` one after the other (all with the same channels)."""
        if len(parts) == 1:
            return parts[0]
        channels = parts[0].channels
        for p in parts:
            if p.channels != channels:
                raise ValueError(
                    f"X: a chunk has {p.channels} channels, the first had {channels}"
                )
        offsets = np.cumsum([0] + [len(p.values) for p in parts[:-1]]).astype(np.uint64)
        indptr = np.concatenate(
            [parts[0].indptr[:1]] + [p.indptr[1:] + o for p, o in zip(parts, offsets)]
        )
        return cls(
            indptr,
            np.concatenate([p.indices for p in parts]),
            np.concatenate([p.values for p in parts]),
            sum(p.pixels for p in parts),
            channels,
        )

    def pixel_totals(self):
        """Total counts of every pixel."""
        rows = np.repeat(np.arange(self.pixels), np.diff(self.indptr).astype(np.int64))
        return np.bincount(rows, weights=self.values, minlength=self.pixels)

    def fingerprint(self):
        """A digest that tells two count matrices apart (used to match HyperSpy's chunks)."""
        h = hashlib.blake2b(digest_size=16)
        for a in (self.indptr, self.indices, self.values):
            h.update(a.tobytes())
        h.update(np.array([self.pixels, self.channels], dtype=np.int64).tobytes())
        return h.hexdigest()

    def buffers(self):
        """The three arrays as bytes for the extension module."""
        return self.indptr.tobytes(), self.indices.tobytes(), self.values.tobytes()


def _check_dtype(dtype, name):
    if dtype.kind not in "iuf":
        raise TypeError(
            f"{name}: counts must have an integer or float dtype, got {dtype} "
            "(cast booleans or other types explicitly)"
        )


def _check_values(values, name):
    if values.size == 0:
        return
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(f"{name}: contains {int(bad.sum())} NaN or infinite value(s)")
    if values.min() < 0:
        raise ValueError(
            f"{name}: contains negative counts (minimum {values.min()}); "
            "counts must be >= 0"
        )


def to_counts(x, pixel_major, name="X"):
    """`x` as Counts: `pixel_major` means x is (pixels, channels) (HyperSpy's layout,
    espm's hspy_comp=True), otherwise (channels, pixels) (espm's default)."""
    if is_sparse(x):
        if len(x.shape) != 2:
            raise ValueError(f"{name}: expected a 2-D matrix, got shape {x.shape}")
        _check_dtype(np.dtype(x.dtype), name)
        # Pixels as compressed rows: CSR of (P, L), or CSC of (L, P) whose columns are pixels.
        s = x.tocsr() if pixel_major else x.tocsc()
        if s is x:
            s = s.copy()  # sum_duplicates/sort_indices work in place: leave the caller's alone
        s.sum_duplicates()
        s.sort_indices()
        values = np.asarray(s.data, dtype=np.float64)
        _check_values(values, name)
        pixels, channels = (x.shape[0], x.shape[1]) if pixel_major else (x.shape[1], x.shape[0])
        return Counts(s.indptr, s.indices, values, pixels, channels)
    a = np.asarray(x)
    if a.dtype == object:
        raise TypeError(f"{name}: expected a numeric array or scipy.sparse matrix, got objects")
    _check_dtype(a.dtype, name)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got shape {a.shape}")
    view = a if pixel_major else a.T  # (P, L); a view, whatever the memory order
    pixels, channels = view.shape
    if pixels == 0 or channels == 0:
        raise ValueError(f"{name}: empty array of shape {a.shape}")
    mask = view != 0
    per_pixel = np.count_nonzero(mask, axis=1)
    # nonzero walks the view in row-major order: pixel by pixel, channels increasing.
    _, cols = np.nonzero(mask)
    values = np.asarray(view[mask], dtype=np.float64)
    del mask
    _check_values(values, name)
    indptr = np.zeros(pixels + 1, dtype=np.uint64)
    np.cumsum(per_pixel, out=indptr[1:])
    return Counts(indptr, cols, values, pixels, channels)
