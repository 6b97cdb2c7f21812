//! Not-a-knot cubic spline interpolation, as SciPy's `interp1d(kind="cubic")` builds it.
//!
//! espm interpolates the detector curve and the mass attenuation tables with that spline; the
//! interpolant is unique, so solving for the knot second derivatives here reproduces SciPy
//! to rounding. The solve runs in caller scratch so the core never allocates.

use crate::float::Float;

/// Scratch elements needed by [`second_derivatives`] for `n` knots (besides the output).
pub(crate) const fn work_len(n: usize) -> usize {
    n
}

/// Writes the knot second derivatives of the not-a-knot spline through `(x, y)` into `m`.
///
/// `x` must be strictly increasing with `x.len() == y.len() >= 2`; `m` and `work` must hold
/// `x.len()` values (checked by the callers, which own the table sizes).
pub(crate) fn second_derivatives<T: Float>(x: &[f64], y: &[f64], m: &mut [T], work: &mut [T]) {
    let n = x.len();
    let m = &mut m[..n];
    let h = |i: usize| T::from_f64(x[i + 1]) - T::from_f64(x[i]);
    let d = |i: usize| (T::from_f64(y[i + 1]) - T::from_f64(y[i])) / h(i);
    let six = T::from_f64(6.0);
    let two = T::from_f64(2.0);
    if n < 3 {
        m.iter_mut().for_each(|v| *v = T::ZERO);
        return;
    }
    if n == 3 {
        // A single parabola: constant second derivative.
        let c = two * (d(1) - d(0)) / (h(0) + h(1));
        m.iter_mut().for_each(|v| *v = c);
        return;
    }
    // Unknowns M1..M_{n-2}; M0 and M_{n-1} are eliminated with the not-a-knot conditions
    // (n >= 5 here, so the first and last interior rows are distinct).
    // Row i (1-based interior index) is  lo_i·M_{i-1} + di_i·M_i + up_i·M_{i+1} = r_i.
    let last = n - 2;
    let row = |i: usize| -> (T, T, T, T) {
        let (h0, h1) = (h(i - 1), h(i));
        let r = six * (d(i) - d(i - 1));
        let mut lo = h0;
        let mut di = two * (h0 + h1);
        let mut up = h1;
        if i == 1 {
            // M0 = M1·(1 + h0/h1) − M2·h0/h1
            di = (h0 + h1) * (h0 + two * h1) / h1;
            up = (h1 * h1 - h0 * h0) / h1;
            lo = T::ZERO;
        }
        if i == last {
            // M_{n-1} = M_{n-2}·(1 + b/a) − M_{n-3}·b/a with a = h_{n-3}, b = h_{n-2}
            let (a, b) = (h0, h1);
            lo = (a * a - b * b) / a;
            di = (a + b) * (two * a + b) / a;
            up = T::ZERO;
        }
        (lo, di, up, r)
    };
    if n == 4 {
        // Two unknowns M1, M2; eliminate with both not-a-knot conditions.
        let (h0, h1, h2) = (h(0), h(1), h(2));
        let r1 = six * (d(1) - d(0));
        let r2 = six * (d(2) - d(1));
        let a11 = (h0 + h1) * (h0 + two * h1) / h1;
        let a12 = (h1 * h1 - h0 * h0) / h1;
        let a21 = (h1 * h1 - h2 * h2) / h1;
        let a22 = (h1 + h2) * (two * h1 + h2) / h1;
        let det = a11 * a22 - a12 * a21;
        let m1 = (r1 * a22 - a12 * r2) / det;
        let m2 = (a11 * r2 - a21 * r1) / det;
        m[1] = m1;
        m[2] = m2;
        m[0] = m1 * (T::ONE + h0 / h1) - m2 * h0 / h1;
        m[3] = m2 * (T::ONE + h2 / h1) - m1 * h2 / h1;
        return;
    }
    // Thomas algorithm: work holds the modified super-diagonal, m the modified right side.
    let work = &mut work[..n];
    let (_, di, up, r) = row(1);
    work[1] = up / di;
    m[1] = r / di;
    for i in 2..=last {
        let (lo, di, up, r) = row(i);
        let denom = di - lo * work[i - 1];
        work[i] = up / denom;
        m[i] = (r - lo * m[i - 1]) / denom;
    }
    for i in (1..last).rev() {
        let next = m[i + 1];
        m[i] -= work[i] * next;
    }
    let (h0, h1) = (h(0), h(1));
    m[0] = m[1] * (T::ONE + h0 / h1) - m[2] * h0 / h1;
    let (a, b) = (h(n - 3), h(n - 2));
    m[n - 1] = m[n - 2] * (T::ONE + b / a) - m[n - 3] * b / a;
}

