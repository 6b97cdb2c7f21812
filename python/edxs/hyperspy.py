"""HyperSpy glue: G from a signal's metadata, `edxs.decompose`, vendor files via RosettaSciIO.

HyperSpy, exspy, RosettaSciIO and pandas are optional: they are imported only here, and only
when a function needs them.
"""

import math
import warnings

import numpy as np

from .estimator import SmoothNMF
from .model import SUPPORTED_E0, build_G

def _get(md, path, default=None):
    node = md
    for part in path.split("."):
        if node is None or not hasattr(node, part):
            return default
        node = getattr(node, part)
    return node


def take_off_angle(tilt_alpha=0.0, tilt_beta=0.0, azimuth=0.0, elevation=35.0):
    """Take-off angle in degrees from stage tilts and detector azimuth/elevation (exspy's and
    espm's formula)."""
    a, b = math.radians(tilt_alpha), math.radians(-tilt_beta)
    phi, theta = math.radians(azimuth), math.radians(-elevation)
    v = (math.sin(a) * math.cos(b) * math.cos(phi) * math.cos(theta)
         - math.sin(b) * math.sin(phi) * math.cos(theta)
         - math.cos(a) * math.cos(b) * math.sin(theta))
    return 90.0 - math.degrees(math.acos(max(-1.0, min(1.0, v))))


def _energy_axis(signal):
    ax = signal.axes_manager.signal_axes[0]
    units = str(getattr(ax, "units", "keV") or "keV")
    f = {"kev": 1.0, "ev": 1e-3}.get(units.strip().lower())
    if f is None:
        raise ValueError(f"signal axis: units {units!r}, expected keV or eV")
    return ax.offset * f, ax.scale * f, ax.size


def model_params_from_signal(signal):
    """What a HyperSpy EDS signal says about the model: elements, E0 (keV), the energy axis,
    the take-off angle (from elevation, azimuth and stage tilts), thickness and density."""
    md = signal.metadata
    mic = _get(md, "Acquisition_instrument.TEM") or _get(md, "Acquisition_instrument.SEM")
    is_sem = _get(md, "Acquisition_instrument.SEM") is not None or "SEM" in str(
        _get(md, "Signal.signal_type", "")
    )
    e0 = _get(mic, "beam_energy")
    if e0 is None:
        raise ValueError(
            "metadata: no beam energy (Acquisition_instrument.TEM.beam_energy); "
            "set it with s.set_microscope_parameters(beam_energy=200)"
        )
    if float(e0) not in SUPPORTED_E0:
        kind = "an SEM acquisition" if is_sem else "this acquisition"
        raise ValueError(
            f"beam energy {e0} keV ({kind}): edxs models thin TEM films with X-ray line "
            "tables for 100, 200 and 300 keV only; bulk SEM spectra (5-30 keV beams) are not "
            "supported"
        )
    elements = list(_get(md, "Sample.elements", []) or [])
    offset, scale, size = _energy_axis(signal)
    det = _get(mic, "Detector.EDS")
    toa = take_off_angle(
        float(_get(mic, "Stage.tilt_alpha", 0.0) or 0.0),
        float(_get(mic, "Stage.tilt_beta", 0.0) or 0.0),
        float(_get(det, "azimuth_angle", 0.0) or 0.0),
        float(_get(det, "elevation_angle", 35.0) or 35.0),
    )
    out = dict(elements=elements, E0=float(e0), e_offset=offset, e_scale=scale, e_size=size,
               toa=toa)
    th = _get(md, "Sample.thickness")
    if th is not None:
        out["thickness"] = float(th)
    dens = _get(md, "Sample.density")
    if dens is not None:
        out["density"] = float(dens)
    for key in ("width_slope", "width_intercept"):
        v = _get(det, key)
        if v is not None:
            out[key] = float(v)
    return out


