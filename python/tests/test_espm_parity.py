"""compat="espm" against espm 1.1.3 itself, run live (venv A: espm==1.1.3 installed).

Both estimators start from the same W and H and run 25 iterations; W and H must agree within
1e-6 relative to the largest entry of each. Skipped, with the reason printed, where espm is not
installed (venv B has HyperSpy >= 2.5, which espm 1.1.3 does not accept).
"""

import contextlib
import io
import warnings

import numpy as np
import pytest

import edxs
from conftest import PAPER_ELEMENTS, PAPER_MODEL, start_for

try:
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from espm.estimators import SmoothNMF as EspmNMF
        from espm.models import EDXS
    HAVE_ESPM = True
except ImportError:
    HAVE_ESPM = False
    print("SKIP: espm is not installed in this environment: parity tests skipped")

pytestmark = pytest.mark.skipif(not HAVE_ESPM, reason="espm 1.1.3 not installed")

ITERS = 25


def espm_model(elements=PAPER_ELEMENTS):
    m = EDXS(
        e_offset=PAPER_MODEL["e_offset"], e_size=PAPER_MODEL["e_size"],
        e_scale=PAPER_MODEL["e_scale"], width_slope=0.01, width_intercept=0.065,
        db_name="200keV_xrays.json", E0=200,
        params_dict={"Det": "SDD_efficiency.txt",
                     "Abs": {"thickness": 100e-7, "toa": 35.0, "density": 4.5,
                             "atomic_fraction": False}},
    )
    with contextlib.redirect_stdout(io.StringIO()):
        m.generate_g_matr(g_type="bremsstrahlung", elements=elements, ignored_elements=[],
                          elements_dict={})
    return m


def run_espm(X, W0, H0, **kw):
    est = EspmNMF(max_iter=ITERS, tol=1e-12, verbose=0, **kw)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit_transform(X, W=W0.copy(), H=H0.copy())
    return est


def run_edxs(X, W0, H0, **kw):
    est = edxs.SmoothNMF(max_iter=ITERS, tol=1e-12, verbose=0, compat="espm", **kw)
    est.fit_transform(X, W=W0, H=H0)
    return est


def assert_close(name, a, b, rel=1e-6):
    err = np.abs(a - b).max() / np.abs(b).max()
    print(f"{name}: max |edxs - espm| / max |espm| = {err:.2e}")
    assert err <= rel, f"{name}: relative difference {err:.3e} > {rel}"


def data(small_sim):
    rows, cols, L = small_sim.counts.shape
    return small_sim.counts.reshape(-1, L).T.astype(np.float64), (rows, cols)


def test_g_matches_espm(paper_model):
    """The model itself: edxs's G equals espm's to rounding."""
    g_espm = espm_model().G
    assert g_espm.shape == paper_model.G.shape
    assert_close("G", paper_model.G, g_espm, rel=1e-10)


def test_model_g_mu_lambda_laplacian(small_sim, paper_model):
    """Physics G (simplex on element rows, bremsstrahlung updated every 3 iterations), μ and λ
    with the 16x16 Laplacian."""
    X, shape = data(small_sim)
    W0, H0 = start_for(X, paper_model.G.shape[1], 3, seed=1)
    kw = dict(n_components=3, mu=0.05, lambda_L=2.0, epsilon_reg=0.5, shape_2d=shape)
    ref = run_espm(X, W0, H0, G=espm_model(), **kw)
    got = run_edxs(X, W0, H0, G=paper_model, **kw)
    assert ref.n_iter_ == got.n_iter_ == ITERS
    assert_close("W", got.W_, ref.W_)
    assert_close("H", got.H_, ref.H_)
    assert_close("G after updates", got.G_, ref.G_)
    assert_close("losses", got.losses_, np.array(ref.losses_))


def test_plain_array_g_all_rows_simplex(small_sim, paper_model):
    """G as a plain array: every W row on the simplex, G never updated; per-component μ."""
    X, _ = data(small_sim)
    G = np.array(espm_model().G)
    W0, H0 = start_for(X, G.shape[1], 3, seed=2)
    # An array: espm 1.1.3 resets a list μ to 0 (its check accepts int, float, ndarray only).
    kw = dict(n_components=3, mu=np.array([0.0, 0.02, 0.1]))
    ref = run_espm(X, W0, H0, G=G, **kw)
    got = run_edxs(X, W0, H0, G=G, **kw)
    assert_close("W", got.W_, ref.W_)
    assert_close("H", got.H_, ref.H_)


def test_identity_g_simplex_h(small_sim):
    """G=None (plain KL-NMF, W holds the spectra) with every pixel's abundances on the simplex
    (espm's joint bisection over the pixels)."""
    X, shape = data(small_sim)
    X = X[:400]  # 400 channels keep the identity G small
    W0, H0 = start_for(X, X.shape[0], 2, seed=3)
    W0 = W0 * X.sum(axis=1).mean()
    H0 = H0 / H0.sum(axis=0)
    kw = dict(n_components=2, simplex_W=False, simplex_H=True, lambda_L=0.5, shape_2d=shape)
    ref = run_espm(X, W0, H0, G=None, **kw)
    got = run_edxs(X, W0, H0, G=None, **kw)
    assert_close("W", got.W_, ref.W_)
    assert_close("H", got.H_, ref.H_)


def test_hspy_layout_fixed_w(small_sim, paper_model):
    """HyperSpy's (pixels x channels) layout and a fixed W entry (espm's fixed_W)."""
    X, shape = data(small_sim)
    M = paper_model.G.shape[1]
    W0, H0 = start_for(X, M, 3, seed=4)
    fixed = -np.ones((M, 3))
    fixed[paper_model.columns.index("Fe"), 0] = 0.0
    W0[paper_model.columns.index("Fe"), 0] = 0.0
    rows = paper_model.simplex_rows
    W0[rows, 0] /= W0[rows, 0].sum()
    kw = dict(n_components=3, mu=0.01, shape_2d=shape, fixed_W=fixed, hspy_comp=True)
    ref = run_espm(X.T.copy(), W0, H0, G=espm_model(), **kw)
    got = run_edxs(X.T.copy(), W0, H0, G=paper_model, **kw)
    assert got.W_[paper_model.columns.index("Fe"), 0] == 0.0
    assert_close("W", got.W_, ref.W_)
    assert_close("H", got.H_, ref.H_)
    assert_close("components_", got.components_, ref.components_)
