//! The core's `Solver::new` + `iterate` over arbitrary small dimensions, parameters and buffers
//! (right or wrong lengths, NaN, inf, negative values): Ok or Err, never a panic or a write out
//! of bounds; on finite non-negative inputs that it accepts, W and H stay finite.
#![no_main]
use edxs_core::solver::{Counts, GModel, Laplacian, Simplex, Solver, SolverParams};
use libfuzzer_sys::fuzz_target;

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn f64(&mut self) -> f64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        f64::from_le_bytes(b)
    }
    /// A value that is usually sane (so that the solver is reached) and sometimes anything.
    fn value(&mut self) -> f64 {
        match self.u8() % 8 {
            0 => self.f64(),
            1 => 0.0,
            n => (self.u8() as f64 + 1.0) * n as f64 / 16.0,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let l = (b.u8() % 12) as usize;
    let m = (b.u8() % 6) as usize;
    let k = (b.u8() % 4) as usize;
    let p = (b.u8() % 10) as usize;
    let flags = b.u8();
    let simplex_rows: Vec<usize> = (0..(b.u8() % 4) as usize)
        .map(|_| (b.u8() % 7) as usize)
        .collect();
    let mu = [b.value()];
    let mut params = SolverParams::<f64>::new(k, &simplex_rows);
    params.mu = if flags & 1 != 0 { &mu } else { &[] };
    params.lambda_l = if flags & 2 != 0 { b.value() } else { 0.0 };
    params.epsilon_reg = if flags & 4 != 0 { b.value() } else { 1.0 };
    params.simplex = match (flags & 8 != 0, flags & 16 != 0) {
        (true, _) => Simplex::W {
            rows: &simplex_rows,
        },
        (false, true) => Simplex::H,
        (false, false) => Simplex::None,
    };
    if flags & 32 != 0 {
        params.g = GModel::Identity;
    }
    if flags & 64 != 0 {
        let rows = (b.u8() % 4) as usize + 1;
        params.laplacian = Laplacian::Grid {
            rows,
            cols: (p / rows).max(1),
        };
    }
    let fixed: Vec<f64>;
    if flags & 128 != 0 {
        fixed = (0..m * k)
            .map(|_| if b.u8() % 2 == 0 { -1.0 } else { b.value() })
            .collect();
        params.fixed_w = Some(&fixed);
    }
    let Ok(solver) = Solver::new(params, l, m, p) else {
        return;
    };
    // Buffer lengths: usually right, sometimes off by one.
    let len = |n: usize, b: &mut Bytes| match b.u8() % 16 {
        0 => n + 1,
        1 => n.saturating_sub(1),
        _ => n,
    };
    let counts: Vec<f64> = (0..len(l * p, &mut b)).map(|_| b.value()).collect();
    let g: Vec<f64> = (0..len(l * m, &mut b)).map(|_| b.value()).collect();
    let mut w: Vec<f64> = (0..len(m * k, &mut b)).map(|_| b.value()).collect();
    let mut h: Vec<f64> = (0..len(k * p, &mut b)).map(|_| b.value()).collect();
    let mut ws = vec![0.0; len(solver.exec_len(), &mut b)];
    let y = Counts::Dense {
        channels: l,
        pixels: p,
        data: &counts,
    };
    // Every finite, non-negative start the solver accepts, zeros included (crash-313c17de: a
    // dying component used to put ν on a pole), must keep W and H finite.
    let sane = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x >= 0.0 && *x < 1e6);
    let all_sane = sane(&counts) && sane(&g) && sane(&w) && sane(&h);
    for _ in 0..3 {
        if solver.iterate(&y, &g, &mut w, &mut h, &mut ws).is_err() {
            return;
        }
    }
    if all_sane {
        assert!(
            w.iter().chain(&h).all(|v| v.is_finite()),
            "non-finite W/H from sane inputs"
        );
    }
});
