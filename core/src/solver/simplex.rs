//! The Lagrange multiplier ν that puts a multiplicative update on the simplex:
//! solve Σ_i max(num_i/(den_i + ν), ε) = 1 for each column.
//!
//! f(ν) = Σ_i max(num_i/(den_i + ν), ε) − 1 is convex and decreasing right of its first pole,
//! so Newton's method started left of the root climbs to it monotonically; that is the default
//! and reaches machine precision. [`espm_bisection`] reproduces espm's `dichotomy_simplex`
//! (joint bisection of all columns to a residual of 1e-5) for compat runs.

use crate::float::Float;
use crate::view::MatRef;

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

/// How [`repair`] replaces a simplex column's entries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fix<T> {
    /// n_i/((d_i − d*) + t), floored at ε: the root solved in t = ν + d*.
    Shift(T, T),
    /// The same share for every row: no row has a positive numerator, or every denominator is
    /// zero, so nothing tells the rows apart.
    Even(T),
}

impl<T: Float> Fix<T> {
    /// Stores the fix in three workspace values (a code, then two values).
    pub(crate) fn store(fix: Option<Self>, out: [&mut T; 3]) {
        let (code, a, b) = match fix {
            None => (0.0, T::ZERO, T::ZERO),
            Some(Fix::Shift(d, t)) => (1.0, d, t),
            Some(Fix::Even(s)) => (2.0, s, T::ZERO),
        };
        let [o0, o1, o2] = out;
        *o0 = T::from_f64(code);
        *o1 = a;
        *o2 = b;
    }

    /// Reads what [`Fix::store`] wrote.
    pub(crate) fn load(code: T, a: T, b: T) -> Option<Self> {
        if code == T::ONE {
            Some(Fix::Shift(a, b))
        } else if code > T::ONE {
            Some(Fix::Even(a))
        } else {
            None
        }
    }
}

/// The rounding guard of a simplex column. When the numerators are far below the ulp of the
/// denominators (a component that has almost died), the root ν ≈ −d* + n*/(1−ε), d* the
/// smallest denominator with a positive numerator, is not representable: ν lands on or next
/// to the pole and the entries n_i/(d_i + ν) are ∞ or do not sum to the target. Solving again
/// in t = ν + d* (denominators d_i − d*, exact near d*) resolves the root at any scale. A
/// column that no solve can place (no positive numerator, zero denominators: a G column of
/// zeros) is spread evenly.
///
/// Returns `None` in the usual case (the entries at `nu` sum to `target` within `tol`·target:
/// pass [`tol_of`] of the solver that found ν), so nothing changes; else the [`Fix`] for
/// [`value`].
pub(crate) fn repair<T: Float>(
    col: impl Iterator<Item = (T, T)> + Clone,
    rows: usize,
    nu: T,
    eps: T,
    target: T,
    tol: T,
) -> Option<Fix<T>> {
    let sum = col
        .clone()
        .fold(T::ZERO, |s, (n, d)| s + (n / (d + nu)).max(eps));
    if (sum - target).abs() <= tol * target || rows == 0 {
        return None;
    }
    let d_star = col
        .clone()
        .filter(|(n, _)| *n > T::ZERO)
        .fold(T::MAX, |m, (_, d)| m.min(d));
    let shifted = col.clone().map(|(n, d)| (n, d - d_star));
    if let Some(t) = newton(shifted.clone(), rows, eps, target) {
        let fix = Fix::Shift(d_star, t);
        let sum = col.fold(T::ZERO, |s, (n, d)| s + value(n, d, nu, eps, Some(fix)));
        if (sum - target).abs() <= tol * target {
            return Some(fix);
        }
    }
    Some(Fix::Even(target / T::from_usize(rows)))
}

/// How far from the target a column may sum before [`repair`] steps in: Newton meets it to
/// rounding, espm's bisection only to 1e-5 (and its answer is kept).
pub(crate) fn tol_of<T: Float>(solver: super::SimplexSolver) -> T {
    match solver {
        super::SimplexSolver::Newton => T::EPSILON * T::from_f64(1e4),
        super::SimplexSolver::EspmBisection => T::from_f64(1e-3),
    }
}

