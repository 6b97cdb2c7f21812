//! Comparing a decomposition with the truth, as espm's `measures.py` and `utils.rescaled_DH`:
//! spectral angles, pairwise map MSE, one-to-one matching and the rescaling of D and H.
//!
//! Matrices are row-major slices. espm matches components by brute force over all K!
//! permutations (`unique_min`); [`hungarian`] finds the same minimum in O(K³).

// `!(x > 0.0)` is deliberate: unlike `x <= 0.0` it also catches NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

use nalgebra::{DMatrix, DVector};

/// Angles in degrees between every row of `a` (n×len) and every row of `b` (m×len), as
/// espm's 2-D `spectral_angle`; `out[i*m + j]` is the angle between `a_i` and `b_j`. A zero row
/// gives NaN, as in espm.
pub fn spectral_angles(a: &[f64], b: &[f64], len: usize) -> Vec<f64> {
    assert!(len > 0);
    assert_eq!((a.len() % len, b.len() % len), (0, 0));
    angles_between_units(&unit_rows(a, len), &unit_rows(b, len), len)
}

/// Angles in degrees between every row of `a` (n×len) and every column of `d` (len×m: D = G·W
/// as edxs stores it, one phase spectrum per column); `out[i*m + j]` is the angle between `a_i`
/// and `d`'s column j, the same numbers as [`spectral_angles`] on `d` transposed.
pub fn spectral_angles_to_columns(a: &[f64], d: &[f64], len: usize) -> Vec<f64> {
    assert!(len > 0);
    assert_eq!((a.len() % len, d.len() % len), (0, 0));
    let m = d.len() / len;
    let ud: Vec<f64> = (0..m)
        .flat_map(|c| {
            let norm = (0..len)
                .map(|i| d[i * m + c] * d[i * m + c])
                .sum::<f64>()
                .sqrt();
            (0..len).map(move |i| d[i * m + c] / norm)
        })
        .collect();
    angles_between_units(&unit_rows(a, len), &ud, len)
}

/// Each row of `x` (rows of `len`) divided by its Euclidean norm.
fn unit_rows(x: &[f64], len: usize) -> Vec<f64> {
    x.chunks_exact(len)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            row.iter().map(move |v| v / norm)
        })
        .collect()
}

/// Angles between every row of `ua` and every row of `ub`, both of unit rows.
fn angles_between_units(ua: &[f64], ub: &[f64], len: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(ua.len() / len * (ub.len() / len));
    for ra in ua.chunks_exact(len) {
        for rb in ub.chunks_exact(len) {
            let dot: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
            out.push(angle_of_cosine(dot));
        }
    }
    out
}

/// The angle in degrees between two vectors (espm's 1-D `spectral_angle`).
pub fn spectral_angle(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let na = a.iter().map(|v| v * v).sum::<f64>().sqrt();
    let nb = b.iter().map(|v| v * v).sum::<f64>().sqrt();
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (x / na) * (y / nb)).sum();
    angle_of_cosine(dot)
}

fn angle_of_cosine(c: f64) -> f64 {
    // NaN passes through the clamp, so a zero vector gives NaN as in espm.
    c.clamp(-1.0, 1.0).acos() * 180.0 / std::f64::consts::PI
}

/// Pairwise mean squared differences between the rows of `x` (n×len) and `y` (m×len), as
/// espm's `squared_distance`: `|‖x_i‖² + ‖y_j‖² − 2 x_i·y_j| / len`.
pub fn squared_distances(x: &[f64], y: &[f64], len: usize) -> Vec<f64> {
    assert!(len > 0);
    assert_eq!((x.len() % len, y.len() % len), (0, 0));
    let sq = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>();
    let mut out = Vec::with_capacity(x.len() / len * (y.len() / len));
    for rx in x.chunks_exact(len) {
        let xx = sq(rx);
        for ry in y.chunks_exact(len) {
            let xy: f64 = rx.iter().zip(ry).map(|(a, b)| a * b).sum();
            out.push((xx + sq(ry) - 2.0 * xy).abs() / len as f64);
        }
    }
    out
}

