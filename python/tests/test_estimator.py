"""edxs.SmoothNMF on its own: input conversions, parameter checks, GIL, transform, partial_fit."""

import threading
import time

import numpy as np
import pytest

import edxs

sp = pytest.importorskip("scipy.sparse")


@pytest.fixture(scope="module")
def pixels(small_sim):
    """(P, L) counts of the small simulation as float64."""
    return small_sim.counts.reshape(-1, small_sim.counts.shape[-1]).astype(np.float64)


def fit(X, model, **kw):
    kw = {**dict(max_iter=30, shape_2d=(16, 16), mu=0.01, lambda_L=0.5), **kw}
    est = edxs.SmoothNMF(n_components=3, G=model, hspy_comp=True, verbose=0, **kw)
    est.fit_transform(X)
    return est


@pytest.fixture(scope="module")
def reference(pixels, paper_model):
    return fit(pixels, paper_model)


def same(a, b):
    assert a.W_.shape == b.W_.shape and a.H_.shape == b.H_.shape
    assert np.array_equal(a.W_, b.W_) and np.array_equal(a.H_, b.H_)
    assert a.n_iter_ == b.n_iter_


@pytest.mark.parametrize("make", [
    lambda X: sp.csr_matrix(X), lambda X: sp.csc_matrix(X), lambda X: sp.coo_matrix(X),
    lambda X: sp.csr_array(X),
], ids=["csr", "csc", "coo", "csr_array"])
def test_sparse_equals_dense(pixels, paper_model, reference, make):
    """scipy.sparse input gives bit-identical W and H to the dense array."""
    same(fit(make(pixels), paper_model), reference)


