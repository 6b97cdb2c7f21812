//! 25 iterations of ESpM-NMF from identical W0/H0 against espm 1.1.3 (compat settings),
//! on dense and on sparse counts.

use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::solver::{GModel, Laplacian, Simplex, SimplexSolver, Stopping};
use edxs_core::{Counts, EdxsModel, Solver, SolverParams};
use edxs_suite::{fixtures_dir, read_json, read_npy_f64, rel_err, FixtureModel};

struct Data {
    l: usize,
    p: usize,
    /// Pixel-major P×L.
    dense: Vec<f64>,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

fn data() -> Data {
    let dir = fixtures_dir().join("solver/data");
    let (shape, x) = read_npy_f64(&dir.join("X.npy")); // L×P
    let (l, p) = (shape[0] as usize, shape[1] as usize);
    let mut dense = vec![0.0; l * p];
    let (mut indptr, mut indices, mut values) = (vec![0], vec![], vec![]);
    for px in 0..p {
        for li in 0..l {
            let v = x[li * p + px];
            dense[px * l + li] = v;
            if v != 0.0 {
                indices.push(li as u32);
                values.push(v);
            }
        }
        indptr.push(indices.len());
    }
    Data {
        l,
        p,
        dense,
        indptr,
        indices,
        values,
    }
}

fn run_case(name: &str, sparse: bool) -> (f64, f64, f64) {
    let d = data();
    let dir = fixtures_dir().join("solver");
    let fx = FixtureModel::load(&dir.join("data"));
    let model = EdxsModel::new(fx.params()).unwrap();
    let mut g = vec![0.0f64; model.g_len()];
    let mut ms = vec![0.0f64; model.scratch_len()];
    let norm = model.build_g(&mut g, &mut ms).unwrap();
    let prm = read_json(&dir.join(name).join("params.json"));
    let (_, w0) = read_npy_f64(&dir.join("data/W0.npy"));
    let (_, h0) = read_npy_f64(&dir.join("data/H0.npy"));
    let k = prm["n_components"].as_u64().unwrap() as usize;
    let mu: Vec<f64> = match &prm["mu"] {
        serde_json::Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap()).collect(),
        v => vec![v.as_f64().unwrap()],
    };
    let fixed_w: Option<Vec<f64>> = prm["fixed_W"].as_array().map(|rows| {
        rows.iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect()
    });
    let rows: Vec<usize> = model.simplex_rows().collect();
    let mut params = SolverParams::new(k, &rows);
    params.mu = &mu;
    params.epsilon_reg = prm["epsilon_reg"].as_f64().unwrap_or(1.0);
    params.lambda_l = prm["lambda_L"].as_f64().unwrap_or(0.0);
    let shape = prm["shape_2d"].as_array().unwrap();
    params.laplacian = Laplacian::Grid {
        rows: shape[0].as_u64().unwrap() as usize,
        cols: shape[1].as_u64().unwrap() as usize,
    };
    params.simplex = match (
        prm["simplex_W"].as_bool().unwrap_or(true),
        prm["simplex_H"].as_bool().unwrap_or(false),
    ) {
        (true, _) => Simplex::W { rows: &rows },
        (false, true) => Simplex::H,
        (false, false) => Simplex::None,
    };
    params.fixed_w = fixed_w.as_deref();
    params.simplex_solver = SimplexSolver::EspmBisection;
    params.stopping = Stopping::Espm;
    params.tol = prm["tol"].as_f64().unwrap_or(1e-4);
    params.max_iter = prm["max_iter"].as_u64().unwrap_or(200) as usize;
    params.g = GModel::Matrix { update_every: 3 };
    let solver = Solver::new(params, d.l, model.n_columns(), d.p).unwrap();
    let mut ws = vec![0.0f64; solver.workspace_len()];
    let mut w = w0.clone();
    let mut h = h0.clone();
    let counts = if sparse {
        Counts::Sparse {
            channels: d.l,
            pixels: d.p,
            indptr: &d.indptr,
            indices: &d.indices,
            values: &d.values,
        }
    } else {
        Counts::Dense {
            channels: d.l,
            pixels: d.p,
            data: &d.dense,
        }
    };
    let mut losses = vec![];
    let mut upd = BremsstrahlungUpdate {
        model: &model,
        norm,
        scratch: &mut ms,
    };
    let summary = solver
        .run_with(
            &counts,
            solver.factors(&mut g, &mut w, &mut h).unwrap(),
            &mut ws,
            &mut upd,
            &mut |r| losses.push(r.loss.total()),
        )
        .unwrap();
    let (_, want_w) = read_npy_f64(&dir.join(name).join("W.npy"));
    let (_, want_h) = read_npy_f64(&dir.join(name).join("H.npy"));
    let (_, want_l) = read_npy_f64(&dir.join(name).join("losses.npy"));
    assert_eq!(
        summary.iterations,
        prm["n_iter"].as_u64().unwrap() as usize,
        "{name}: iterations"
    );
    assert_eq!(losses.len(), want_l.len(), "{name}: loss history length");
    let ew = rel_err(&w, &want_w);
    let (_, want_g) = read_npy_f64(&dir.join(name).join("G.npy"));
    let eg = rel_err(&g, &want_g);
    assert!(eg < 1e-8, "{name}: final G rel err {eg:e}");
    let eh = rel_err(&h, &want_h);
    let el = rel_err(&losses, &want_l);
    (ew, eh, el)
}

fn check(name: &str) {
    for sparse in [false, true] {
        let (ew, eh, el) = run_case(name, sparse);
        eprintln!("{name} sparse={sparse}: W {ew:.2e} H {eh:.2e} loss {el:.2e}");
        assert!(ew < 1e-8, "{name}: W rel err {ew:e}");
        assert!(eh < 1e-8, "{name}: H rel err {eh:e}");
        assert!(el < 1e-10, "{name}: loss rel err {el:e}");
    }
}

#[test]
fn espm_000() {
    check("espm_000");
}

#[test]
fn espm_smooth() {
    check("espm_smooth");
}

#[test]
fn fixed_w() {
    check("fixed_w");
}

#[test]
fn simplex_h() {
    check("simplex_h");
}

#[test]
fn mu_vector() {
    check("mu_vector");
}

#[test]
fn espm_stopping_rule() {
    check("espm_stop");
}
