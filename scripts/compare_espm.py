#!/usr/bin/env python3
"""edxs and espm 1.1.3 side by side on the paper's 128×128×1980 data.

    scripts/compare_espm.py --venv /path/to/venv-with-espm-1.1.3 [options]

For each dose (default 293 and 18 counts per pixel) this script

1. simulates the paper's set-up with `edxs simulate` (spec §3.7: Brg matrix, Fp and CaPv
   particles of radius 25 at (94, 50) and (69, 80), 1980 channels from 0.3 keV, seed 42,
   counts stored as uint16);
2. builds a start with espm's own initialisation (`init="nndsvda"`, random_state 0) and writes
   it as W0.npy/H0.npy, so that both programs start from the same W and H;
3. times a fixed number of iterations of each, without stopping rule (per-iteration time:
   espm timed inside Python between successive iterations, mean over the first few; edxs as
   the difference between a 205- and a 5-iteration run, best of three each, so that neither
   includes start-up or input; both include the G update and extra loss every third
   iteration);
4. runs both to the same stopping rule (espm's: relative loss change |Δloss/initial loss| <
   tol, edxs with `--compat espm`) and reports the time, the iterations and the final loss;
5. records each process's peak resident set size (`/usr/bin/time -v`),

and prints a table with the ratios, all measured in the same run. Settings, as in the paper:
ESpM(μ = 0.004, λ = 1, ε_reg = 0.01), K = 3, simplex on W, 4-neighbour Laplacian on the
128×128 grid, G updated from W every 3 iterations, espm's `normalize` off (edxs has none).
espm uses NumPy's default BLAS threads (all cores); edxs is run with 1 and with 2 threads.

Only the standard library is needed to run this file; espm runs in the given virtualenv
(`python3 -m venv venv && venv/bin/pip install espm==1.1.3`). Needs GNU time
(`apt-get install time`). Takes a few minutes on 2 cores (espm needs about 0.5 s per
iteration at 128×128×1980).
"""

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELEMENTS = "O,Ca,Si,Fe,Mg,Al,Cu,Hf,Ti,Sm,Lu,Nd"
K = 3
MU, LAMBDA_L, EPS_REG = 0.004, 1.0, 0.01

# ---------------------------------------------------------------- espm worker (in the venv)
WORKER = r'''
import contextlib, io, json, logging, sys, time, warnings
logging.disable(logging.WARNING)
warnings.simplefilter("ignore")
import numpy as np
with contextlib.redirect_stdout(io.StringIO()):
    from espm.models import EDXS
    from espm.estimators import SmoothNMF
    from espm.estimators.updates import initialize_algorithms

args = json.loads(sys.argv[1])
sim = json.load(open(args["sim"] + "/sim.json"))
PARAMS = {
    "e_offset": 0.3, "e_size": 1980, "e_scale": 0.01, "width_slope": 0.01,
    "width_intercept": 0.065, "db_name": "200keV_xrays.json", "E0": 200,
    "params_dict": {"Det": "SDD_efficiency.txt",
                    "Abs": {"thickness": 100e-7, "toa": 35, "density": 4.5,
                            "atomic_fraction": False}},
}

def model():
    m = EDXS(**PARAMS)
    with contextlib.redirect_stdout(io.StringIO()):
        m.generate_g_matr(g_type="bremsstrahlung", ignored_elements=["Cu"],
                          elements=sim["elements"], elements_dict={})
    return m

cube = np.load(args["sim"] + "/counts.npy")
rows, cols, L = cube.shape
X = np.ascontiguousarray(cube.reshape(-1, L).T.astype(np.float64))   # (L, P)
del cube

if args["mode"] == "prep":
    m = model()
    with contextlib.redirect_stdout(io.StringIO()):
        G, W0, H0 = initialize_algorithms(X, m.NMF_update(), None, None, args["k"], "nndsvda",
                                          0, False, True, physics_model=m)
    np.save(args["out"] + "/W0.npy", np.ascontiguousarray(W0, dtype=np.float64))
    np.save(args["out"] + "/H0.npy", np.ascontiguousarray(H0, dtype=np.float64))
    np.save(args["out"] + "/G_espm.npy", np.ascontiguousarray(G, dtype=np.float64))
    print(json.dumps({"M": int(W0.shape[0]), "nnz": int(np.count_nonzero(X)),
                      "counts_per_pixel": float(X.sum(0).mean())}))
elif args["mode"] == "fit":
    W0 = np.load(args["out"] + "/W0.npy")
    H0 = np.load(args["out"] + "/H0.npy")
    est = SmoothNMF(n_components=args["k"], G=model(), shape_2d=(rows, cols), verbose=0,
                    mu=args["mu"], lambda_L=args["lambda_l"], epsilon_reg=args["eps_reg"],
                    simplex_W=True, max_iter=args["max_iter"], tol=args["tol"],
                    no_stop_criterion=args["no_stop"])
    stamps = []
    step = est._iteration
    def timed(W, H):
        stamps.append(time.perf_counter())
        return step(W, H)
    est._iteration = timed
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out:
        est.fit_transform(X, W=W0.copy(), H=H0.copy())
    t1 = time.perf_counter()
    stamps.append(t1)   # end of the last iteration is before the final loss; close enough
    diffs = np.diff(np.array(stamps))
    exits = [l for l in out.getvalue().splitlines() if l.startswith("exit")]
    print(json.dumps({"fit_s": t1 - t0, "iterations": int(est.n_iter_),
                      "first_iteration_s": stamps[0] - t0,
                      "per_iteration_s": float(diffs[:-1].mean()) if len(diffs) > 1 else None,
                      "loss": float(est.losses_[-1]), "exit": exits}))
elif args["mode"] == "gcheck":
    a = np.load(args["out"] + "/G_espm.npy")
    b = np.load(args["edxs_g"])
    err = np.max(np.abs(a - b) / np.maximum(np.abs(a).max(axis=0), 1e-300))
    print(json.dumps({"max_rel_err_per_column": float(err)}))
'''


