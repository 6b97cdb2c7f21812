#!/usr/bin/env bash
# Instruction count of one ESpM-NMF iteration (H step, W step and loss) on a fixed 128×128×1980
# paper-like image at 293 counts per pixel, K = 3, single thread, measured by valgrind's
# callgrind with collection on only inside the iteration: a figure that does not depend on
# machine noise.
#
#   scripts/callgrind.sh [--rows N] [--counts N] [--serial]
#
# Prints the instruction count (Ir) and the count per non-zero. `--serial` measures the core's
# single-threaded solver instead of the threaded host executor (run with one thread). Needs
# valgrind (Debian: apt-get install valgrind).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not found (apt-get install valgrind)" >&2; exit 1; }
cargo build --release -q -p edxs --example callgrind_iter
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Rayon's one worker thread runs the passes while the main thread waits inside the toggled
# function; collection is switched for the whole process, so the worker's work is counted.
valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" --collect-atstart=no \
    --toggle-collect='*one_iteration*' \
    target/release/examples/callgrind_iter "$@" >"$out/stdout" 2>"$out/stderr" || {
    cat "$out/stderr" >&2
    exit 1
}
cat "$out/stdout"
ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg.out")
nnz=$(sed -n 's/.* nnz=\([0-9]*\) .*/\1/p' "$out/stdout")
echo "instructions in one iteration (callgrind Ir): $ir"
awk -v ir="$ir" -v nnz="$nnz" 'BEGIN { printf "instructions per non-zero: %.1f\n", ir / nnz }'