/// Value at `at` of the spline with knots `(x, y)` and second derivatives `m`; `None` outside
/// `[x[0], x[n-1]]` (SciPy raises there).
pub(crate) fn eval<T: Float>(x: &[f64], y: &[f64], m: &[T], at: T) -> Option<T> {
    let n = x.len();
    if n < 2 || !(at >= T::from_f64(x[0]) && at <= T::from_f64(x[n - 1])) {
        return None;
    }
    // Largest i with x[i] <= at, kept inside the last interval.
    let (mut lo, mut hi) = (0usize, n - 1);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if T::from_f64(x[mid]) <= at {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let i = lo.min(n - 2);
    let (x0, x1) = (T::from_f64(x[i]), T::from_f64(x[i + 1]));
    let (y0, y1) = (T::from_f64(y[i]), T::from_f64(y[i + 1]));
    let h = x1 - x0;
    let t = at - x0;
    let u = x1 - at;
    let six = T::from_f64(6.0);
    let (m0, m1) = (m[i], m[i + 1]);
    Some(
        (m0 * u * u * u + m1 * t * t * t) / (six * h)
            + (y0 / h - m0 * h / six) * u
            + (y1 / h - m1 * h / six) * t,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_cubic_exact(x: &[f64]) {
        // A not-a-knot spline reproduces any cubic exactly.
        let f = |t: f64| 0.5 * t * t * t - 2.0 * t * t + 3.0 * t - 1.0;
        let y: [f64; 16] = core::array::from_fn(|i| if i < x.len() { f(x[i]) } else { 0.0 });
        let y = &y[..x.len()];
        let mut m = [0.0f64; 16];
        let mut w = [0.0f64; 16];
        second_derivatives(x, y, &mut m, &mut w);
        for k in 0..50 {
            let t = x[0] + (x[x.len() - 1] - x[0]) * k as f64 / 49.0;
            let v = eval(x, y, &m[..x.len()], t).unwrap();
            assert!(
                (v - f(t)).abs() < 1e-9,
                "n={} t={t} v={v} f={}",
                x.len(),
                f(t)
            );
        }
    }

    #[test]
    fn reproduces_cubics_for_every_size() {
        let xs = [0.0, 0.3, 1.0, 1.1, 2.5, 2.6, 4.0, 7.0, 7.5, 9.0];
        for n in 4..=xs.len() {
            check_cubic_exact(&xs[..n]);
        }
    }

    #[test]
    fn three_points_give_the_parabola() {
        let x = [0.0, 1.0, 3.0];
        let y = [1.0, 2.0, 10.0]; // 1 + 0·t + t²
        let mut m = [0.0f64; 3];
        let mut w = [0.0f64; 3];
        second_derivatives(&x, &y, &mut m, &mut w);
        let v = eval(&x, &y, &m, 2.0).unwrap();
        assert!((v - 5.0).abs() < 1e-12);
    }

    #[test]
    fn outside_the_knots_is_none() {
        let x = [0.0, 1.0, 2.0, 3.0];
        let y = [0.0, 1.0, 4.0, 9.0];
        let m = [2.0f64; 4];
        assert!(eval(&x, &y, &m, -1e-9).is_none());
        assert!(eval(&x, &y, &m, 3.0 + 1e-9).is_none());
        assert!(eval(&x, &y, &m, f64::NAN).is_none());
        assert_eq!(eval(&x, &y, &m, 3.0), Some(9.0));
    }
}