def run_timed(cmd, env=None, cwd=None):
    """Runs `cmd` under GNU time -v; returns (stdout, wall seconds, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-v", "-o", tf.name] + [str(c) for c in cmd]
        t0 = time.perf_counter()
        p = subprocess.run(full, capture_output=True, text=True, env=env, cwd=cwd)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.stderr.write(p.stdout + p.stderr)
            raise SystemExit(f"failed: {' '.join(map(str, cmd))}")
        rep = open(tf.name).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", rep).group(1)) / 1024
    return p.stdout, wall, rss


def espm(py, worker, mode, **kw):
    out, wall, rss = run_timed([py, worker, json.dumps(dict(mode=mode, k=K, **kw))])
    return json.loads(out.strip().splitlines()[-1]), wall, rss


def edxs_decompose(exe, sim, out, model_args, threads, max_iter, tol, wdir, compat=True):
    """`edxs decompose` from W0/H0; `compat`: espm's stopping rule and simplex bisection (else
    edxs's relative-change rule, which with tol 0 runs all iterations, like espm's
    `no_stop_criterion`)."""
    res = Path(wdir) / out
    cmd = [exe, "decompose", f"{sim}/counts.npy", *model_args, "--elements", ELEMENTS,
           "--ignored", "Cu", "-k", str(K), "--mu", str(MU), "--lambda-l", str(LAMBDA_L),
           "--epsilon-reg", str(EPS_REG), "--init", "custom", "--w0", f"{wdir}/W0.npy",
           "--h0", f"{wdir}/H0.npy", "--max-iter", str(max_iter),
           "--tol", str(tol), "--threads", str(threads), "--out", str(res)]
    if compat:
        cmd += ["--compat", "espm"]
    _, wall, rss = run_timed(cmd)
    r = json.load(open(res / "results.json"))
    return {"seconds": r["seconds"], "iterations": r["iterations"],
            "loss": r["loss_history"][-1] if r["loss_history"] else None,
            "stop": r["stop_reason"], "wall": wall, "rss": rss, "dir": res}


def machine():
    cpu = platform.processor() or ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal"))
        mem = f"{int(mem.split()[1]) / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        mem = "?"
    return f"{cpu}, {os.cpu_count()} cores, {mem}, {platform.system()} {platform.release()}"


def busy_fraction(seconds=1.0):
    def snap():
        v = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        return sum(v), v[3] + v[4]
    (t0, i0), _ = snap(), time.sleep(seconds)
    t1, i1 = snap()
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--venv", default=os.environ.get("ESPM_VENV", "venv"),
                    help="virtualenv with espm 1.1.3 (default: $ESPM_VENV or ./venv)")
    ap.add_argument("--doses", default="293,18", help="counts per pixel (default 293,18)")
    ap.add_argument("--size", type=int, default=128, help="scan side in pixels (default 128)")
    ap.add_argument("--fixed-iters", type=int, default=7,
                    help="iterations of the per-iteration timing of espm (default 7: the mean "
                         "over iterations 1-6 includes two G updates, as in the long run)")
    ap.add_argument("--edxs-iters", type=int, default=200,
                    help="extra iterations of the long edxs run (default 200)")
    ap.add_argument("--tol", type=float, default=3e-4,
                    help="espm's relative loss change to stop at (default 3e-4: about 300 "
                         "iterations, 3 minutes of espm per dose; 1e-4 takes about 600)")
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--threads", default="1,2", help="edxs thread counts (default 1,2)")
    ap.add_argument("--workdir", help="keep the data and results here (default: a temp dir)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    a = ap.parse_args()

    py = Path(a.venv) / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"no Python at {py}: give --venv DIR (a virtualenv with espm 1.1.3)")
    if not Path("/usr/bin/time").exists():
        raise SystemExit("GNU time is needed: apt-get install time")
    v = subprocess.run([py, "-c", "import espm, numpy; print(espm.__version__, numpy.__version__)"],
                       capture_output=True, text=True)
    if v.returncode != 0:
        raise SystemExit(f"{py} cannot import espm: {v.stderr.strip()}")
    espm_version, numpy_version = v.stdout.split()
    print("building edxs (release)...", flush=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "edxs"], cwd=ROOT, check=True)
    exe = ROOT / "target" / "release" / "edxs"
    threads = [int(t) for t in a.threads.split(",")]

    wroot = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="edxs-espm-"))
    wroot.mkdir(parents=True, exist_ok=True)
    worker = wroot / "espm_worker.py"
    worker.write_text(WORKER)
    busy = busy_fraction()
    print(f"machine: {machine()}; busy before start: {100 * busy:.0f} %")
    if busy > 0.2:
        print("warning: the machine is busy; timings will be noisy", file=sys.stderr)
    print(f"espm {espm_version} (NumPy {numpy_version}, default BLAS threads), edxs "
          f"{subprocess.run([exe, '--version'], capture_output=True, text=True).stdout.strip()}")
    report = {"machine": machine(), "espm": espm_version, "doses": {}}
    side = a.size
    for dose in [float(d) for d in a.doses.split(",")]:
        wdir = wroot / f"N{dose:g}"
        sim = wdir / "sim"
        print(f"\n== {side}x{side}x1980, {dose:g} counts per pixel ==", flush=True)
        out = subprocess.run(
            [exe, "simulate", "--shape", f"{side}x{side}", "--centers",
             f"{94 * side / 128:g},{50 * side / 128:g};{69 * side / 128:g},{80 * side / 128:g}",
             "--radius", f"{25 * side / 128:g}", "-N", f"{dose:g}", "--seed", "42",
             "--dtype", "u16", "--out", sim], capture_output=True, text=True, check=True).stdout
        model_args = json.load(open(sim / "sim.json"))["decompose_args"]
        model_args = [x for i, x in enumerate(model_args)
                      if not (x == "--elements" or (i > 0 and model_args[i - 1] == "--elements"))]
        prep, _, _ = espm(py, worker, "prep", sim=str(sim), out=str(wdir))
        print(f"data: nnz = {prep['nnz']} ({100 * prep['nnz'] / (side * side * 1980):.1f} % of "
              f"L·P), {prep['counts_per_pixel']:.2f} counts per pixel; M = {prep['M']}; start: "
              f"espm's nndsvda", flush=True)

        # Per-iteration time.
        print(f"espm: {a.fixed_iters} iterations...", flush=True)
        ef, ef_wall, ef_rss = espm(py, worker, "fit", sim=str(sim), out=str(wdir),
                                   mu=MU, lambda_l=LAMBDA_L, eps_reg=EPS_REG,
                                   max_iter=a.fixed_iters, tol=0.0, no_stop=True)
        per = {}
        for t in threads:
            # Best of three of each length: on a shared or virtual machine the minimum is the
            # figure least disturbed by other work.
            runs = {n: [edxs_decompose(exe, sim, f"edxs_{n}_t{t}", model_args, t, n, 0.0, wdir,
                                       compat=False) for _ in range(3)]
                    for n in (5, 5 + a.edxs_iters)}
            short = min(runs[5], key=lambda r: r["seconds"])
            long_ = min(runs[5 + a.edxs_iters], key=lambda r: r["seconds"])
            n = long_["iterations"] - short["iterations"]
            per[t] = (long_["seconds"] - short["seconds"]) / n
            print(f"edxs {t} thread(s): {per[t] * 1e3:.3f} ms per iteration "
                  f"({n} iterations, best of 3; peak RSS {long_['rss']:.0f} MiB)", flush=True)
        subprocess.run([exe, "model", *model_args, "--elements", ELEMENTS, "--ignored", "Cu",
                        "--channels", "1980", "--out", wdir / "G_edxs.npy"],
                       capture_output=True, check=True)
        g = json.loads(subprocess.run(
            [py, worker, json.dumps(dict(mode="gcheck", k=K, sim=str(sim), out=str(wdir),
                                         edxs_g=str(wdir / "G_edxs.npy")))],
            capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])

        # Time to the same relative loss change.
        print(f"espm: to tol {a.tol:g}...", flush=True)
        et, et_wall, et_rss = espm(py, worker, "fit", sim=str(sim), out=str(wdir),
                                   mu=MU, lambda_l=LAMBDA_L, eps_reg=EPS_REG,
                                   max_iter=a.max_iter, tol=a.tol, no_stop=False)
        tol_runs = {t: edxs_decompose(exe, sim, f"edxs_tol_t{t}", model_args, t, a.max_iter,
                                      a.tol, wdir) for t in threads}

        e_per = ef["per_iteration_s"]
        rows = [("per iteration (ms)", e_per * 1e3, {t: per[t] * 1e3 for t in threads}),
                ("time to tol, solver (s)", et["fit_s"],
                 {t: tol_runs[t]["seconds"] for t in threads}),
                ("time to tol, process (s)", et_wall, {t: tol_runs[t]["wall"] for t in threads}),
                ("peak RSS (MiB)", max(ef_rss, et_rss), {t: tol_runs[t]["rss"] for t in threads})]
        hdr = f"{'':28}{'espm':>12}" + "".join(f"{f'edxs {t}t':>12}" for t in threads) \
            + "".join(f"{f'ratio {t}t':>10}" for t in threads)
        print("\n" + hdr)
        for name, ev, xs in rows:
            line = f"{name:28}{ev:12.4g}" + "".join(f"{xs[t]:12.4g}" for t in threads)
            if name.startswith("peak"):
                line += "".join(f"{xs[t] / ev:>10.3f}" for t in threads) + "  (edxs/espm)"
            else:
                line += "".join(f"{ev / xs[t]:>10.1f}" for t in threads) + "  (espm/edxs)"
            print(line)
        print(f"{'iterations to tol':28}{et['iterations']:12d}" +
              "".join(f"{tol_runs[t]['iterations']:12d}" for t in threads))
        print(f"{'final loss':28}{et['loss']:12.8g}" +
              "".join(f"{tol_runs[t]['loss']:12.8g}" for t in threads))
        if len(threads) > 1:
            t0, t1 = threads[0], threads[-1]
            print(f"edxs {t1} threads vs {t0}: {per[t0] / per[t1]:.2f}x per iteration")
        print(f"espm first iteration (includes its set-up): {et['first_iteration_s']:.2f} s; "
              f"espm stop: {et['exit']}; edxs stop: {tol_runs[threads[-1]]['stop']}")
        print(f"initial G of edxs vs espm: max error {g['max_rel_err_per_column']:.1e} of a "
              f"column's maximum")
        report["doses"][f"{dose:g}"] = {
            "nnz": prep["nnz"], "espm_per_iteration_s": e_per,
            "edxs_per_iteration_s": per, "espm_time_to_tol_s": et["fit_s"],
            "espm_process_s": et_wall, "espm_iterations": et["iterations"],
            "espm_loss": et["loss"], "espm_peak_rss_mib": max(ef_rss, et_rss),
            "edxs_time_to_tol_s": {t: r["seconds"] for t, r in tol_runs.items()},
            "edxs_process_s": {t: r["wall"] for t, r in tol_runs.items()},
            "edxs_iterations": {t: r["iterations"] for t, r in tol_runs.items()},
            "edxs_loss": {t: r["loss"] for t, r in tol_runs.items()},
            "edxs_peak_rss_mib": {t: r["rss"] for t, r in tol_runs.items()},
            "g_max_rel_err": g["max_rel_err_per_column"]}
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))
    if not a.workdir:
        shutil.rmtree(wroot, ignore_errors=True)


if __name__ == "__main__":
    main()
