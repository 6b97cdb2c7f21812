//! A small seeded generator for initialisations, written out so that a seed gives the same
//! numbers forever, on every target and whatever crate versions are in the lock file.
//!
//! It does not reproduce NumPy's `RandomState`: nothing needs bit parity with NumPy (the SVD is
//! iterated to convergence; random starts and NNDSVDar's fill only need the right distribution).

/// xoshiro256** seeded through SplitMix64, with Marsaglia's polar method for normal deviates.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// SplitMix64 spreads any seed (including 0) over the 256-bit state, as xoshiro's authors
    /// advise.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
            spare: None,
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform on [0, 1) with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform on [-1, 1).
    fn symmetric_unit(&mut self) -> f64 {
        2.0 * self.uniform() - 1.0
    }

    /// Standard normal deviate.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let x1 = self.symmetric_unit();
            let x2 = self.symmetric_unit();
            let r2 = x1 * x1 + x2 * x2;
            if r2 < 1.0 && r2 > 0.0 {
                let f = libm::sqrt(-2.0 * libm::log(r2) / r2);
                self.spare = Some(x1 * f);
                return x2 * f;
            }
        }
    }
}
