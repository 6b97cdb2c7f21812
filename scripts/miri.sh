#!/usr/bin/env bash
# Miri over the core's unit tests: the solver kernels (K = 1..4 as constants and the generic
# path, simplex on W by Newton and by espm's bisection, simplex on H, the rounding guard),
# the block H update and the spline. The core forbids unsafe code, so what Miri adds is a
# debug-mode run (overflow checks) of the index-heavy kernels and a check of what they reach in
# their dependencies.
#
# Not covered: the doctests and the suite's tests (tests/) build G, whose libm square roots
# are inline assembly on x86_64 (libm's default `arch` feature), which Miri cannot run.
# Not in .ci/run: preparing Miri's sysroot took ~6 min here on a loaded machine; the tests
# themselves take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component list --installed | grep -q '^miri' ||
  rustup +nightly component add miri rust-src
cargo +nightly miri test -p edxs-core --lib "$@"