/// One entry of a simplex column, max(n/(d + ν), ε), or from the repaired column (`fix` from
/// [`repair`]).
#[inline]
pub(crate) fn value<T: Float>(n: T, d: T, nu: T, eps: T, fix: Option<Fix<T>>) -> T {
    match fix {
        None => (n / (d + nu)).max(eps),
        Some(Fix::Shift(d_star, t)) => (n / ((d - d_star) + t)).max(eps),
        Some(Fix::Even(share)) => share,
    }
}

/// espm's `dichotomy_simplex`: all `cols` columns of the row-major `rows×cols` matrices `num`
/// and `den` are bisected together until the largest residual is ≤ `tol` or 100 steps.
///
/// `nu` holds `cols` values and `scratch` 3·`cols` (the brackets and the mid residuals);
/// columns without a positive numerator get ν = 0 (espm asserts instead).
pub(crate) fn espm_bisection<T: Float>(
    num: MatRef<'_, T>,
    den: MatRef<'_, T>,
    eps: T,
    tol: T,
    nu: &mut [T],
    scratch: &mut [T],
) {
    let (rows, cols) = (num.rows(), num.cols());
    let (num, den) = (num.as_slice(), den.as_slice());
    let (a, rest) = scratch.split_at_mut(cols);
    let (b, f_mid) = rest.split_at_mut(cols);
    let f_mid = &mut f_mid[..cols];
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
    fn repair_resolves_a_root_below_the_ulp_of_the_denominators() {
        // Component 0 of the fuzzer's crash-313c17de at its third W step: numerators ~1e-25
        // against denominators ~1e3, so ν = −d₁ + n₁/(1−ε) rounds to −d₁ and the plain
        // update divides by zero.
        let col = [
            (7.710667389722602e-26f64, 1.0840370210074104e3),
            (2.9051084561570725e-25, 9.214314678562989e2),
        ];
        let tol = tol_of(crate::solver::SimplexSolver::Newton);
        let nu = newton(col.iter().copied(), 2, 1e-14, 1.0).unwrap();
        let plain: f64 = col.iter().map(|&(n, d)| (n / (d + nu)).max(1e-14)).sum();
        assert!(
            !((plain - 1.0).abs() < 1e-3),
            "plain update sums to {plain}"
        );
        let fix = repair(col.iter().copied(), 2, nu, 1e-14, 1.0, tol);
        assert!(matches!(fix, Some(Fix::Shift(..))), "{fix:?}");
        let v: [f64; 2] = core::array::from_fn(|i| value(col[i].0, col[i].1, nu, 1e-14, fix));
        assert!((v[0] + v[1] - 1.0).abs() < 1e-15, "{v:?}");
        // The exact root: row 0 gets n₀/(d₀ − d₁) ≈ 5e-28, floored at ε.
        assert_eq!(v[0], 1e-14);
    }

    #[test]
    fn repair_leaves_a_solved_column_alone() {
        let num = [0.3f64, 2.0, 0.0, 1e-3, 5.0];
        let den = [1.0f64, 0.5, 2.0, 3.0, 0.1];
        let col = num.iter().copied().zip(den.iter().copied());
        let nu = newton(col.clone(), 5, 1e-14, 1.0).unwrap();
        let tol = tol_of(crate::solver::SimplexSolver::Newton);
        assert_eq!(repair(col, 5, nu, 1e-14, 1.0, tol), None);
    }

    #[test]
    fn a_column_without_evidence_is_spread_evenly() {
        // A G column of zeros: numerators and denominators 0, ν = 0.
        let col = [(0.0f64, 0.0), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)];
        let tol = tol_of(crate::solver::SimplexSolver::Newton);
        let fix = repair(col.iter().copied(), 4, 0.0, 1e-14, 0.8, tol);
        assert_eq!(fix, Some(Fix::Even(0.2)));
        assert_eq!(value(0.0, 0.0, 0.0, 1e-14, fix), 0.2);
    }

    #[test]
    fn no_positive_numerator_has_no_solution() {
        let col = [(0.0f64, 1.0), (0.0, 2.0)].into_iter();
        assert!(newton(col, 2, 1e-14, 1.0).is_none());
    }
}
