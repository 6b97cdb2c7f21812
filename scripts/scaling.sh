#!/usr/bin/env bash
# Time per ESpM-NMF iteration against the number of non-zero counts, from ~1e5 to ~1e8
# (up to 1024×1024 pixels × 2048 channels at 160 counts per pixel), with the peak memory of each run.
#
#   scripts/scaling.sh [--threads N] [--quick]
#
# Each size runs in its own process (`host/examples/iterate.rs`: paper-like data generated in
# memory, no files; one iteration = H step, W step and loss, K = 3, μ = 0.004, λ = 1,
# ε_reg = 0.01, G fixed) so that its peak RSS is its own. Prints nnz, seconds per iteration
# (median), nanoseconds per non-zero and peak RSS; constant ns per non-zero means linear growth.
# `--quick` stops at ~1e7 non-zeros. Takes about 3 minutes on 2 cores (the largest run
# generates 1e8 Poisson counts and needs ~3 GB).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=0
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --quick) quick=1; shift ;;
        *) echo "usage: $0 [--threads N] [--quick]" >&2; exit 2 ;;
    esac
done
cargo build --release -q -p edxs --example iterate
# side channels counts-per-pixel iterations
sizes=(
    "64 1980 26 60"
    "128 1980 18 40"
    "128 1980 75 40"
    "256 1980 45 20"
    "256 1980 200 15"
    "512 2048 18 15"
    "512 2048 90 10"
    "1024 2048 18 10"
    "1024 2048 50 8"
    "1024 2048 115 6"
    "1024 2048 160 5"
)
printf "%-20s %12s %12s %10s %12s %12s\n" "pixels x channels" "counts/px" "nnz" "s/iter" "ns/non-zero" "peak RSS MiB"
for s in "${sizes[@]}"; do
    read -r side l n iters <<<"$s"
    if [ "$quick" = 1 ] && [ "$side" -ge 512 ]; then break; fi
    line=$(target/release/examples/iterate --rows "$side" --channels "$l" --counts "$n" \
        --iters "$iters" --threads "$threads")
    get() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$line"; }
    printf "%-20s %12s %12s %10.4g %12.2f %12.0f\n" "${side}x${side}x${l}" "$n" "$(get nnz)" \
        "$(get s_per_iter)" "$(get ns_per_nz)" "$(get peak_rss_mib)"
done
