#!/usr/bin/env bash
# Fuzzing with cargo-fuzz (nightly): every target first replays its committed seeds
# (fuzz/corpus/<target>) and past crashes (fuzz/regressions/<target>), then fuzzes for
# FUZZ_SECONDS (default 30) with a 10 s per-input timeout, so a hang counts as a crash.
# A crash is copied to fuzz/regressions/<target>/ (commit it: every later run replays it) and
# the script fails. New corpus entries go to a throwaway copy, so the tree stays clean.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-30}"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cd fuzz
cargo +nightly fuzz build
status=0
for t in $(cargo +nightly fuzz list); do
  work="$(mktemp -d)"
  cp -r "corpus/$t/." "$work/"
  echo "--- fuzz target $t (${secs} s)"
  set +e
  cargo +nightly fuzz run "$t" "$work" "regressions/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 > "$work.log" 2>&1
  rc=$?
  set -e
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)" "$work.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$work.log"
    if compgen -G "artifacts/$t/*" >/dev/null; then
      for f in artifacts/"$t"/*; do
        cp "$f" "regressions/$t/"
        echo "fuzz target $t failed: kept $f as fuzz/regressions/$t/$(basename "$f")"
      done
    fi
    status=1
  fi
  rm -f "$work.log"
  rm -rf "$work"
done
exit $status
