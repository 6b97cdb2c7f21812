"""Time and peak memory of `s.decomposition` with espm's SmoothNMF vs edxs's, side by side.

    python benchmark_hyperspy.py [--size 128] [--iters 100] [--counts 293]

Needs a virtualenv with espm==1.1.3 (HyperSpy 2.2, exspy) and edxs installed. The paper's
128x128x1980 scan is simulated once with edxs.simulate (spec §3.7), then each run happens in
its own child process so that peak memory is per run: the child loads the counts, builds an
EDS_espm signal and G (espm's build_G), and times `s.decomposition(algorithm=...)` only.
Peak memory is the child's maximum resident set size (getrusage), before and after the call.

Runs: espm's SmoothNMF and edxs's with compat="espm" for the same fixed number of iterations
(the paper's ESpM settings: mu=0.004, lambda_L=1, epsilon_reg=0.01, normalize=True, K=3), so the
time per iteration compares like with like; then edxs's default (its two-stage pipeline, to
convergence) for what a user gets without options.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import contextlib, io, json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
with contextlib.redirect_stdout(io.StringIO()):
    import hyperspy.api as hs
    import espm  # registers EDS_espm
    from espm.estimators import SmoothNMF as EspmNMF
import edxs

args = json.loads(sys.argv[1])
counts = np.load(args["counts"])
s = hs.signals.Signal1D(counts.astype(np.float64))
ax = s.axes_manager.signal_axes[0]
ax.offset, ax.scale, ax.units = 0.3, 0.01, "keV"
with contextlib.redirect_stdout(io.StringIO()):
    s.set_signal_type("EDS_espm")
    s.set_microscope_parameters(beam_energy=200, elevation_angle=35.0)
    s.set_elements(args["elements"])
    s.set_analysis_parameters(thickness=100e-7, density=4.5, detector_type="SDD_efficiency.txt",
                              width_slope=0.01, width_intercept=0.065,
                              xray_db="200keV_xrays.json")
    s.build_G("bremsstrahlung", ignored_elements=[])
paper = dict(n_components=3, shape_2d=s.shape_2d, hspy_comp=True, mu=0.004, lambda_L=1.0,
             epsilon_reg=0.01, normalize=True, init="nndsvda", random_state=0, verbose=0)
fixed = dict(max_iter=args["iters"], tol=1e-30)
if args["run"] == "espm":
    est = EspmNMF(G=s.model, no_stop_criterion=True, **paper, **fixed)
elif args["run"] == "edxs-compat":
    est = edxs.SmoothNMF(G=s.model, compat="espm", no_stop_criterion=True, **paper, **fixed)
else:
    est = edxs.SmoothNMF(n_components=3, G=s.model, shape_2d=s.shape_2d, hspy_comp=True,
                         verbose=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    s.decomposition(algorithm=est, output_dimension=3)
secs = time.perf_counter() - t0
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(run=args["run"], seconds=secs, n_iter=int(est.n_iter_),
                      rss_before_mb=before / 1024, rss_peak_mb=after / 1024,
                      method=getattr(est, "method_", "espm"))))
"""

ELEMENTS = ["O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--counts", type=float, default=293.0)
    ap.add_argument("--threads", default=None, help="edxs solver threads (default: all cores)")
    a = ap.parse_args()
    import numpy as np

    import edxs

    with tempfile.TemporaryDirectory() as tmp:
        sim = edxs.simulate(shape=(a.size, a.size), counts_per_pixel=a.counts, seed=0)
        path = os.path.join(tmp, "counts.npy")
        np.save(path, sim.counts.astype(np.uint16))
        rows = []
        for run in ("espm", "edxs-compat", "edxs-default"):
            arg = json.dumps(dict(counts=path, iters=a.iters, run=run, elements=ELEMENTS))
            out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True,
                                 text=True)
            if out.returncode != 0:
                sys.exit(f"{run} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    print(f"\n{a.size}x{a.size}x1980, N = {a.counts:g}, K = 3, "
          f"{os.cpu_count()} cores (shared machine: wall times are noisy, ratios more telling)")
    print(f"{'run':<14} {'method':<10} {'iters':>6} {'s':>8} {'s/iter':>8} "
          f"{'RSS before':>11} {'RSS peak':>9}")
    for r in rows:
        print(f"{r['run']:<14} {r['method']:<10} {r['n_iter']:>6} {r['seconds']:>8.2f} "
              f"{r['seconds'] / max(r['n_iter'], 1):>8.4f} {r['rss_before_mb']:>9.0f}MB "
              f"{r['rss_peak_mb']:>7.0f}MB")
    e, c = rows[0], rows[1]
    print(f"espm / edxs(compat) per iteration: "
          f"{(e['seconds'] / e['n_iter']) / (c['seconds'] / c['n_iter']):.1f}x; "
          f"extra peak memory during the call: espm {e['rss_peak_mb'] - e['rss_before_mb']:.0f}"
          f" MB, edxs {c['rss_peak_mb'] - c['rss_before_mb']:.0f} MB")


if __name__ == "__main__":
    main()
