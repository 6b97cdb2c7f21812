#!/usr/bin/env python3
"""The whole default `edxs decompose` against ONE espm 1.1.3 iteration, measured in one run.

    scripts/speed_vs_espm.py --venv /path/to/venv-with-espm-1.1.3 [--doses 293,18] [--size 128]
        [--workdir DIR] [--old "--solver previous"]

For each dose, on the paper's 128×128×1980 data (`edxs simulate`, as scripts/compare_espm.py
makes them, seed 42), this script times:
1. one espm 1.1.3 iteration: espm's SmoothNMF (the paper's ESpM settings, espm's nndsvda
   start) run for 4 iterations without stopping rule, the mean time per iteration after the
   first (compare_espm.py's worker);
2. the whole default decomposition, `edxs decompose counts.npy <model> -k 3` with nothing else
   (load to results.json), as a process under GNU time (wall and user+system CPU);
3. the same with `--old` (the previous default's spectra stage, for the objective and time
   before),
and prints both times, the ratio edxs / (one espm iteration), the final objective of each
edxs run, the KKT residuals results.json reports and its `timings` (where the wall time went,
each part also in espm iterations). The machine may be shared: the figures
that count are the ratios measured in the same run; CPU seconds are the least disturbed.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare_espm as ce  # noqa: E402  (its worker, timing helper and settings)

ROOT = Path(__file__).resolve().parent.parent


def timed_cpu(cmd):
    """Runs `cmd` under GNU time; returns (wall s, user+system CPU s)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S", "-o", tf.name, *map(str, cmd)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.stderr.write(p.stdout + p.stderr)
            raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
        wall, user, system = map(float, open(tf.name).read().split()[-3:])
    return wall, user + system


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", required=True, help="virtualenv with espm 1.1.3")
    ap.add_argument("--doses", default="293,18")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--old", default="--solver previous",
                    help="decompose options that give the previous default ('' to skip)")
    ap.add_argument("--workdir", help="keep data and results here (default: a temp dir)")
    a = ap.parse_args()
    py = Path(a.venv) / "bin" / "python"
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "edxs"], cwd=ROOT, check=True)
    exe = ROOT / "target" / "release" / "edxs"
    wroot = Path(a.workdir or tempfile.mkdtemp(prefix="edxs-speed-"))
    wroot.mkdir(parents=True, exist_ok=True)
    worker = wroot / "espm_worker.py"
    worker.write_text(ce.WORKER)
    print(f"machine: {ce.machine()}; busy before start: {100 * ce.busy_fraction():.0f} %")
    side = a.size
    for dose in [float(d) for d in a.doses.split(",")]:
        wdir = wroot / f"N{dose:g}"
        sim = wdir / "sim"
        subprocess.run(
            [exe, "simulate", "--shape", f"{side}x{side}", "--centers",
             f"{94 * side / 128:g},{50 * side / 128:g};{69 * side / 128:g},{80 * side / 128:g}",
             "--radius", f"{25 * side / 128:g}", "-N", f"{dose:g}", "--seed", "42",
             "--dtype", "u16", "--out", sim], capture_output=True, text=True, check=True)
        model_args = json.load(open(sim / "sim.json"))["decompose_args"]
        ce.espm(py, worker, "prep", sim=str(sim), out=str(wdir))
        ef, _, _ = ce.espm(py, worker, "fit", sim=str(sim), out=str(wdir), mu=ce.MU,
                           lambda_l=ce.LAMBDA_L, eps_reg=ce.EPS_REG, max_iter=4, tol=0.0,
                           no_stop=True)
        espm_it = ef["per_iteration_s"]
        print(f"\n== {side}x{side}x1980, {dose:g} counts/px ==")
        print(f"one espm 1.1.3 iteration: {espm_it:.3f} s (mean of iterations 2-4)")
        variants = [("new default", [])]
        if a.old.strip():
            variants.append(("old default", a.old.split()))
        for name, extra in variants:
            out = wdir / name.replace(" ", "_")
            wall, cpu = timed_cpu([exe, "decompose", sim / "counts.npy", *model_args, "-k", "3",
                                   *extra, "--out", out])
            r = json.load(open(out / "results.json"))
            loss = r["loss_history"][-1] if r.get("loss_history") else float("nan")
            print(f"{name:<12} {wall:7.2f} s wall ({cpu:7.2f} s CPU), "
                  f"{wall / espm_it:6.1f} espm iterations (wall / one espm iteration); "
                  f"objective {loss:.10e}; KKT maps {r.get('kkt_residual')}, spectra "
                  f"{r.get('kkt_residual_spectra')}", flush=True)
            t = r.get("timings") or {}
            parts = ["load", "calibration", "binned_fits", "candidate_choice", "maps"]
            print("    where the wall time went: " + ", ".join(
                f"{p} {t[p]:.3f} s ({t[p] / espm_it:.1f} espm it.)" for p in parts
                if t.get(p) is not None), flush=True)


if __name__ == "__main__":
    main()