def test_sparse_not_densified(pixels, paper_model):
    """A sparse input is never turned into a dense array (toarray/todense would raise)."""
    class NoDense(sp.csr_matrix):
        def toarray(self, *a, **k):
            raise AssertionError("densified")

        todense = toarray

    fit(NoDense(pixels), paper_model, max_iter=3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.float32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_dtypes_and_orders(pixels, paper_model, reference, dtype, order):
    """Any integer/float dtype, C or Fortran order: the same fit as float64 C-order counts."""
    X = np.asarray(pixels.astype(dtype), order=order)
    same(fit(X, paper_model), reference)


def test_espm_layout_equals_hspy_layout(pixels, paper_model, reference):
    """(channels, pixels) without hspy_comp gives the same W and H as HyperSpy's layout, and
    espm's return values and components_ in each layout."""
    est = edxs.SmoothNMF(n_components=3, G=paper_model, shape_2d=(16, 16), verbose=0,
                         mu=0.01, lambda_L=0.5, max_iter=30)
    D = est.fit_transform(pixels.T)
    same(est, reference)
    np.testing.assert_allclose(D, est.G_ @ est.W_)
    assert est.components_ is est.H_
    assert reference.components_.shape == (3, pixels.shape[1])


def test_default_is_not_espm_compat(pixels, paper_model, reference):
    """The default solver differs from compat='espm' (exact simplex vs bisection to 1e-5):
    W's element rows sum to one to 1e-12 by default, only to 1e-5 with espm's."""
    rows = paper_model.simplex_rows
    assert np.abs(reference.W_[rows].sum(axis=0) - 1).max() < 1e-12
    e = fit(pixels, paper_model, compat="espm")
    assert not np.array_equal(e.W_, reference.W_)
    assert np.abs(e.W_[rows].sum(axis=0) - 1).max() < 2e-5


def test_attributes_and_inverse(pixels, paper_model, reference):
    est = reference
    L, P = pixels.shape[1], pixels.shape[0]
    M = len(paper_model.columns)
    assert est.W_.shape == (M, 3) and est.H_.shape == (3, P) and est.G_.shape == (L, M)
    assert est.components_.shape == (3, L)
    # losses_ covers the last stage of the two-stage pipeline; n_iter_ counts every stage.
    assert 0 < len(est.losses_) <= est.n_iter_ and np.isfinite(est.losses_).all()
    assert est.losses_[-1] < est.losses_[0]
    assert est.inverse_transform(est.W_).shape == (L, P)
    # Unregularised, the KL fit's reconstruction carries the data's total counts.
    plain = edxs.SmoothNMF(n_components=3, G=paper_model, hspy_comp=True, verbose=0)
    plain.fit(pixels)
    np.testing.assert_allclose(plain.inverse_transform(plain.W_).sum(), pixels.sum(),
                               rtol=1e-3)
    losses = est.get_losses()
    assert set(losses.dtype.names) >= {"full_loss", "KL_div_loss", "rel_W", "rel_H"}
    # Where the time went, as results.json's timings: every part of the two-stage pipeline
    # measured and within the whole solve; a direct fit has no pipeline parts.
    t = est.timings_
    assert est.method_ == "two-stage", est.method_
    parts = [t["binned_fits"], t["candidate_choice"], t["maps"]]
    assert all(v is not None and v >= 0 for v in parts + [t["fit"], t["calibration"]]), t
    assert 0 < sum(parts) <= t["fit"], t
    assert plain.method_ != "two-stage" and plain.timings_["binned_fits"] is None, plain.timings_
    assert plain.timings_["fit"] > 0, plain.timings_


def test_transform_holds_the_spectra(pixels, paper_model):
    """transform on data not seen by partial_fit fits maps only, with G·W held: on the fitted
    data (a convex problem once the spectra are fixed) it finds the fitted maps again."""
    est = edxs.SmoothNMF(n_components=3, G=paper_model, hspy_comp=True, verbose=0,
                         max_iter=3000, tol=1e-10)
    est.fit(pixels)
    H = est.transform(pixels * 1.0)
    assert H.shape == (pixels.shape[0], 3)
    corr = [np.corrcoef(H[:, c], est.H_[c])[0, 1] for c in range(3)]
    print("transform vs fitted maps, correlation per phase:", corr)
    assert min(corr) > 0.98, corr
    err = np.linalg.norm(H - est.H_.T) / np.linalg.norm(est.H_)
    assert err < 0.05, err


def test_partial_fit_equals_fit(pixels, paper_model, reference):
    """Chunks of whole scan rows through partial_fit give exactly the in-memory fit, and
    transform returns each chunk's maps."""
    est = edxs.SmoothNMF(n_components=3, G=paper_model, shape_2d=(16, 16), hspy_comp=True,
                         verbose=0, mu=0.01, lambda_L=0.5, max_iter=30)
    chunks = [pixels[i:i + 64] for i in range(0, 256, 64)]
    for c in chunks:
        est.partial_fit(c.astype(np.uint8))
    np.testing.assert_array_equal(est.components_, reference.components_)
    same(est, reference)
    got = np.concatenate([est.transform(c) for c in chunks])
    np.testing.assert_array_equal(got, reference.H_.T)


def test_gil_released_while_fitting(pixels, paper_model):
    """Another Python thread keeps running while the solver works."""
    done = threading.Event()
    ticks = []

    errors = []

    def work():
        try:
            fit(np.tile(pixels, (32, 1)), paper_model, max_iter=300, shape_2d=None, tol=0.0,
                n_jobs=1)
        except Exception as e:  # reported below, after the loop ends
            errors.append(e)
        finally:
            done.set()

    def tick_rate(seconds):
        n, t_end = 0, time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            n += 1
            time.sleep(0.001)
        return n / seconds

    base = tick_rate(0.5)  # this loop's rate on this (possibly busy) machine
    t = threading.Thread(target=work)
    t.start()
    t0 = time.perf_counter()
    while not done.is_set():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    assert not errors, errors
    elapsed = time.perf_counter() - t0
    # With the GIL held for the whole fit this loop would get (almost) no turn.
    print(f"GIL: {len(ticks)} ticks in {elapsed:.2f} s of fitting, {base:.0f}/s idle")
    assert elapsed > 0.2 and len(ticks) > 0.25 * base * elapsed, (elapsed, len(ticks), base)


BAD = [
    (dict(n_components=0), ValueError, "n_components=0"),
    (dict(n_components=2.5), TypeError, "n_components"),
    (dict(n_components="3"), TypeError, "n_components"),
    (dict(mu=-1), ValueError, "mu=-1"),
    (dict(n_components=3, mu=[0.1, 0.2]), ValueError, "mu: 2 values"),
    (dict(mu=float("nan")), ValueError, "mu=nan"),
    (dict(lambda_L=-0.5), ValueError, "lambda_L=-0.5"),
    (dict(epsilon_reg=0), ValueError, "epsilon_reg=0"),
    (dict(max_iter=0), ValueError, "max_iter=0"),
    (dict(max_iter=10.5), TypeError, "max_iter"),
    (dict(tol=-1e-3), ValueError, "tol=-0.001"),
    (dict(init="svd"), ValueError, "init='svd'"),
    (dict(random_state=-3), ValueError, "random_state=-3"),
    (dict(random_state="x"), TypeError, "random_state"),
    (dict(algo="bmd"), ValueError, "algo='bmd'"),
    (dict(compat="sklearn"), ValueError, "compat='sklearn'"),
    (dict(simplex_W="yes"), TypeError, "simplex_W"),
    (dict(simplex_H=1), TypeError, "simplex_H"),
    (dict(normalize="yes"), TypeError, "normalize"),
    (dict(hspy_comp="True"), TypeError, "hspy_comp"),
    (dict(shape_2d=16), TypeError, "shape_2d"),
    (dict(shape_2d=(0, 16)), ValueError, "shape_2d[0]=0"),
    (dict(l2=True), ValueError, "l2=True"),
    (dict(linesearch=True), ValueError, "linesearch=True"),
    (dict(gamma=2.0), ValueError, "gamma=2.0"),
    (dict(log_shift=1e-10), ValueError, "log_shift=1e-10"),
    (dict(dicotomy_tol=1e-3), ValueError, "dicotomy_tol=0.001"),
    (dict(true_D=np.ones((3, 3))), ValueError, "true_D"),
    (dict(n_jobs=-1), ValueError, "n_jobs=-1"),
    (dict(G="model"), TypeError, "G"),
    (dict(G=np.ones(5)), ValueError, "G: expected a 2-D array"),
    (dict(G=-np.ones((5, 5))), ValueError, "G: entries must be >= 0"),
    (dict(fixed_W=np.ones(3)), ValueError, "fixed_W"),
]


@pytest.mark.parametrize("kw,exc,text", BAD, ids=[t for _, _, t in BAD])
def test_bad_parameter_raises_named_error(kw, exc, text):
    with pytest.raises(exc, match=text.replace("[", r"\[").replace("]", r"\]")):
        edxs.SmoothNMF(**kw)


def test_set_params_checks():
    est = edxs.SmoothNMF()
    with pytest.raises(ValueError, match="mu=-2"):
        est.set_params(mu=-2)
    with pytest.raises(ValueError, match="nope: not a parameter"):
        est.set_params(nope=1)


BAD_FIT = [
    ("nan", lambda X, m: X * np.nan, dict(), ValueError, "X: contains"),
    ("negative", lambda X, m: X - 1, dict(), ValueError, "negative counts"),
    ("3-D", lambda X, m: X.reshape(16, 16, -1), dict(), ValueError, "2-D"),
    ("bool", lambda X, m: X > 0, dict(), TypeError, "got bool"),
    ("complex", lambda X, m: X.astype(complex), dict(), TypeError, "complex"),
    ("shape_2d", lambda X, m: X, dict(shape_2d=(8, 8)), ValueError, "shape_2d=\\(8, 8\\)"),
    ("k too large", lambda X, m: X[:2], dict(n_components=3, shape_2d=None), ValueError,
     "n_components=3"),
    ("G rows", lambda X, m: X[:, :100], dict(), ValueError, "G: the model has 1980"),
    ("fixed_W shape", lambda X, m: X, dict(fixed_W=-np.ones((4, 3))), ValueError,
     "fixed_W: expected shape"),
    ("fixed_W breaks simplex", lambda X, m: X,
     dict(fixed_W=np.where(np.eye(16, 3) > 0, 2.0, -1.0)), ValueError, "fixed"),
    ("W only", lambda X, m: X, dict(W=np.ones((16, 3))), ValueError, "W, H: give both"),
    ("custom init", lambda X, m: X, dict(init="custom"), ValueError, "init='custom'"),
]


@pytest.mark.parametrize("name,make,kw,exc,text", BAD_FIT, ids=[b[0] for b in BAD_FIT])
def test_bad_data_raises_named_error(pixels, paper_model, name, make, kw, exc, text):
    kw = dict(kw)
    fit_kw = {k: kw.pop(k) for k in ("W", "H") if k in kw}
    est_kw = dict(n_components=3, G=paper_model, shape_2d=(16, 16), hspy_comp=True, verbose=0)
    est_kw.update(kw)
    X = make(pixels.copy(), paper_model)
    with pytest.raises(exc, match=text):
        est = edxs.SmoothNMF(**est_kw)
        est.fit_transform(X, **fit_kw)


def test_build_g_errors():
    with pytest.raises(ValueError, match="E0=20"):
        edxs.build_G(["Fe"], E0=20)
    with pytest.raises(ValueError, match="build_G: .*Xx|Xx"):
        edxs.build_G(["Xx"])
    with pytest.raises(ValueError, match="problem_type='foo'"):
        edxs.build_G(["Fe"], problem_type="foo")
    with pytest.raises(ValueError, match="e_size=1"):
        edxs.build_G(["Fe"], e_size=1)
    with pytest.raises(ValueError, match="db_name"):
        edxs.build_G(["Fe"], E0=300, db_name="200keV_xrays.json")
    with pytest.raises(ValueError, match="offset"):
        edxs.build_G(["Fe"], e_offset=-0.5)
    assert edxs.build_G(["Fe"], problem_type="identity") is None


def test_build_g_options():
    """espm's build_G options change G as they should."""
    base = edxs.build_G(["Fe", "Pt", "O"], ignored_elements=[])
    assert base.columns == ["Fe", "Pt", "O", "b0", "b1"]
    cu = edxs.build_G(["Fe", "Pt", "O"])  # espm's default ignores Cu: its lines, outside W's simplex
    assert len(cu.columns) > 5 and all(c in cu.columns for c in base.columns)
    assert cu.simplex_rows == [0, 1, 2]
    nob = edxs.build_G(["Fe", "Pt", "O"], ignored_elements=[], problem_type="no_brstlg")
    assert nob.columns == ["Fe", "Pt", "O"]
    split = edxs.build_G(["Fe", "Pt", "O"], ignored_elements=[], elements_dict={"Pt": 5.0})
    assert len(split.columns) == 6
    thin = edxs.build_G(["Fe", "Pt", "O"], ignored_elements=[], thickness=0)
    # Without absorption Fe gains against O: espm absorbs each line in the pure element, and
    # pure O (a gas density) absorbs almost nothing while Fe L is absorbed in pure Fe.
    assert thin.G[:, 0].sum() / thin.G[:, 2].sum() > base.G[:, 0].sum() / base.G[:, 2].sum()
    e100 = edxs.build_G(["Fe", "Pt", "O"], ignored_elements=[], E0=100)
    assert e100.G.shape == base.G.shape and not np.allclose(e100.G, base.G)


def test_simulate_matches_its_truth():
    sim = edxs.simulate(shape=(12, 10), counts_per_pixel=50.0, seed=1)
    assert sim.counts.shape == (12, 10, 1980)
    assert sim.maps.shape == (3, 12, 10)
    np.testing.assert_allclose(sim.maps.sum(axis=0), 1.0, atol=1e-12)
    assert abs(sim.counts.sum(axis=-1).mean() - 50.0) < 5.0
    again = edxs.simulate(shape=(12, 10), counts_per_pixel=50.0, seed=1)
    np.testing.assert_array_equal(sim.counts, again.counts)
    with pytest.raises(ValueError, match="shape"):
        edxs.simulate(shape=(0, 3))


def test_calibration_refined_by_default_and_kept_when_asked():
    """With a model whose channel width is 1 % off the data's, the default fit refines the
    calibration (G_ is not the given model's G, and is closer to the data's model), and
    refine_calibration=False keeps the given G exactly, as `--no-refine-calibration`."""
    from conftest import PAPER_ELEMENTS, PAPER_MODEL

    sim = edxs.simulate(shape=(24, 24), counts_per_pixel=150.0, seed=5, radius=6.0,
                        centers=[(6, 6), (16, 15)])
    X = sim.counts.reshape(-1, sim.counts.shape[-1]).astype(np.float64)
    true_G = np.asarray(edxs.build_G(PAPER_ELEMENTS, ignored_elements=[], **PAPER_MODEL).G)
    off = edxs.build_G(PAPER_ELEMENTS, ignored_elements=[], **dict(PAPER_MODEL, e_scale=0.0101))
    off_G = np.asarray(off.G)
    kw = dict(n_components=3, G=off, shape_2d=(24, 24), hspy_comp=True, verbose=0,
              max_iter=20, g_update=False)
    kept = edxs.SmoothNMF(refine_calibration=False, **kw)
    kept.fit_transform(X)
    np.testing.assert_array_equal(kept.G_, off_G)
    refined = edxs.SmoothNMF(**kw)
    refined.fit_transform(X)
    assert not np.array_equal(refined.G_, off_G)
    # The element columns (the bremsstrahlung ones follow W) move towards the data's model.
    cols = slice(0, true_G.shape[1] - 2)
    err = lambda G: np.abs(G[:, cols] - true_G[:, cols]).sum()
    assert err(refined.G_) < 0.5 * err(off_G), (err(refined.G_), err(off_G))
    with pytest.raises(TypeError, match="refine_calibration"):
        edxs.SmoothNMF(refine_calibration="no", **kw).fit_transform(X)
