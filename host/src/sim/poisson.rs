//! Exact Poisson deviates: NumPy's legacy algorithms (spec §3.5) on our own generator.
//!
//! λ < 10: the multiplication (inversion-by-products) method; λ ≥ 10: Hörmann's PTRS
//! transformed rejection, exact for any λ. The uniforms come from [`Rng`], so draws are not
//! NumPy's, but they follow the same distribution.

use edxs_core::rng::Rng;

/// Largest mean accepted: beyond it counts lose integer precision in f64.
pub const MAX_LAMBDA: f64 = 1e15;

/// One Poisson deviate of mean `lam` (0 ≤ λ ≤ [`MAX_LAMBDA`]; anything else returns 0 and is
/// the caller's bug, checked in debug builds).
pub fn poisson(rng: &mut Rng, lam: f64) -> u64 {
    debug_assert!((0.0..=MAX_LAMBDA).contains(&lam), "lambda = {lam}");
    if !(lam > 0.0) {
        return 0;
    }
    if lam >= 10.0 {
        return ptrs(rng, lam);
    }
    let limit = (-lam).exp();
    let mut k = 0;
    let mut prod = 1.0;
    loop {
        prod *= rng.uniform();
        if prod > limit {
            k += 1;
        } else {
            return k;
        }
    }
}

/// Hörmann (1993), "The transformed rejection method for generating Poisson random
/// variables", algorithm PTRS, with NumPy's constants.
fn ptrs(rng: &mut Rng, lam: f64) -> u64 {
    let slam = lam.sqrt();
    let loglam = lam.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let invalpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u = rng.uniform() - 0.5;
        let v = rng.uniform();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + lam + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + invalpha.ln() - (a / (us * us) + b).ln() <= -lam + k * loglam - loggam(k + 1.0)
        {
            return k as u64;
        }
    }
}

/// ln Γ(x) for x ≥ 1 by NumPy's Stirling series (exact at 1 and 2).
pub fn loggam(x: f64) -> f64 {
    const A: [f64; 10] = [
        8.333333333333333e-02,
        -2.777777777777778e-03,
        7.936507936507937e-04,
        -5.952380952380952e-04,
        8.417508417508418e-04,
        -1.917526917526918e-03,
        6.41025641025641e-03,
        -2.955065359477124e-02,
        1.796443723688307e-01,
        -1.39243221690590e+00,
    ];
    if x == 1.0 || x == 2.0 {
        return 0.0;
    }
    let n = if x < 7.0 { (7.0 - x) as i64 } else { 0 };
    let mut x0 = x + n as f64;
    let x2 = 1.0 / (x0 * x0);
    let mut gl0 = A[9];
    for &ak in A[..9].iter().rev() {
        gl0 = gl0 * x2 + ak;
    }
    let mut gl = gl0 / x0 + 0.5 * 1.8378770664093453 + (x0 - 0.5) * x0.ln() - x0;
    if x < 7.0 {
        for _ in 0..n {
            gl -= (x0 - 1.0).ln();
            x0 -= 1.0;
        }
    }
    gl
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sample mean and variance of `n` draws.
    fn moments(lam: f64, n: usize, seed: u64) -> (f64, f64) {
        let mut rng = Rng::new(seed);
        let xs: Vec<f64> = (0..n).map(|_| poisson(&mut rng, lam) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (mean, var)
    }

    #[test]
    fn mean_and_variance_match_lambda_on_both_branches() {
        let n = 200_000;
        for (i, &lam) in [0.01, 0.5, 3.0, 9.99, 10.0, 37.2, 293.0, 1.0e4]
            .iter()
            .enumerate()
        {
            let (mean, var) = moments(lam, n, 100 + i as u64);
            // Standard error of the mean: sqrt(λ/n); of the variance: about λ·sqrt(2/n).
            let se_mean = (lam / n as f64).sqrt();
            let se_var = lam * (2.0 / n as f64).sqrt() + (lam / n as f64).sqrt();
            assert!(
                (mean - lam).abs() < 5.0 * se_mean,
                "λ {lam}: mean {mean} (se {se_mean})"
            );
            assert!(
                (var - lam).abs() < 5.0 * se_var,
                "λ {lam}: variance {var} (se {se_var})"
            );
        }
    }

    /// Pearson χ² of the observed frequencies against the Poisson pmf.
    fn chi2(lam: f64, n: usize, seed: u64) -> (f64, usize) {
        let mut rng = Rng::new(seed);
        let kmax = (lam + 8.0 * lam.sqrt() + 10.0) as usize;
        let mut counts = vec![0usize; kmax + 1];
        for _ in 0..n {
            let k = (poisson(&mut rng, lam) as usize).min(kmax);
            counts[k] += 1;
        }
        let pmf = |k: usize| (-lam + k as f64 * lam.ln() - loggam(k as f64 + 1.0)).exp();
        let (mut stat, mut bins, mut acc_o, mut acc_e) = (0.0, 0usize, 0.0, 0.0);
        for (k, &c) in counts.iter().enumerate() {
            acc_o += c as f64;
            acc_e += n as f64 * pmf(k);
            // Pool bins until the expectation is large enough for the χ² approximation.
            if acc_e >= 20.0 {
                stat += (acc_o - acc_e).powi(2) / acc_e;
                bins += 1;
                acc_o = 0.0;
                acc_e = 0.0;
            }
        }
        (stat, bins.saturating_sub(1))
    }

    #[test]
    fn frequencies_follow_the_pmf() {
        for (i, &lam) in [0.7, 4.0, 12.5, 37.2, 150.0].iter().enumerate() {
            let (stat, dof) = chi2(lam, 100_000, 7 + i as u64);
            // χ² with `dof` degrees of freedom: mean dof, sd sqrt(2 dof); 6 sd is far out.
            let limit = dof as f64 + 6.0 * (2.0 * dof as f64).sqrt();
            assert!(stat < limit, "λ {lam}: χ² {stat} over {dof} dof");
        }
    }

    #[test]
    fn loggam_matches_factorials() {
        let mut lf = 0.0f64;
        for k in 1..40u32 {
            assert!((loggam(k as f64) - lf).abs() < 1e-12 * lf.max(1.0), "k {k}");
            lf += (k as f64).ln();
        }
    }

    #[test]
    fn zero_mean_gives_zero() {
        let mut rng = Rng::new(1);
        assert_eq!(poisson(&mut rng, 0.0), 0);
    }
}
