//! The Lagrange multiplier ν that puts a multiplicative update on the simplex:
//! solve Σ_i max(num_i/(den_i + ν), ε) = 1 for each column.
//!
//! f(ν) = Σ_i max(num_i/(den_i + ν), ε) − 1 is convex and decreasing right of its first pole,
//! so Newton's method started left of the root climbs to it monotonically; that is the default
//! and reaches machine precision. [`espm_bisection`] reproduces espm's `dichotomy_simplex`
//! (joint bisection of all columns to a residual of 1e-5) for compat runs.

use crate::float::Float;

/// espm's bracket for one column: (a, b) with f(a) > 0 > f(b) for a target sum `target`
/// (espm: 1).
fn bracket<T: Float>(num: impl Iterator<Item = (T, T)> + Clone, rows: usize, target: T) -> (T, T) {
    let mut a = -T::MAX;
    let (mut max_num, mut min_den) = (-T::MAX, T::MAX);
    for (n, d) in num {
        if n > T::ZERO {
            a = a.max(n / T::from_f64(2.0) - d);
        }
        max_num = max_num.max(n);
        min_den = min_den.min(d);
    }
    let b = T::from_usize(rows) * max_num / (T::from_f64(0.5) * target) - min_den;
    (a, b)
}

fn residual<T: Float>(col: impl Iterator<Item = (T, T)>, nu: T, eps: T) -> T {
    col.fold(T::ZERO, |s, (n, d)| s + (n / (nu + d)).max(eps)) - T::ONE
}

/// Solves one column to machine precision so that its entries sum to `target` (in (rows·ε, 1]);
/// `col` yields `(num_i, den_i)`.
///
/// Returns `None` when the column has no positive numerator (then no ν exists).
pub(crate) fn newton<T: Float>(
    col: impl Iterator<Item = (T, T)> + Clone,
    rows: usize,
    eps: T,
    target: T,
) -> Option<T> {
    if !col.clone().any(|(n, _)| n > T::ZERO) {
        return None;
    }
    let (mut lo, mut hi) = bracket(col.clone(), rows, target);
    let mut nu = lo;
    for _ in 0..200 {
        let mut f = -target;
        let mut df = T::ZERO;
        for (n, d) in col.clone() {
            let q = n / (nu + d);
            if q > eps {
                f += q;
                df -= q / (nu + d);
            } else {
                f += eps;
            }
        }
        if f == T::ZERO {
            return Some(nu);
        }
        if f > T::ZERO {
            lo = nu;
        } else {
            hi = nu;
        }
        let step = if df < T::ZERO { -f / df } else { T::ZERO };
        let mut next = nu + step;
        if !(next > lo && next < hi) || step == T::ZERO {
            next = lo + (hi - lo) / T::from_f64(2.0);
        }
        if next == nu || (hi - lo) <= T::EPSILON * (lo.abs() + hi.abs()) {
            return Some(next);
        }
        nu = next;
    }
    Some(nu)
}

/// espm's `dichotomy_simplex`: all `cols` columns of the row-major `rows×cols` matrices `num`
/// and `den` are bisected together until the largest residual is ≤ `tol` or 100 steps.
///
/// `nu`, `a`, `b` and `f_mid` hold `cols` values each; columns without a positive numerator
/// get ν = 0 (espm asserts instead).
#[allow(clippy::too_many_arguments)]
pub(crate) fn espm_bisection<T: Float>(
    num: &[T],
    den: &[T],
    rows: usize,
    cols: usize,
    eps: T,
    tol: T,
    nu: &mut [T],
    a: &mut [T],
    b: &mut [T],
    f_mid: &mut [T],
) {
    let col = |j: usize| (0..rows).map(move |i| (num[i * cols + j], den[i * cols + j]));
    let live = |j: usize| col(j).any(|(n, _)| n > T::ZERO);
    for j in 0..cols {
        let (lo, hi) = if live(j) {
            bracket(col(j), rows, T::ONE)
        } else {
            (T::ZERO, T::ZERO)
        };
        a[j] = lo;
        b[j] = hi;
        nu[j] = (lo + hi) / T::from_f64(2.0);
        f_mid[j] = if live(j) {
            residual(col(j), nu[j], eps)
        } else {
            T::ZERO
        };
    }
    let worst = |f: &[T]| f.iter().fold(T::ZERO, |m, v| m.max(v.abs()));
    let mut it = 0;
    while worst(&f_mid[..cols]) > tol {
        it += 1;
        for j in 0..cols {
            if !live(j) {
                continue;
            }
            let fa = residual(col(j), a[j], eps);
            if fa * f_mid[j] <= T::ZERO {
                b[j] = nu[j];
            } else {
                a[j] = nu[j];
            }
            nu[j] = (a[j] + b[j]) / T::from_f64(2.0);
            f_mid[j] = residual(col(j), nu[j], eps);
        }
        if it >= 100 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newton_reaches_machine_precision() {
        let num = [0.3f64, 2.0, 0.0, 1e-3, 5.0];
        let den = [1.0f64, 0.5, 2.0, 3.0, 0.1];
        let col = num.iter().copied().zip(den.iter().copied());
        let nu = newton(col.clone(), 5, 1e-14, 1.0).unwrap();
        let s: f64 = col.map(|(n, d)| (n / (d + nu)).max(1e-14)).sum();
        assert!((s - 1.0).abs() < 1e-14, "{s}");
    }

    #[test]
    fn no_positive_numerator_has_no_solution() {
        let col = [(0.0f64, 1.0), (0.0, 2.0)].into_iter();
        assert!(newton(col, 2, 1e-14, 1.0).is_none());
    }
}
