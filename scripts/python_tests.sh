#!/usr/bin/env bash
# The Python package's tests, as CI runs them: two fresh throwaway virtualenvs, because espm
# 1.1.3 pins HyperSpy 2.2 while lazy custom estimators need HyperSpy >= 2.5.
#   A: espm==1.1.3 (brings hyperspy 2.2), exspy: live parity with espm, EDS_espm, in-memory.
#   B: hyperspy>=2.5, exspy, dask, numba, pandas: lazy signals (partial_fit), the JEOL .pts
#      reader, res.quant as a DataFrame (A has no pandas: the dict path).
# `pip install ./python` (what a user runs) builds the wheel in A; B installs the same abi3
# wheel. pytest's "no tests collected" (exit 5) fails the step instead of passing silently.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
t0=$(date +%s)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/A"
python3 -m venv "$work/B"
bash scripts/pip_install.sh "$work/A" pytest scipy "espm==1.1.3" exspy &
pa=$!
bash scripts/pip_install.sh "$work/B" pytest scipy "hyperspy>=2.5" exspy dask numba pandas &
pb=$!
wait $pa
wait $pb
t1=$(date +%s)
bash scripts/pip_install.sh "$work/A" ./python
"$work/A/bin/pip" wheel -q --disable-pip-version-check --retries 10 --timeout 60 --no-deps -w "$work/wheels" ./python
bash scripts/pip_install.sh "$work/B" "$work"/wheels/edxs-*.whl
t2=$(date +%s)
# Each test runs in one venv only, where it means something: A the espm comparisons, B the
# rest (estimator, HyperSpy in memory and lazy, real map, vendor files).
tests="$repo/python/tests"
select_A=("$tests/test_espm_parity.py" "$tests/test_hyperspy.py" -k "espm")
select_B=("$tests" --deselect "$tests/test_espm_parity.py" -k "not espm_model")
for v in A B; do
  echo "--- pytest in venv $v ($("$work/$v/bin/python" -c 'import hyperspy; print("hyperspy", hyperspy.__version__)'))"
  rc=0
  sel="select_$v[@]"
  # Run from outside the source tree so that the installed package (with its extension) is
  # imported, not python/edxs.
  (cd "$work" && "$work/$v/bin/python" -m pytest -q -rs -p no:cacheprovider "${!sel}") \
    || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "pytest in venv $v collected no tests"
    exit 1
  elif [ "$rc" -ne 0 ]; then
    exit "$rc"
  fi
done
t3=$(date +%s)
echo "python step: venvs $((t1 - t0)) s, build+install $((t2 - t1)) s, tests $((t3 - t2)) s, total $((t3 - t0)) s"