/// Minimum-cost one-to-one assignment of a `rows`×`cols` cost matrix (Kuhn–Munkres with
/// potentials). Returns, for every row, its column, or `None` for the rows left over when
/// `rows > cols`. Non-finite costs count as worse than every finite one.
pub fn hungarian(cost: &[f64], rows: usize, cols: usize) -> Vec<Option<usize>> {
    assert_eq!(cost.len(), rows * cols);
    if rows == 0 || cols == 0 {
        return vec![None; rows];
    }
    // Replacing NaN/inf by a finite "very bad" cost keeps the potentials finite.
    let worst = cost
        .iter()
        .filter(|c| c.is_finite())
        .fold(0.0f64, |m, c| m.max(c.abs()));
    let bad = 2.0 * worst + 1.0;
    let at = |r: usize, c: usize| {
        let v = cost[r * cols + c];
        if v.is_finite() {
            v
        } else {
            bad
        }
    };
    if rows > cols {
        let t: Vec<f64> = (0..cols)
            .flat_map(|c| (0..rows).map(move |r| (r, c)))
            .map(|(r, c)| at(r, c))
            .collect();
        let col_to_row = hungarian(&t, cols, rows);
        let mut out = vec![None; rows];
        for (c, r) in col_to_row.into_iter().enumerate() {
            if let Some(r) = r {
                out[r] = Some(c);
            }
        }
        return out;
    }
    // Classic O(n²m) formulation, 1-based with a virtual column 0.
    let (n, m) = (rows, cols);
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if !used[j] {
                    let cur = at(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut out = vec![None; n];
    for j in 1..=m {
        if p[j] != 0 {
            out[p[j] - 1] = Some(j - 1);
        }
    }
    out
}

/// espm's matching convention (`unique_min` on a truth×estimate matrix): for each estimate
/// `i`, the truth row `perm[i]` it is matched with (None if there are more estimates).
pub fn match_estimates(
    truth_by_estimate: &[f64],
    n_truth: usize,
    n_est: usize,
) -> Vec<Option<usize>> {
    // Rows of the transposed matrix are estimates, so the assignment is already estimate → truth.
    let t: Vec<f64> = (0..n_est)
        .flat_map(|e| (0..n_truth).map(move |t| (t, e)))
        .map(|(t, e)| truth_by_estimate[t * n_est + e])
        .collect();
    hungarian(&t, n_est, n_truth)
}

/// espm's `rescaled_DH`: scales `s` (one per component) with `Hᵀ s ≈ 1` in least squares (NNLS
/// clipped at 1e-10 if any scale is not positive), then returns `D·diag(1/s)`, `diag(s)·H`
/// and `s`. `d` is n×k, `h` is k×p, both row-major. Inputs it cannot scale (no component, no
/// pixel, sizes not multiples of k, non-finite values) give NaN scales, never a panic or a hang.
pub fn rescaled_dh(d: &[f64], h: &[f64], k: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let unusable = k == 0
        || h.is_empty()
        || d.len().checked_rem(k) != Some(0)
        || h.len().checked_rem(k) != Some(0)
        || !d.iter().chain(h).all(|v| v.is_finite());
    if unusable {
        return (d.to_vec(), h.to_vec(), vec![f64::NAN; k]);
    }
    let p = h.len() / k;
    let ht = DMatrix::from_fn(p, k, |r, c| h[c * p + r]);
    let ones = DVector::from_element(p, 1.0);
    let mut s = lstsq(&ht, &ones);
    if s.iter().any(|v| !(*v > 0.0)) {
        s = nnls(&ht, &ones).iter().map(|v| v.max(1e-10)).collect();
    }
    let d_out = d
        .chunks_exact(k)
        .flat_map(|row| row.iter().zip(&s).map(|(v, si)| v * (1.0 / si)))
        .collect();
    let h_out = h
        .chunks_exact(p)
        .zip(&s)
        .flat_map(|(row, si)| row.iter().map(move |v| si * v))
        .collect();
    (d_out, h_out, s)
}

/// Minimum-norm least squares, singular values below NumPy's default `rcond` dropped.
fn lstsq(a: &DMatrix<f64>, b: &DVector<f64>) -> Vec<f64> {
    let (m, n) = a.shape();
    // nalgebra's SVD iterates without end on NaN/inf, and an empty matrix has nothing to solve.
    if m == 0 || n == 0 || !a.iter().chain(b.iter()).all(|v| v.is_finite()) {
        return vec![f64::NAN; n];
    }
    let Some(svd) = nalgebra::SVD::try_new(a.clone(), true, true, f64::EPSILON, 10_000) else {
        return vec![f64::NAN; n];
    };
    let smax = svd.singular_values.iter().fold(0.0f64, |x, &y| x.max(y));
    let eps = f64::EPSILON * m.max(n) as f64 * smax;
    match svd.solve(b, eps) {
        Ok(x) => x.iter().copied().collect(),
        Err(_) => vec![f64::NAN; n],
    }
}

/// Lawson–Hanson non-negative least squares, min ‖A x − b‖ with x ≥ 0 (SciPy's `nnls`).
pub fn nnls(a: &DMatrix<f64>, b: &DVector<f64>) -> Vec<f64> {
    let (m, n) = a.shape();
    let mut x = DVector::zeros(n);
    let mut passive = vec![false; n];
    let norm1 = (0..n)
        .map(|j| a.column(j).iter().map(|v| v.abs()).sum::<f64>())
        .fold(0.0f64, f64::max);
    let tol = 10.0 * f64::EPSILON * norm1 * m.max(n) as f64;
    let solve_passive = |passive: &[bool]| -> DVector<f64> {
        let idx: Vec<usize> = (0..n).filter(|&j| passive[j]).collect();
        let sub = DMatrix::from_fn(m, idx.len(), |r, c| a[(r, idx[c])]);
        let sol = lstsq(&sub, b);
        let mut z = DVector::zeros(n);
        for (c, &j) in idx.iter().enumerate() {
            z[j] = sol[c];
        }
        z
    };
    for _outer in 0..3 * n + 3 {
        let w = a.transpose() * (b - a * &x);
        let cand = (0..n)
            .filter(|&j| !passive[j])
            .max_by(|&i, &j| w[i].total_cmp(&w[j]));
        let Some(j) = cand.filter(|&j| w[j] > tol) else {
            break;
        };
        passive[j] = true;
        let mut z = solve_passive(&passive);
        for _inner in 0..3 * n + 3 {
            let bad: Vec<usize> = (0..n).filter(|&i| passive[i] && z[i] <= 0.0).collect();
            if bad.is_empty() {
                break;
            }
            let alpha = bad
                .iter()
                .map(|&i| x[i] / (x[i] - z[i]))
                .fold(f64::INFINITY, f64::min);
            x += (&z - &x) * alpha;
            for i in 0..n {
                if passive[i] && x[i] <= tol {
                    passive[i] = false;
                    x[i] = 0.0;
                }
            }
            z = solve_passive(&passive);
        }
        x = z;
    }
    x.iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_rectangular_leaves_the_worst_row_out() {
        // Row 1 is expensive everywhere; with 2 columns it should be the unmatched row.
        let cost = [1.0, 5.0, 9.0, 9.0, 5.0, 1.0];
        let a = hungarian(&cost, 3, 2);
        assert_eq!(a, vec![Some(0), None, Some(1)]);
    }

    #[test]
    fn nan_costs_are_avoided() {
        let cost = [f64::NAN, 1.0, 2.0, 3.0];
        assert_eq!(hungarian(&cost, 2, 2), vec![Some(1), Some(0)]);
    }
}
