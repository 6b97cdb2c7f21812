"""The EDXS model G (espm's `EDXS` + `build_G`) from Python."""

import numbers

import numpy as np

from . import _edxs

#: Beam energies with an X-ray line table (keV): thin-film TEM conditions.
SUPPORTED_E0 = (100.0, 200.0, 300.0)


class EDXSModel:
    """An EDXS model: energy axis, elements and physics. `G` is built once and cached.

    Pass it as `G=` to :class:`edxs.SmoothNMF` (like espm's `G=s.model`): the element rows of W
    are then kept on the simplex and the bremsstrahlung columns follow W every 3 iterations.
    """

    def __init__(self, rust_model, params):
        self._rust = rust_model
        #: The parameters the model was built from (espm names).
        self.params = dict(params)
        self._g = None

    @property
    def G(self):
        """G (channels x columns), float64, read-only."""
        if self._g is None:
            buf, rows, cols = self._rust.g()
            self._g = np.frombuffer(buf, dtype=np.float64).reshape(rows, cols)
            self._g.flags.writeable = False
        return self._g

    @property
    def columns(self):
        """Names of G's columns (element symbols, split/ignored lines, b0, b1)."""
        return self._rust.columns()

    @property
    def simplex_rows(self):
        """Rows of W that sum to one in every phase (the element columns)."""
        return self._rust.simplex_rows()

    @property
    def elements(self):
        """The modelled elements, in column order."""
        return self._rust.elements()

    @property
    def energies(self):
        """Energy of every channel in keV."""
        return np.array(self._rust.energies())

    @property
    def warnings(self):
        """Notes from building the model (e.g. an element without a line on the axis)."""
        return self._rust.warnings()

    @property
    def n_channels(self):
        """Channels L."""
        return self.G.shape[0]

    def quantify(self, W, H, G=None):
        """At.%, wt.% and counting error (espm's 100/sqrt(N)) per phase from W (M x K), H (K x P).

        Returns a list (one per phase) of dicts element -> (at.%, wt.%, std %).
        """
        G = self.G if G is None else np.asarray(G, dtype=np.float64)
        W = np.ascontiguousarray(W, dtype=np.float64)
        H = np.ascontiguousarray(H, dtype=np.float64)
        if W.ndim != 2 or H.ndim != 2 or W.shape[1] != H.shape[0]:
            raise ValueError(f"quantify: W {W.shape} and H {H.shape} do not fit together")
        k = W.shape[1]
        phases = self._rust.quantify(
            np.ascontiguousarray(G).tobytes(), W.tobytes(), H.tobytes(), k
        )
        return [{el: (at, wt, sd) for el, at, wt, sd in phase} for phase in phases]

    def __deepcopy__(self, memo):
        # Immutable: HyperSpy deep-copies signals together with their decomposition estimator.
        return self

    def __reduce__(self):
        return (_rebuild, (self.params,))

    def __repr__(self):
        return (
            f"EDXSModel(elements={self.elements}, E0={self.params['E0']}, "
            f"channels={self.params['e_size']}, columns={len(self.columns)})"
        )


def _number(name, value, positive=False, allow_zero=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or (positive and v <= 0) or (not allow_zero and v == 0) or v < 0:
        need = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}={value!r}: must be finite and {need}")
    return v


def _element_list(name, value):
    if value is None:
        return []
    if isinstance(value, (str, int)):
        value = [value]
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (str, numbers.Integral)):
            raise TypeError(f"{name}: expected element symbols or atomic numbers, got {v!r}")
        out.append(str(v))
    return out