class Decomposition:
    """The result of :func:`decompose`.

    maps: HyperSpy signal of the K abundance maps on the scan grid; spectra: the K phase
    spectra (G·W) on the energy axis; quant: at.%, wt.% and counting error per phase and element
    (the error is missing where an element explains too few counts for one)
    (a pandas DataFrame when pandas is installed, else a dict); W, H, G: numpy arrays;
    estimator: the fitted :class:`edxs.SmoothNMF`; model: the :class:`edxs.EDXSModel`;
    energy_note: which channels were dropped and why (None when none were).
    """

    def __init__(self, estimator, model, signal, maps, spectra, quant):
        self.estimator = estimator
        self.model = model
        self.signal = signal
        self.maps = maps
        self.spectra = spectra
        self.quant = quant
        self.W = estimator.W_
        self.H = estimator.H_
        self.G = estimator.G_
        self.energy_note = None

    def __repr__(self):
        return f"<edxs.Decomposition: {self.H.shape[0]} phases, elements {self.model.elements}>"


def _quant_table(model, W, H, G):
    rows = []
    for c, phase in enumerate(model.quantify(W, H, G)):
        for el, (at, wt, sd) in phase.items():
            rows.append({"phase": c, "element": el, "at_percent": at, "wt_percent": wt,
                         "std_percent": sd})
    try:
        import pandas as pd
    except ImportError:
        return {key: [r[key] for r in rows] for key in
                ("phase", "element", "at_percent", "wt_percent", "std_percent")}
    return pd.DataFrame(rows)


def _parse_energy_range(energy_range):
    if energy_range is None:
        return None, None
    if isinstance(energy_range, str):
        lo, sep, hi = energy_range.partition(":")
        if not sep:
            raise ValueError(f"energy_range: expected 'LO:HI' in keV (e.g. '0.1:20'), got "
                             f"{energy_range!r}")
        parts = (lo.strip() or None, hi.strip() or None)
    else:
        try:
            parts = tuple(energy_range)
        except TypeError:
            raise TypeError(f"energy_range: expected (lo, hi) or 'LO:HI', got {energy_range!r}")
        if len(parts) != 2:
            raise ValueError(f"energy_range: expected two bounds (lo, hi), got {energy_range!r}")
    out = []
    for v in parts:
        if v is None:
            out.append(None)
            continue
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise ValueError(f"energy_range: {v!r} is not an energy in keV")
    return tuple(out)


def crop_to_model_range(signal, elements=None, energy_range=None, width_slope=0.01,
                        width_intercept=0.065, e0=None):
    """The signal cropped as `edxs decompose` crops a file (the CLI's `--energy-range` rules):
    channels at or below 0 keV or off the detector curve are dropped, and, unless
    `energy_range` gives a low bound, a detector noise peak below the lowest modelled line;
    `energy_range` is (lo, hi) or 'LO:HI' in keV. Returns (signal, note); note is None when
    nothing was dropped. A lazy signal is summed chunk by chunk, never loaded whole. `elements`
    and `e0` (keV) default to the signal's metadata.
    """
    from . import _edxs

    offset, scale, size = _energy_axis(signal)
    lo, hi = _parse_energy_range(energy_range)
    nav_axes = tuple(range(signal.data.ndim - 1))
    summed = np.asarray(signal.data.sum(axis=nav_axes) if nav_axes else signal.data,
                        dtype=np.float64)
    if elements is None:
        elements = list(_get(signal.metadata, "Sample.elements", []) or [])
    if e0 is None:
        mic = _get(signal.metadata, "Acquisition_instrument.TEM") or _get(
            signal.metadata, "Acquisition_instrument.SEM")
        e0 = float(_get(mic, "beam_energy", 200.0) or 200.0)
    first, n, note = _edxs.energy_window(summed.tobytes(), float(offset), float(scale),
                                         [str(e) for e in elements], e0, float(width_slope),
                                         float(width_intercept), lo, hi)
    if first == 0 and n == size:
        return signal, note
    return signal.isig[first:first + n], note


