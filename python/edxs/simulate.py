"""`edxs.simulate`: a synthetic spectrum image with its truth (the `edxs simulate` command)."""

import json
import os
import tempfile

import numpy as np

from . import _edxs


class Simulation:
    """A simulated spectrum image: counts (rows x cols x L), maps (K x rows x cols), phases
    (K x L, rows sum to one), spectra_counts (K x L), and `info` (the run's sim.json)."""

    def __init__(self, folder):
        load = lambda name: np.load(os.path.join(folder, name))  # noqa: E731
        with open(os.path.join(folder, "sim.json")) as f:
            self.info = json.load(f)
        self.counts = load("counts.npy")
        rows, cols = self.counts.shape[:2]
        maps = load("maps.npy")
        self.maps = maps.reshape(maps.shape[0], rows, cols)
        self.phases = load("phases.npy")
        self.spectra_counts = load("spectra_counts.npy")

    def to_signal(self):
        """The counts as a HyperSpy EDSTEMSpectrum (exspy) with the simulation's metadata, or a
        Signal1D if exspy is missing."""
        import hyperspy.api as hs

        model = self.info["model"]
        s = hs.signals.Signal1D(self.counts)
        ax = s.axes_manager.signal_axes[0]
        ax.offset, ax.scale, ax.units, ax.name = model["offset"], model["scale"], "keV", "Energy"
        s.metadata.General.title = "edxs simulation"
        try:
            s.set_signal_type("EDS_TEM")
            # Elevation = take-off angle with no tilt and azimuth 0.
            s.set_microscope_parameters(beam_energy=model["e0"],
                                        elevation_angle=model["absorption"]["toa"])
            s.set_elements(list(self.info["elements"]))
        except Exception:  # exspy not installed: a plain Signal1D
            pass
        s.metadata.set_item("Sample.thickness", model["absorption"]["thickness"])
        if model["absorption"].get("density") is not None:
            s.metadata.set_item("Sample.density", model["absorption"]["density"])
        return s


def simulate(preset="paper", *, phases=None, shape=(128, 128), counts_per_pixel=293.0, seed=0,
             radius=25.0, centers=None, densities=None, noiseless=False, dtype="f64"):
    """Simulates a spectrum image as `edxs simulate` does (espm's simulation, spec §3).

    preset: "paper" (the ESpM paper's Brg matrix with Fp and CaPv particles); phases: a TOML
    file of phases instead (see `edxs simulate --help`); shape (rows, cols); counts_per_pixel N;
    seed of the Poisson noise; centers [(row, col), ...] of the particles; densities per phase;
    noiseless for expected counts. Returns a :class:`Simulation`.
    """
    args = []
    if phases is not None:
        args += ["--phases", os.fspath(phases)]
    elif preset != "paper":
        raise ValueError(f"preset={preset!r}: the built-in preset is 'paper'")
    if (not isinstance(shape, (tuple, list)) or len(shape) != 2
            or not all(isinstance(v, int) and v > 0 for v in shape)):
        raise ValueError(f"shape={shape!r}: expected (rows, cols) of positive integers")
    args += ["--shape", f"{shape[0]}x{shape[1]}", "-N", repr(float(counts_per_pixel)),
             "--seed", str(int(seed)), "--radius", repr(float(radius)), "--dtype", str(dtype)]
    if centers is not None:
        args += ["--centers", ";".join(f"{r},{c}" for r, c in centers)]
    if densities is not None:
        args += ["--densities", ",".join(repr(float(d)) for d in densities)]
    if noiseless:
        args.append("--noiseless")
    with tempfile.TemporaryDirectory(prefix="edxs-sim-") as tmp:
        out = os.path.join(tmp, "sim")
        _edxs.simulate_to(args + ["--out", out])
        return Simulation(out)
