#!/usr/bin/env bash
# The whole default decomposition of large maps, from the file to the results: wall time, CPU
# time and peak RSS (`/usr/bin/time -v`) of `edxs decompose` with only K given, and its accuracy
# against the simulation's truth (`edxs evaluate`).
#
#   scripts/large_maps.sh [--dir DIR] [--threads N] [--sizes "SIDE:CHANNELS:COUNTS ..."]
#
# Default sizes: issue 14's targets, 512×512×1980 and 1024×1024×2048 at 100 counts/pixel
# (their decompositions took 68 s and 191 s of CPU; `--sizes 160:1980:100` is a quick check).
# Each map is the paper's three phases (`edxs simulate`, the preset's phases, uint16 counts,
# seed 42) with its particles scaled with the scan (centres and radius of the 128² set-up ×
# side/128), written to DIR (default a temporary folder) before the timing and deleted after
# it: a 1024²×2048 uint16 file is 4 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=""
threads=0
sizes="512:1980:100 1024:2048:100"
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --sizes) sizes="$2"; shift 2 ;;
        *) echo "usage: $0 [--dir DIR] [--threads N] [--sizes \"SIDE:CHANNELS:COUNTS ...\"]" >&2; exit 2 ;;
    esac
done
if [ ! -x /usr/bin/time ]; then
    echo "large_maps: /usr/bin/time is missing (apt-get install time)" >&2
    exit 1
fi
cargo build --release -q -p edxs --bin edxs
edxs="$PWD/target/release/edxs"
if [ -z "$dir" ]; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"

# The paper preset's phases and model on any number of channels.
phases() {
    cat <<EOF
[model]
e0 = 200.0
offset = 0.3
scale = 0.01
channels = $1
width_slope = 0.01
width_intercept = 0.065
thickness = 1e-5
density = 4.5
toa = 35.0
elements = ["O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd"]

[[phase]]
name = "Brg"
composition = { Mg = 0.245, Fe = 0.035, Ca = 0.031, Si = 0.219, Al = 0.024, O = 0.436, Cu = 0.05, Hf = 0.01 }
b0 = 0.0003458
b1 = 0.0006268
density = 1.0

[[phase]]
name = "Fp"
composition = { Mg = 0.522, Fe = 0.104, O = 0.374, Cu = 0.05 }
b0 = 0.0001629
b1 = 0.0009812
density = 0.8

[[phase]]
name = "CaPv"
composition = { Mg = 0.020, Fe = 0.018, Ca = 0.188, Si = 0.173, Al = 0.010, O = 0.572, Ti = 0.004, Cu = 0.05, Sm = 0.007, Lu = 0.006, Nd = 0.006 }
b0 = 0.0007853
b1 = 0.0003658
density = 1.2
EOF
}

printf "%-16s %6s %9s %9s %9s %10s %9s %9s %9s\n" "map" "N/px" "nnz" "wall s" "user s" "peak MiB" "max angle°" "max MSE" "bin"
for s in $sizes; do
    IFS=: read -r side l n <<<"$s"
    sim="$dir/sim-$side"
    out="$dir/out-$side"
    rm -rf "$sim" "$out"
    phases "$l" >"$dir/phases.toml"
    centres="$((94 * side / 128)),$((50 * side / 128));$((69 * side / 128)),$((80 * side / 128))"
    opts=$("$edxs" simulate --phases "$dir/phases.toml" --shape "${side}x${side}" --centers "$centres" \
        --radius "$((25 * side / 128))" -N "$n" --seed 42 --dtype u16 --out "$sim" |
        sed -n 's/^decompose with: edxs decompose [^ ]* //p')
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$dir/time.txt" "$edxs" decompose "$sim/counts.npy" $opts -k 3 \
        --threads "$threads" --out "$out" >"$dir/decompose.txt" 2>&1 ||
        { cat "$dir/decompose.txt" >&2; exit 1; }
    get() { sed -n "s/^[[:space:]]*$1: //p" "$dir/time.txt"; }
    wall=$(get "Elapsed (wall clock) time (h:mm:ss or m:ss)" | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    user=$(get "User time (seconds)")
    rss=$(get "Maximum resident set size (kbytes)")
    "$edxs" evaluate "$out" --truth "$sim" >"$dir/evaluate.txt"
    # The worst phase: the largest spectral angle and the largest map MSE.
    angle=$(awk '/^p[0-9]/ && NF >= 6 { if ($(NF-2) > a) a = $(NF-2) } END { printf "%.2f", a }' "$dir/evaluate.txt")
    mse=$(awk '/^p[0-9]/ && NF >= 6 { if ($(NF-1) + 0 > m) m = $(NF-1) + 0 } END { printf "%.2e", m }' "$dir/evaluate.txt")
    nnz=$(sed -n 's/.*"nnz": *\([0-9]*\).*/\1/p' "$out/results.json" | head -1)
    bins=$(sed -n 's/.*"bin": *\([0-9]*\).*/\1/p' "$out/results.json" | head -1)
    printf "%-16s %6s %9s %9.1f %9.1f %10.0f %9s %9s %9s\n" "${side}x${side}x${l}" "$n" "${nnz:-?}" \
        "$wall" "$user" "$((rss / 1024))" "${angle:-?}" "${mse:-?}" "${bins:-?}"
    cat "$dir/evaluate.txt" | sed 's/^/    /'
    rm -rf "$sim" "$out"
done
