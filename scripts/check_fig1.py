#!/usr/bin/env python3
"""Checks a `edxs repro-fig1` results.json against the Figure 1 targets of issue #7.

Usage: python3 scripts/check_fig1.py RESULTS.json

Every sampling must meet every target (the worst one is printed); no run may have a NaN. The
wall time is printed, not asserted: it depends on the machine.
"""
import json
import math
import sys

# (dose, method, max mean angle in degrees, max mean map MSE or None)
TARGETS = [
    (293.0, "edxs ESpM(0.004,1,0.01)", 3.8, 0.003),
    (293.0, "edxs ESpM(0,0,0)", 5.3, None),
    (293.0, "edxs ESpM(0,0,0) Si=0 in Fp", 3.8, None),
    (18.0, "edxs ESpM(0,0,0)", 20.0, 0.18),
    (18.0, "edxs ESpM(0,0,0) Si=0 in Fp", 20.0, 0.18),
    (18.0, "edxs ESpM(0.004,1,0.01)", 20.0, 0.18),
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    runs = results["runs"]
    failures = []
    for r in runs:
        values = r["angles_deg"] + r["map_mse"] + [r["final_loss"]]
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            failures.append(f"{r['method']} at {r['dose']} (seed {r['sampling_seed']}): non-finite")
    samplings = results["samplings"]
    for dose, method, max_angle, max_mse in TARGETS:
        mine = [r for r in runs if r["dose"] == dose and r["method"] == method]
        if len(mine) != samplings:
            failures.append(f"{method} at {dose}: {len(mine)} runs, expected {samplings}")
            continue
        angle = max(r["mean_angle_deg"] for r in mine)
        mse = max(r["mean_map_mse"] for r in mine)
        ok = angle <= max_angle and (max_mse is None or mse <= max_mse)
        bound = f"<= {max_angle} deg" + ("" if max_mse is None else f", MSE <= {max_mse}")
        print(f"{'ok  ' if ok else 'FAIL'} {dose:>5} {method:<30} worst {angle:6.2f} deg, "
              f"MSE {mse:.4f} ({bound})")
        if not ok:
            failures.append(f"{method} at {dose}: {angle:.2f} deg, MSE {mse:.4f} ({bound})")
    stops = sorted({r["stop"] for r in runs})
    print(f"stop reasons: {', '.join(stops)}; wall time {results['wall_seconds']:.0f} s")
    if failures:
        print("\n".join(["Figure 1 targets not met:"] + failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
