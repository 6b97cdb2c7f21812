//! espm's measures (`spectral_angle`, `squared_distance`, `find_min_angle`/`find_min_MSE`,
//! `rescaled_DH`) against fixtures made by espm itself, and the Hungarian matching against
//! brute force.

use edxs::io::npy;
use edxs::metrics::{
    hungarian, match_estimates, rescaled_dh, spectral_angle, spectral_angles,
    spectral_angles_to_columns, squared_distances,
};
use edxs_core::rng::Rng;
use edxs_suite::err_rel_to_max;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/sim"
    ))
    .join(name)
}

fn load(name: &str) -> (Vec<usize>, Vec<f64>) {
    npy::read_f64(&fixture(name)).unwrap()
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn spectral_angles_match_espm() {
    let (s, p1) = load("m_p1.npy");
    let (_, p2) = load("m_p2.npy");
    let (_, want) = load("m_angles.npy");
    let got = spectral_angles(&p1, &p2, s[1]);
    assert!(err_rel_to_max(&got, &want) < 1e-12, "{got:?} vs {want:?}");
    let single = json("measures.json")["angle_p1_0_p2_3"].as_f64().unwrap();
    let one = spectral_angle(&p1[..s[1]], &p2[3 * s[1]..4 * s[1]]);
    assert!((one - single).abs() < 1e-11, "{one} vs {single}");
    // D = G·W as edxs stores it (L×K, a spectrum per column) gives the same bits as the rows.
    let (len, m) = (s[1], p2.len() / s[1]);
    let d: Vec<f64> = (0..len)
        .flat_map(|i| (0..m).map(move |j| (i, j)))
        .map(|(i, j)| p2[j * len + i])
        .collect();
    let by_columns = spectral_angles_to_columns(&p1, &d, len);
    assert_eq!(
        by_columns.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        got.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn squared_distances_match_espm() {
    let (s, p1) = load("m_p1.npy");
    let (_, p2) = load("m_p2.npy");
    let (_, want) = load("m_sqdist.npy");
    let got = squared_distances(&p1, &p2, s[1]);
    assert!(err_rel_to_max(&got, &want) < 1e-12, "{got:?} vs {want:?}");
}

#[test]
fn unique_matching_matches_espm_find_min() {
    let m = json("measures.json");
    let (s, p1) = load("m_p1.npy");
    let (_, p2) = load("m_p2.npy");
    let k = s[0];
    for (matrix, perm_key, values_key) in [
        (
            spectral_angles(&p1, &p2, s[1]),
            "angle_perm",
            "angle_values",
        ),
        (squared_distances(&p1, &p2, s[1]), "mse_perm", "mse_values"),
    ] {
        let perm: Vec<usize> = match_estimates(&matrix, k, k)
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let want: Vec<usize> = m[perm_key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(perm, want, "{perm_key}");
        assert_eq!(perm, vec![1, 2, 3, 0]);
        // espm's values are ordered by estimate: values[i] = M[perm[i], i].
        let values: Vec<f64> = (0..k).map(|i| matrix[perm[i] * k + i]).collect();
        assert!(
            err_rel_to_max(&values, &floats(&m[values_key])) < 1e-12,
            "{values_key}"
        );
    }
}

/// espm's `unique_min`, generalised to rows ≤ cols: every injective map of rows to columns,
/// in lexicographic order, first minimum kept.
fn brute_force(cost: &[f64], rows: usize, cols: usize) -> (f64, Vec<usize>) {
    fn rec(
        cost: &[f64],
        rows: usize,
        cols: usize,
        cur: &mut Vec<usize>,
        used: &mut [bool],
        best: &mut (f64, Vec<usize>),
    ) {
        if cur.len() == rows {
            let c: f64 = cur
                .iter()
                .enumerate()
                .map(|(r, &c)| cost[r * cols + c])
                .sum();
            if c < best.0 {
                *best = (c, cur.clone());
            }
            return;
        }
        for c in 0..cols {
            if !used[c] {
                used[c] = true;
                cur.push(c);
                rec(cost, rows, cols, cur, used, best);
                cur.pop();
                used[c] = false;
            }
        }
    }
    let mut best = (f64::INFINITY, Vec::new());
    rec(
        cost,
        rows,
        cols,
        &mut Vec::new(),
        &mut vec![false; cols],
        &mut best,
    );
    best
}

#[test]
fn hungarian_equals_brute_force_on_random_matrices() {
    let mut rng = Rng::new(2024);
    let mut checked = 0;
    for n in 1..=7 {
        for m in n..=7 {
            for trial in 0..6 {
                // Integer-valued costs in some trials make ties likely; the optimum cost must
                // still agree even where the assignment may differ.
                let ints = trial % 2 == 1;
                let cost: Vec<f64> = (0..n * m)
                    .map(|_| {
                        let u = rng.uniform();
                        if ints {
                            (u * 5.0).floor()
                        } else {
                            u * 90.0
                        }
                    })
                    .collect();
                let (best, best_assign) = brute_force(&cost, n, m);
                let got = hungarian(&cost, n, m);
                let assign: Vec<usize> = got.iter().map(|c| c.unwrap()).collect();
                let mut seen = vec![false; m];
                for &c in &assign {
                    assert!(!seen[c], "column {c} used twice: {assign:?}");
                    seen[c] = true;
                }
                let total: f64 = assign
                    .iter()
                    .enumerate()
                    .map(|(r, &c)| cost[r * m + c])
                    .sum();
                assert!(
                    (total - best).abs() <= 1e-9 * best.abs().max(1.0),
                    "{n}x{m}: hungarian {total} vs brute force {best}"
                );
                if !ints {
                    assert_eq!(assign, best_assign, "{n}x{m} trial {trial}");
                }
                // The transposed problem (more rows than columns) leaves rows unmatched.
                let t: Vec<f64> = (0..m)
                    .flat_map(|c| (0..n).map(move |r| (r, c)))
                    .map(|(r, c)| cost[r * m + c])
                    .collect();
                let gt = hungarian(&t, m, n);
                let tot: f64 = gt
                    .iter()
                    .enumerate()
                    .filter_map(|(r, c)| c.map(|c| t[r * n + c]))
                    .sum();
                assert_eq!(gt.iter().filter(|c| c.is_some()).count(), n);
                assert!((tot - best).abs() <= 1e-9 * best.abs().max(1.0));
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 28 * 6);
}

#[test]
fn hungarian_beats_greedy_where_greedy_fails() {
    // Greedy (row 0 takes its minimum, column 0) pays 1 + 100; the optimum is 2 + 3.
    let cost = [1.0, 2.0, 3.0, 100.0];
    assert_eq!(hungarian(&cost, 2, 2), vec![Some(1), Some(0)]);
}

fn check_rescale(prefix: &str) -> Vec<f64> {
    let (ds, d) = load(&format!("{prefix}_D.npy"));
    let (_, h) = load(&format!("{prefix}_H.npy"));
    let (_, d_want) = load(&format!("{prefix}_Dout.npy"));
    let (_, h_want) = load(&format!("{prefix}_Hout.npy"));
    let (d_got, h_got, s) = rescaled_dh(&d, &h, ds[1]);
    assert!(
        err_rel_to_max(&d_got, &d_want) < 1e-9,
        "{prefix} D: {}",
        err_rel_to_max(&d_got, &d_want)
    );
    assert!(
        err_rel_to_max(&h_got, &h_want) < 1e-9,
        "{prefix} H: {}",
        err_rel_to_max(&h_got, &h_want)
    );
    s
}

#[test]
fn rescaled_dh_matches_espm_least_squares() {
    let s = check_rescale("rescale_a");
    assert!(s.iter().all(|v| *v > 1e-3));
}

#[test]
fn rescaled_dh_matches_espm_nnls_fallback() {
    // Least squares gives a negative scale here; espm falls back to NNLS clipped at 1e-10.
    let s = check_rescale("rescale_b");
    assert_eq!(s[0], 1e-10, "{s:?}");
    assert!(s[1] > 0.5 && s[2] > 0.5, "{s:?}");
}