def decompose(signal, n_components=3, *, elements=None, ignored_elements=(), energy_range=None,
              **options):
    """Decomposes an EDS spectrum image (HyperSpy signal, in memory or lazy) into phases.

    G is built from the signal's metadata (elements, beam energy, energy axis, take-off angle
    from elevation/azimuth/tilt, thickness and density if present) after cropping the energy
    axis as `edxs decompose` does (:func:`crop_to_model_range`; `energy_range` is its
    `--energy-range`, (lo, hi) or 'LO:HI' in keV); `elements` overrides the metadata's list.
    Other keyword arguments go to :class:`edxs.SmoothNMF` (defaults: edxs's best method, as
    `edxs decompose`). The signal is not modified; the crop is in `result.energy_note`.
    """
    meta = model_params_from_signal(signal)
    if elements is not None:
        meta["elements"] = list(elements)
    s, note = crop_to_model_range(signal, elements=meta["elements"], energy_range=energy_range,
                                  width_slope=meta.get("width_slope", 0.01),
                                  width_intercept=meta.get("width_intercept", 0.065),
                                  e0=meta["E0"])
    if note is not None and options.get("verbose", 0):
        print(note)
    offset, scale, size = _energy_axis(s)
    meta.update(e_offset=offset, e_scale=scale, e_size=size)
    if not meta["elements"]:
        raise ValueError(
            "elements: the signal lists none (metadata Sample.elements); pass elements=[...] "
            "or call s.set_elements([...])"
        )
    model_kw = {k: meta[k] for k in ("E0", "e_offset", "e_scale", "e_size", "toa", "thickness",
                                     "density", "width_slope", "width_intercept") if k in meta}
    # The model's axis is espm's (as `edxs decompose` builds it from a file's offset and scale).
    model = build_G(meta["elements"], ignored_elements=list(ignored_elements),
                    drop_missing=elements is None, **model_kw)
    for w in model.warnings:
        warnings.warn(w, stacklevel=2)
    nav = s.axes_manager.navigation_shape[::-1]
    shape_2d = tuple(nav) if len(nav) == 2 else None
    options.setdefault("verbose", 0)
    est = SmoothNMF(n_components=n_components, G=model, shape_2d=shape_2d, hspy_comp=True,
                    **options)
    if getattr(s, "_lazy", False):
        data = s.data
        # Whole scan rows per chunk, so the pixels arrive in scan order.
        if data.ndim >= 3:
            data = data.rechunk({i: -1 for i in range(1, data.ndim)})
        for block in data.blocks:
            a = np.asarray(block.compute())
            est.partial_fit(a.reshape(-1, a.shape[-1]))
        est.components_  # runs the fit
    else:
        est.fit_transform(np.asarray(s.data).reshape(-1, s.data.shape[-1]))
    import hyperspy.api as hs

    k = n_components
    maps = hs.signals.Signal2D(est.H_.reshape((k,) + tuple(nav))) if shape_2d else \
        hs.signals.Signal1D(est.H_)
    maps.metadata.General.title = "edxs abundance maps"
    if shape_2d:
        for i, ax in enumerate(s.axes_manager.navigation_axes[::-1]):
            maps.axes_manager.signal_axes[::-1][i].update_from(ax, ("scale", "offset", "units",
                                                                    "name"))
    spectra = hs.signals.Signal1D((est.G_ @ est.W_).T.copy())
    spectra.axes_manager.signal_axes[0].update_from(s.axes_manager.signal_axes[0],
                                                    ("scale", "offset", "units", "name"))
    spectra.metadata.General.title = "edxs phase spectra"
    quant = _quant_table(model, est.W_, est.H_, est.G_)
    out = Decomposition(est, model, s, maps, spectra, quant)
    out.energy_note = note
    return out


def load(path, **kwargs):
    """Reads a vendor file with HyperSpy/RosettaSciIO and returns the EDS spectrum image in it
    (Bruker .bcf and others hold several signals: the first 3-D EDS one is taken)."""
    import hyperspy.api as hs

    out = hs.load(path, **kwargs)
    signals = out if isinstance(out, list) else [out]
    for sig in signals:
        st = str(sig.metadata.get_item("Signal.signal_type", ""))
        if "EDS" in st and sig.axes_manager.signal_dimension == 1:
            return sig
    for sig in signals:
        if sig.axes_manager.signal_dimension == 1 and sig.axes_manager.navigation_dimension:
            return sig
    raise ValueError(f"{path}: no EDS spectrum image in the file")