def build_G(
    elements=None,
    *,
    problem_type="bremsstrahlung",
    ignored_elements=("Cu",),
    elements_dict=None,
    e_offset=0.2,
    e_size=1980,
    e_scale=0.01,
    E0=200,
    width_slope=0.01,
    width_intercept=0.065,
    thickness=100e-7,
    toa=22.0,
    density=None,
    atomic_fraction=False,
    db_name=None,
    drop_missing=False,
):
    """espm's `build_G`: the EDXS model for `elements` (symbols or atomic numbers).

    A HyperSpy signal may be passed instead of `elements`: the elements, beam energy, energy
    axis, take-off angle, thickness and density then come from its metadata (see
    :func:`edxs.model_params_from_signal`); keyword arguments given explicitly override them.

    problem_type: "bremsstrahlung" (default), "no_brstlg" (no continuum columns) or "identity"
    (returns None: G is the identity, plain KL-NMF). ignored_elements (espm's default ["Cu"]) are
    modelled line by line outside the simplex; elements_dict ({"Pt": 5.0}) splits an element's
    lines at an energy (keV). thickness in cm (0: no absorption), toa in degrees, density in
    g/cm^3 (None: estimated). db_name ("200keV_xrays.json") must agree with E0 if given: the line
    table is always chosen from E0. drop_missing: leave out (with a warning in the model's
    `warnings`) elements without an X-ray line on the axis, as `edxs decompose` does with a
    file's element list, instead of raising.
    """
    if elements is not None and not isinstance(elements, (str, int, list, tuple, np.ndarray)):
        from .hyperspy import model_params_from_signal

        meta = model_params_from_signal(elements)
        given = dict(
            e_offset=e_offset, e_size=e_size, e_scale=e_scale, E0=E0, thickness=thickness,
            toa=toa, density=density, width_slope=width_slope, width_intercept=width_intercept,
        )
        defaults = build_G.__kwdefaults__
        merged = {k: (meta[k] if k in meta and given[k] == defaults[k] else given[k])
                  for k in given}
        return build_G(
            meta["elements"],
            problem_type=problem_type,
            ignored_elements=ignored_elements,
            elements_dict=elements_dict,
            atomic_fraction=atomic_fraction,
            db_name=db_name,
            drop_missing=drop_missing,
            **merged,
        )
    if problem_type not in ("bremsstrahlung", "no_brstlg", "identity"):
        raise ValueError(
            f"problem_type={problem_type!r}: expected 'bremsstrahlung', 'no_brstlg' or 'identity'"
        )
    if problem_type == "identity":
        return None
    els = _element_list("elements", elements)
    if not els:
        raise ValueError("elements: at least one element is needed")
    ignored = _element_list("ignored_elements", ignored_elements)
    if elements_dict is None:
        elements_dict = {}
    if not isinstance(elements_dict, dict):
        raise TypeError(f"elements_dict: expected a dict element -> keV, got {elements_dict!r}")
    split = [(str(k), _number(f"elements_dict[{k!r}]", v, positive=True))
             for k, v in elements_dict.items()]
    if isinstance(e_size, bool) or not isinstance(e_size, numbers.Integral) or e_size < 2:
        raise ValueError(f"e_size={e_size!r}: must be an integer >= 2")
    e_offset_v = float(e_offset)
    if not np.isfinite(e_offset_v):
        raise ValueError(f"e_offset={e_offset!r}: must be finite")
    e_scale_v = _number("e_scale", e_scale, positive=True)
    E0_v = _number("E0", E0, positive=True)
    if E0_v not in SUPPORTED_E0:
        raise ValueError(
            f"E0={E0!r} keV: edxs models thin films with the 100, 200 and 300 keV line tables "
            "(TEM); other beam energies (e.g. SEM at 5-30 keV) are not supported"
        )
    if db_name is not None and not str(db_name).startswith(f"{int(E0_v)}keV"):
        raise ValueError(
            f"db_name={db_name!r} does not match E0={E0!r}: edxs picks the line table from E0"
        )
    thickness_v = _number("thickness", thickness)
    toa_v = _number("toa", toa)
    density_v = None if density is None else _number("density", density, positive=True)
    ws = _number("width_slope", width_slope)
    wi = _number("width_intercept", width_intercept)
    try:
        rust = _edxs.Model(
            els, E0_v, e_offset_v, e_scale_v, int(e_size), ws, wi, thickness_v, density_v,
            toa_v, bool(atomic_fraction), ignored, split, problem_type == "bremsstrahlung",
            bool(drop_missing),
        )
    except ValueError as e:
        raise ValueError(f"build_G: {e}") from None
    params = dict(
        elements=els, problem_type=problem_type, ignored_elements=ignored,
        elements_dict=dict(elements_dict), e_offset=e_offset_v, e_size=int(e_size),
        e_scale=e_scale_v, E0=E0_v, width_slope=ws, width_intercept=wi, thickness=thickness_v,
        toa=toa_v, density=density_v, atomic_fraction=bool(atomic_fraction),
    )
    return EDXSModel(rust, params)


def from_espm_model(m):
    """An :class:`EDXSModel` equal to an espm `EDXS` model after `generate_g_matr` (so that
    `G=s.model` from an `EDS_espm` signal can be passed to edxs.SmoothNMF)."""
    x = np.asarray(m.x, dtype=np.float64)
    size = len(x)
    # espm's axis is linspace(offset, offset + size*scale, size).
    scale = (x[-1] - x[0]) / size
    elts = [str(e) for e in getattr(m, "model_elts", [])]
    plain = [e for e in elts if "_" not in e]
    ignored = sorted({e.split("_")[0] for e in elts if "_ign" in e}, key=elts.index)
    abs_ = m.params_dict.get("Abs", {})
    model = build_G(
        [int(e) for e in plain],
        problem_type="bremsstrahlung" if getattr(m, "bkgd_in_G", False) else "no_brstlg",
        ignored_elements=[int(e) for e in ignored],
        e_offset=float(x[0]), e_size=size, e_scale=float(scale), E0=float(m.E0),
        width_slope=float(m.width_slope), width_intercept=float(m.width_intercept),
        thickness=float(abs_.get("thickness", 100e-7)), toa=float(abs_.get("toa", 90)),
        density=abs_.get("density"), atomic_fraction=bool(abs_.get("atomic_fraction", False)),
    )
    espm_g = getattr(m, "G", None)
    if espm_g is not None and getattr(espm_g, "shape", None) != model.G.shape:
        raise TypeError(
            f"G: cannot translate this espm model (G {espm_g.shape} vs {model.G.shape}); "
            "build it with edxs.build_G instead"
        )
    return model


def _rebuild(params):
    """An EDXSModel from its parameters (unpickling)."""
    p = dict(params)
    return build_G(p.pop("elements"), **p)
