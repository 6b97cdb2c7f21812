"""`edxs.SmoothNMF`: espm 1.1.3's estimator interface over edxs's Rust solver."""

import numbers
import warnings

import numpy as np

from . import _edxs
from ._counts import Counts, is_sparse, to_counts
from .model import EDXSModel, from_espm_model

_INITS = (None, "random", "nndsvd", "nndsvda", "nndsvdar", "custom")
_LOSS_FIELDS = (
    "full_loss", "KL_div_loss", "log_reg_loss", "Lapl_reg_loss", "gamma", "rel_W", "rel_H",
)


def _real(name, v, minimum=None, strict=False):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {v!r}")
    f = float(v)
    bad = not np.isfinite(f) or (
        minimum is not None and (f <= minimum if strict else f < minimum)
    )
    if bad:
        op = ">" if strict else ">="
        raise ValueError(f"{name}={v!r}: must be finite and {op} {minimum}")
    return f


def _int(name, v, minimum):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {v!r}")
    if int(v) < minimum:
        raise ValueError(f"{name}={v!r}: must be >= {minimum}")
    return int(v)


def _matrix(name, a, shape=None):
    if is_sparse(a):
        a = a.toarray()
    arr = np.asarray(a)
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got shape {arr.shape}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


class SmoothNMF:
    """ESpM-NMF, X ≈ G·W·H with Poisson loss, Laplacian smoothness and log sparsity on H.

    A drop-in for `espm.estimators.SmoothNMF` 1.1.3: same constructor parameters, meanings and
    defaults, same attributes after `fit` (`W_`, `H_`, `G_`, `losses_`, `n_iter_`,
    `components_`, ...), plus edxs's `method_` and `timings_`, usable as
    `s.decomposition(algorithm=edxs.SmoothNMF(...))` in HyperSpy.

    `compat="espm"` reproduces espm 1.1.3's iterates (its simplex bisection, stopping rules and
    start of W), and parameters left at None take espm's defaults (mu=0, lambda_L=0.0,
    epsilon_reg=1, max_iter=200, tol=1e-4, normalize=False). The default (`compat=None`) is
    edxs's best method, exactly what `edxs decompose` runs: with a physics model G and a 2-D
    `shape_2d`, the two-stage pipeline (spectra from the binned scan, then the maps), otherwise
    the joint fit; parameters left at None take `edxs decompose`'s defaults for that method
    (mu, lambda_L, epsilon_reg in espm's normalised units). Given explicitly, every parameter
    has espm's meaning.

    Differences from espm: only `algo="log_surrogate"` (espm's default) is implemented;
    `random_state=None` means seed 0 (results are reproducible); data are always fitted in
    float64; bad parameters raise ValueError/TypeError instead of being silently repaired.
    `G` may be None (identity), an array (L x M), an :class:`edxs.EDXSModel` (from
    :func:`edxs.build_G`) or an espm `EDXS` model (`s.model`), translated to an edxs model.
    Extra: `n_jobs` (solver threads, 0 = one per core; results do not depend on it),
    `g_update` (False keeps G fixed), `method` ("auto", "joint", "two-stage": as
    `edxs decompose --method`; physics models only) and `refine_calibration` (True, the
    default: with a physics model through edxs's pipeline, i.e. not with compat="espm",
    fixed_H or no simplex, the detector's offset, channel width and peak widths are first
    refined on the summed spectrum, as `edxs decompose` does, and `G_` is the refined model;
    False keeps the model's calibration, as `--no-refine-calibration`).
    """

    def __init__(
        self,
        n_components=2,
        G=None,
        shape_2d=None,
        lambda_L=None,
        mu=None,
        epsilon_reg=None,
        algo="log_surrogate",
        init=None,
        random_state=None,
        max_iter=None,
        tol=None,
        fixed_W=None,
        fixed_H=None,
        simplex_W=True,
        simplex_H=False,
        normalize=None,
        hspy_comp=False,
        verbose=1,
        log_shift=1e-14,
        dicotomy_tol=1e-5,
        gamma=None,
        linesearch=False,
        l2=False,
        eval_print=10,
        true_D=None,
        true_H=None,
        no_stop_criterion=False,
        debug=False,
        compat=None,
        g_update=True,
        n_jobs=0,
        method="auto",
        refine_calibration=True,
    ):
        self.n_components = n_components
        self.G = G
        self.shape_2d = shape_2d
        self.lambda_L = lambda_L
        self.mu = mu
        self.epsilon_reg = epsilon_reg
        self.algo = algo
        self.init = init
        self.random_state = random_state
        self.max_iter = max_iter
        self.tol = tol
        self.fixed_W = fixed_W
        self.fixed_H = fixed_H
        self.simplex_W = simplex_W
        self.simplex_H = simplex_H
        self.normalize = normalize
        self.hspy_comp = hspy_comp
        self.verbose = verbose
        self.log_shift = log_shift
        self.dicotomy_tol = dicotomy_tol
        self.gamma = gamma
        self.linesearch = linesearch
        self.l2 = l2
        self.eval_print = eval_print
        self.true_D = true_D
        self.true_H = true_H
        self.no_stop_criterion = no_stop_criterion
        self.debug = debug
        self.compat = compat
        self.g_update = g_update
        self.n_jobs = n_jobs
        self.method = method
        self.refine_calibration = refine_calibration
        self._chunks = []
        self._pending = False
        self._check_params()

    # ------------------------------------------------------------------ sklearn plumbing
    def get_params(self, deep=True):
        """The constructor parameters (sklearn)."""
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {n: getattr(self, n) for n in names}

    def set_params(self, **params):
        """Sets constructor parameters (sklearn); checked at once."""
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{k}: not a parameter of SmoothNMF")
            setattr(self, k, v)
        self._check_params()
        return self

    def __repr__(self):
        return f"edxs.SmoothNMF(n_components={self.n_components!r}, compat={self.compat!r})"

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        """Every parameter checked; returns the normalised values the solver needs."""
        p = {}
        p["k"] = _int("n_components", self.n_components, 1)
        p["lambda_L"] = None if self.lambda_L is None else _real("lambda_L", self.lambda_L, 0.0)
        mu = self.mu
        if mu is None:
            p["mu"] = None
        elif np.ndim(mu) == 0:
            p["mu"] = [_real("mu", mu, 0.0)]
        else:
            arr = np.asarray(mu)
            if arr.ndim != 1 or arr.dtype.kind not in "iuf":
                raise TypeError(f"mu: expected a number or a 1-D list of numbers, got {mu!r}")
            if len(arr) != p["k"]:
                raise ValueError(
                    f"mu: {len(arr)} values for n_components={p['k']} (give one per component)"
                )
            p["mu"] = [_real(f"mu[{i}]", float(v), 0.0) for i, v in enumerate(arr)]
        p["epsilon_reg"] = (None if self.epsilon_reg is None
                            else _real("epsilon_reg", self.epsilon_reg, 0.0, strict=True))
        if self.algo != "log_surrogate":
            raise ValueError(
                f"algo={self.algo!r}: edxs implements espm's default 'log_surrogate' only"
            )
        if self.init not in _INITS:
            raise ValueError(
                f"init={self.init!r}: expected None, 'random', 'nndsvd', 'nndsvda', 'nndsvdar' "
                "or 'custom'"
            )
        rs = self.random_state
        if rs is None:
            p["seed"] = 0
        elif isinstance(rs, np.random.RandomState):
            p["seed"] = int(rs.randint(0, 2**31 - 1))
        elif isinstance(rs, np.random.Generator):
            p["seed"] = int(rs.integers(0, 2**63 - 1))
        else:
            p["seed"] = _int("random_state", rs, 0)
        p["max_iter"] = None if self.max_iter is None else _int("max_iter", self.max_iter, 1)
        p["tol"] = None if self.tol is None else _real("tol", self.tol, 0.0)
        if self.normalize is not None and not isinstance(self.normalize, (bool, np.bool_)):
            raise TypeError(f"normalize: expected None, True or False, got {self.normalize!r}")
        if self.method not in ("auto", "joint", "two-stage"):
            raise ValueError(
                f"method={self.method!r}: expected 'auto', 'joint' or 'two-stage'"
            )
        for name in ("simplex_W", "simplex_H", "hspy_comp", "no_stop_criterion",
                     "debug", "g_update", "linesearch", "l2", "refine_calibration"):
            v = getattr(self, name)
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name}: expected True or False, got {v!r}")
        if self.linesearch:
            raise ValueError("linesearch=True: not implemented in edxs (espm's default is False)")
        if self.l2:
            raise ValueError(
                "l2=True: espm ignores it unless algo='l2_surrogate', which edxs does not "
                "implement; leave l2=False"
            )
        if self.gamma is not None and _real("gamma", self.gamma, 0.0, strict=True) != 8.0:
            raise ValueError(f"gamma={self.gamma!r}: edxs uses espm's sigma_L = 8 (gamma=None)")
        if _real("log_shift", self.log_shift, 0.0, strict=True) != 1e-14:
            raise ValueError(f"log_shift={self.log_shift!r}: edxs uses espm's 1e-14")
        if _real("dicotomy_tol", self.dicotomy_tol, 0.0, strict=True) != 1e-5:
            raise ValueError(
                f"dicotomy_tol={self.dicotomy_tol!r}: edxs uses espm's 1e-5 (compat='espm') or "
                "an exact projection (default)"
            )
        if self.true_D is not None or self.true_H is not None:
            raise ValueError(
                "true_D/true_H: ground-truth monitoring is not implemented in edxs; "
                "compare afterwards (edxs evaluate)"
            )
        _int("verbose", self.verbose, 0) if not isinstance(self.verbose, bool) else None
        _int("eval_print", self.eval_print, 1)
        p["threads"] = _int("n_jobs", self.n_jobs, 0)
        if self.compat not in (None, "espm"):
            raise ValueError(f"compat={self.compat!r}: expected None (edxs's solver) or 'espm'")
        if self.shape_2d is not None:
            s = self.shape_2d
            if (not isinstance(s, (tuple, list, np.ndarray)) or len(s) != 2):
                raise TypeError(f"shape_2d: expected (rows, cols), got {s!r}")
            p["shape"] = (_int("shape_2d[0]", s[0], 1), _int("shape_2d[1]", s[1], 1))
        else:
            p["shape"] = None
        if self.compat == "espm":
            # espm's own defaults for what was left unset.
            for key, v in (("mu", [0.0]), ("lambda_L", 0.0), ("epsilon_reg", 1.0),
                           ("max_iter", 200), ("tol", 1e-4)):
                if p[key] is None:
                    p[key] = v
        G = self.G
        if G is None or isinstance(G, EDXSModel):
            p["G"] = G
        elif hasattr(G, "NMF_update") and hasattr(G, "x"):
            p["G"] = ("espm", G)  # translated at fit time, when espm has built its G
        else:
            p["G"] = _matrix("G", G)
            if (p["G"] < 0).any():
                raise ValueError("G: entries must be >= 0")
        if self.fixed_W is not None:
            p["fixed_W"] = _matrix("fixed_W", self.fixed_W)
        if self.fixed_H is not None:
            p["fixed_H"] = _matrix("fixed_H", self.fixed_H)
        return p

    def _resolve_G(self, p, channels):
        G = p["G"]
        if isinstance(G, tuple):
            G = from_espm_model(G[1])
        if G is None:
            return "identity", None, None, channels
        if isinstance(G, EDXSModel):
            if G.n_channels != channels:
                raise ValueError(
                    f"G: the model has {G.n_channels} channels but X has {channels}"
                )
            return "model", G, None, len(G.columns)
        if G.shape[0] != channels:
            raise ValueError(f"G: {G.shape[0]} rows but X has {channels} channels")
        return "array", None, G, G.shape[1]

    # ------------------------------------------------------------------ fitting
    def _fit_counts(self, counts, W=None, H=None):
        p = self._check_params()
        L, P, k = counts.channels, counts.pixels, p["k"]
        v = counts.values[: 100000]
        if v.size and not np.array_equal(v, np.round(v)) and v.max() < 1:
            warnings.warn(
                "X holds small non-integer values, not counts: ESpM's Poisson likelihood needs "
                "raw counts (HyperSpy's EDS signals rescale them by default; call "
                "s.decomposition(normalize_poissonian_noise=False, algorithm=...))",
                stacklevel=3,
            )
        if p["shape"] is not None and p["shape"][0] * p["shape"][1] != P:
            raise ValueError(
                f"shape_2d={tuple(p['shape'])}: {p['shape'][0] * p['shape'][1]} pixels, "
                f"but X has {P}"
            )
        if k > min(L, P):
            raise ValueError(
                f"n_components={k}: more than the data allow ({P} pixels x {L} channels)"
            )
        kind, model, g_arr, M = self._resolve_G(p, L)
        fixed_w = fixed_h = None
        if "fixed_W" in p:
            if p["fixed_W"].shape != (M, k):
                raise ValueError(f"fixed_W: expected shape {(M, k)}, got {p['fixed_W'].shape}")
            fixed_w = p["fixed_W"].tobytes()
        if "fixed_H" in p:
            if p["fixed_H"].shape != (k, P):
                raise ValueError(f"fixed_H: expected shape {(k, P)}, got {p['fixed_H'].shape}")
            fixed_h = p["fixed_H"].tobytes()
        init = p_init = self.init
        w0 = h0 = None
        if W is not None or H is not None:
            if W is None or H is None:
                raise ValueError(
                    "W, H: give both for a custom start (espm's one-sided starts are not "
                    "implemented)"
                )
            w0 = _matrix("W", W, (M, k))
            h0 = _matrix("H", H, (k, P))
            if (w0 < 0).any() or (h0 < 0).any():
                raise ValueError("W, H: a custom start must be >= 0")
            init, w0, h0 = "custom", w0.tobytes(), h0.tobytes()
        elif p_init == "custom":
            raise ValueError("init='custom': pass W= and H= to fit/fit_transform")
        simplex_h = bool(self.simplex_H)
        if self.simplex_W and simplex_h:
            warnings.warn("simplex_W and simplex_H both set: the simplex is applied to W only "
                          "(as espm does)", stacklevel=3)
            simplex_h = False
        tol = 0.0 if self.no_stop_criterion else p["tol"]
        normalize = None if self.normalize is None else bool(self.normalize)
        if normalize is None and self.compat == "espm":
            normalize = False
        ip, ix, vals = counts.buffers()
        res = _edxs.fit(
            ip, ix, vals, L, P, p["shape"], kind,
            None if model is None else model._rust,
            None if g_arr is None else g_arr.tobytes(), M, k, p["mu"], p["lambda_L"],
            p["epsilon_reg"], bool(self.simplex_W), simplex_h, fixed_w, fixed_h, init, w0,
            h0, p["seed"], p["max_iter"], tol, self.compat == "espm", normalize,
            bool(self.g_update), p["threads"], self.method, bool(self.refine_calibration),
        )
        self.W_ = np.frombuffer(res["W"], dtype=np.float64).reshape(M, k)
        self.H_ = np.frombuffer(res["H"], dtype=np.float64).reshape(k, P)
        if kind == "identity":
            self.G_ = np.eye(L)
        else:
            self.G_ = np.frombuffer(res["G"], dtype=np.float64).reshape(L, M)
        hist = np.array(res["history"], dtype=np.float64).reshape(-1, 6)
        # The solver's losses are espm's (averaged over the n·p entries of X); espm computes
        # them on f·X when normalize is set, which scales the data term by f.
        scale = res["norm_factor"]
        self.losses_ = hist[:, 0] * scale
        self.detailed_losses_ = hist[:, 1:4] * scale
        self.rel_ = hist[:, 4:6]
        self.n_iter_ = int(res["n_iter"])
        self.stop_reason_ = res["stop_reason"]
        #: "two-stage", "joint" (edxs decompose's driver) or "direct" (plain or identity G).
        self.method_ = res["method"]
        #: Wall seconds of the fit's parts, as `edxs decompose`'s results.json `timings`
        #: (None where a part did not run): calibration, binned_fits, candidate_choice, maps
        #: (the two-stage pipeline's) and fit (the whole solve).
        self.timings_ = dict(res["timings"])
        self.n_components_ = k
        self.GWH_numel_ = L * P
        self.reconstruction_err_ = float(self.losses_[-1]) if len(self.losses_) else np.nan
        if self.normalize:
            self.norm_factor_ = res["norm_factor"]
        self.physics_model_ = model
        self.model_ = model
        if self.verbose:
            print(
                f"edxs SmoothNMF ({self.method_}): {self.n_iter_} iterations "
                f"({self.stop_reason_}), "
                f"loss {self.reconstruction_err_:.6g}"
            )
        D = self.G_ @ self.W_
        self._components = D.T.copy() if self.hspy_comp else self.H_
        return D

    def fit_transform(self, X, y=None, W=None, H=None):
        """Fits X and returns G·W (L x K), or H.T (P x K) with `hspy_comp=True` (espm)."""
        counts = to_counts(X, pixel_major=bool(self.hspy_comp))
        self._chunks, self._pending = [], False
        D = self._fit_counts(counts, W, H)
        return self.H_.T.copy() if self.hspy_comp else D

    def fit(self, X, y=None, **params):
        """Fits X (espm: `fit_transform`, then returns the estimator)."""
        self.fit_transform(X, **params)
        return self

    @property
    def components_(self):
        """(G·W).T (K x L) with `hspy_comp=True`, else H (K x P), as espm sets them."""
        if self._pending:
            self._finish_partial()
        if not hasattr(self, "_components"):
            raise AttributeError("components_: call fit, fit_transform or partial_fit first")
        return self._components

    def partial_fit(self, X, y=None):
        """Adds a chunk of pixels (HyperSpy's lazy decomposition calls this chunk by chunk).

        The chunk is converted at once to sparse counts (only its non-zero counts are kept,
        never the dense cube); the fit itself runs on all chunks received when the results
        are first needed (`components_`, `transform`), so it equals `fit` on the whole data.
        Chunks arrive in pixel order: with `shape_2d` they must cover whole scan rows
        (chunk the navigation along its first axis only).
        """
        self._chunks.append(to_counts(X, pixel_major=bool(self.hspy_comp)))
        self._pending = True
        return self

    def _finish_partial(self):
        chunks = self._chunks
        self._pending = False
        counts = Counts.concat(chunks)
        self._fit_counts(counts)
        offs = np.cumsum([0] + [c.pixels for c in chunks])
        self._chunk_slices = {c.fingerprint(): (a, b) for c, a, b in zip(chunks, offs, offs[1:])}
        self._chunks = []

    def transform(self, X):
        """Abundances of X with the fitted spectra held: H.T (P x K) with `hspy_comp`, else H.

        Chunks that were passed to `partial_fit` get the fitted H back exactly; other data are
        fitted with G·W fixed (same μ, λ, ε_reg; the Laplacian only if X has shape_2d pixels).
        """
        if self._pending:
            self._finish_partial()
        if not hasattr(self, "W_"):
            raise AttributeError("transform: call fit or partial_fit first")
        counts = to_counts(X, pixel_major=bool(self.hspy_comp))
        sl = getattr(self, "_chunk_slices", {}).get(counts.fingerprint())
        if sl is not None:
            h = self.H_[:, sl[0]:sl[1]]
        else:
            h = self._hold_spectra(counts)
        return h.T.copy() if self.hspy_comp else h.copy()

    def _hold_spectra(self, counts):
        p = self._check_params()
        D = self.G_ @ self.W_
        if D.shape[0] != counts.channels:
            raise ValueError(
                f"X: {counts.channels} channels, the fitted model has {D.shape[0]}"
            )
        k, P = D.shape[1], counts.pixels
        shape = p["shape"] if p["shape"] and p["shape"][0] * p["shape"][1] == P else None
        # Start: each pixel's counts shared equally between the phases.
        h0 = np.outer(np.ones(k) / (k * max(D.sum(axis=0).mean(), 1e-300)),
                      counts.pixel_totals())
        eye = np.eye(k)
        ip, ix, vals = counts.buffers()
        res = _edxs.fit(
            ip, ix, vals, counts.channels, P, shape, "array", None,
            np.ascontiguousarray(D).tobytes(), k, k, p["mu"], p["lambda_L"],
            p["epsilon_reg"], False, False, eye.tobytes(), None, "custom", eye.tobytes(),
            np.ascontiguousarray(h0).tobytes(), p["seed"], p["max_iter"] or 1000,
            1e-6 if p["tol"] is None else p["tol"], self.compat == "espm", self.normalize,
            False, p["threads"], "joint",
        )
        return np.frombuffer(res["H"], dtype=np.float64).reshape(k, P).copy()

    def inverse_transform(self, W):
        """G_ · W · H_ (espm)."""
        return self.G_ @ np.asarray(W) @ self.H_

    def get_losses(self):
        """Per-iteration losses as espm's structured array (gamma is sigma_L = 8)."""
        n = len(self.losses_)
        out = np.zeros(n, dtype=[(f, np.float64) for f in _LOSS_FIELDS])
        out["full_loss"] = self.losses_
        out["KL_div_loss"] = self.detailed_losses_[:, 0]
        out["log_reg_loss"] = self.detailed_losses_[:, 1]
        out["Lapl_reg_loss"] = self.detailed_losses_[:, 2]
        out["gamma"] = 8.0
        out["rel_W"] = self.rel_[:, 0]
        out["rel_H"] = self.rel_[:, 1]
        return out
