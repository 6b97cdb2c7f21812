"""HyperSpy integration: s.decomposition(algorithm=edxs.SmoothNMF(...)) on EDSTEMSpectrum,
plain Signal1D and (with espm) EDS_espm; lazy signals through partial_fit (HyperSpy >= 2.5);
edxs.decompose on simulated data, the shared real map and the vendor files."""

import contextlib
import io
import warnings

import numpy as np
import pytest

import edxs
import edxs.hyperspy  # noqa: F401  (crop_to_model_range)
from conftest import PAPER_ELEMENTS, need_shared

hs = pytest.importorskip("hyperspy.api")
pytest.importorskip("exspy")


def hyperspy_version():
    import hyperspy

    return tuple(int(x) for x in hyperspy.__version__.split(".")[:2])


LAZY_OK = hyperspy_version() >= (2, 5)
if not LAZY_OK:
    print(f"SKIP: HyperSpy {hyperspy_version()} < 2.5 has no partial_fit path for custom "
          "estimators on lazy signals: lazy tests skipped here (run in venv B)")


@pytest.fixture()
def eds(small_sim):
    """The small simulation as an EDSTEMSpectrum with its metadata."""
    return small_sim.to_signal()


def estimator(model, **kw):
    return edxs.SmoothNMF(n_components=3, G=model, shape_2d=(16, 16), hspy_comp=True,
                          verbose=0, **kw)


def decomposition(s, est, **kw):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # exspy's EDS signals default to normalize_poissonian_noise=True, which rescales the
        # counts and breaks the Poisson likelihood ESpM assumes (espm's EDS_espm turns it off).
        s.decomposition(normalize_poissonian_noise=False, algorithm=est, output_dimension=3,
                        **kw)
    return s


def test_eds_tem_decomposition_equals_direct_fit(eds, small_sim):
    """factors = G·W and loadings = H of the same fit run directly."""
    model = edxs.build_G(eds, ignored_elements=[])
    assert model.params["toa"] == pytest.approx(35.0)
    assert model.params["E0"] == 200.0 and model.elements == sorted(PAPER_ELEMENTS)
    direct = estimator(model)
    direct.fit(small_sim.counts.reshape(256, -1))
    est = estimator(model)
    decomposition(eds, est)
    factors = eds.get_decomposition_factors().data
    loadings = eds.get_decomposition_loadings().data
    np.testing.assert_array_equal(factors, (direct.G_ @ direct.W_).T)
    np.testing.assert_array_equal(loadings.reshape(3, -1), direct.H_)
    assert est.method_ == "two-stage"


def test_warns_on_poisson_normalised_counts(eds):
    """HyperSpy's default Poisson normalisation for EDS signals gives non-integer data:
    the estimator says so."""
    model = edxs.build_G(eds, ignored_elements=[])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with contextlib.redirect_stdout(io.StringIO()):
            eds.decomposition(algorithm=estimator(model, max_iter=5), output_dimension=3)
    assert any("normalize_poissonian_noise" in str(w.message) for w in caught)


def test_plain_signal1d_with_array_g(small_sim):
    """A plain Signal1D map with G given as an array (all W rows on the simplex)."""
    model = edxs.build_G(PAPER_ELEMENTS, ignored_elements=[], e_offset=0.3, E0=200,
                         toa=35.0, density=4.5)
    s = hs.signals.Signal1D(small_sim.counts.copy())
    est = estimator(np.array(model.G), max_iter=50)
    decomposition(s, est)
    assert s.learning_results.factors.shape == (1980, 3)
    assert np.allclose(est.W_.sum(axis=0), 1.0, atol=1e-9)
    assert est.method_ == "direct"


def test_eds_espm_with_espm_model(small_sim):
    """espm's workflow with edxs's estimator: G=s.model from an EDS_espm signal (venv A)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import espm  # noqa: F401 (registers EDS_espm)
    except ImportError:
        print("SKIP: espm not installed: EDS_espm test skipped")
        pytest.skip("espm not installed")
    s = hs.signals.Signal1D(small_sim.counts.astype(np.float64))
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = 0.3, 0.01, "keV"
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s.set_signal_type("EDS_espm")
        s.set_microscope_parameters(beam_energy=200, elevation_angle=35.0)
        s.set_elements(PAPER_ELEMENTS)
        s.set_analysis_parameters(thickness=100e-7, density=4.5,
                                  detector_type="SDD_efficiency.txt", width_slope=0.01,
                                  width_intercept=0.065, xray_db="200keV_xrays.json")
        s.build_G("bremsstrahlung", ignored_elements=[])
    est = edxs.SmoothNMF(n_components=3, G=s.model, shape_2d=s.shape_2d, hspy_comp=True,
                         verbose=0, compat="espm", max_iter=20)
    decomposition(s, est)
    ours = edxs.build_G(sorted(PAPER_ELEMENTS), ignored_elements=[], e_offset=0.3, E0=200,
                        toa=35.0, density=4.5)
    np.testing.assert_allclose(est.G_[:, :-2], ours.G[:, :-2], rtol=1e-10, atol=1e-14)
    assert s.learning_results.loadings.shape == (256, 3)


@pytest.mark.skipif(not LAZY_OK, reason="HyperSpy < 2.5")
def test_lazy_equals_in_memory(eds):
    """A lazy signal chunked by scan rows goes through partial_fit chunk by chunk and gives
    exactly the in-memory decomposition."""
    model = edxs.build_G(eds, ignored_elements=[])
    mem = decomposition(eds.deepcopy(), estimator(model))
    lazy = eds.as_lazy()
    lazy.data = lazy.data.rechunk((4, 16, 1980))
    calls = []
    est = estimator(model)
    orig = est.partial_fit
    est.partial_fit = lambda X, y=None: (calls.append(X.shape), orig(X))[1]
    decomposition(lazy, est)
    assert len(calls) >= 2 and all(c[0] < 256 for c in calls), calls
    np.testing.assert_array_equal(np.asarray(lazy.learning_results.factors),
                                  mem.learning_results.factors)
    np.testing.assert_array_equal(np.asarray(lazy.learning_results.loadings),
                                  mem.learning_results.loadings)


def test_decompose_simulated(eds, small_sim):
    """edxs.decompose: G from the metadata, maps/spectra as signals, quant per phase."""
    res = edxs.decompose(eds, n_components=3)
    assert res.maps.data.shape == (3, 16, 16)
    assert res.spectra.data.shape == (3, 1980)
    assert res.spectra.axes_manager.signal_axes[0].offset == pytest.approx(0.3)
    assert res.W.shape[1] == 3 and res.H.shape == (3, 256)
    q = res.quant
    at = np.asarray(q["at_percent"], dtype=float)
    phase = np.asarray(q["phase"])
    for c in range(3):
        assert at[phase == c].sum() == pytest.approx(100.0)
    # The particles are found: each true map is matched by a fitted map.
    truth = small_sim.maps.reshape(3, -1)
    corr = np.corrcoef(np.vstack([truth, res.H]))[:3, 3:]
    assert corr.max(axis=1).min() > 0.8, corr
    if LAZY_OK:
        lazy = eds.as_lazy()
        res_lazy = edxs.decompose(lazy, n_components=3)
        np.testing.assert_array_equal(res_lazy.W, res.W)
        np.testing.assert_array_equal(res_lazy.H, res.H)


def test_quant_is_a_dataframe_with_pandas_and_a_dict_without(eds, monkeypatch):
    """res.quant: a pandas DataFrame when pandas imports, else a dict of the same columns."""
    import sys

    res = edxs.decompose(eds, n_components=3, max_iter=30)
    cols = ["phase", "element", "at_percent", "wt_percent", "std_percent"]
    pd = pytest.importorskip("pandas")
    assert isinstance(res.quant, pd.DataFrame)
    assert list(res.quant.columns) == cols
    assert len(res.quant) == 3 * len(res.model.elements)
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` raises ImportError
    q = edxs.hyperspy._quant_table(res.model, res.W, res.H, res.G)
    assert isinstance(q, dict) and list(q) == cols
    np.testing.assert_allclose(q["at_percent"], res.quant["at_percent"].to_numpy())


def shifted_axis_signal(eds, n_before=80):
    """The simulation with `n_before` channels prepended, so that the axis starts at
    0.3 - 0.01·n_before keV (below 0, as Bruker and JEOL axes do), and a detector noise peak
    around 0 keV in every pixel."""
    import exspy

    offset, scale = 0.3 - 0.01 * n_before, 0.01
    e = offset + scale * np.arange(n_before)
    noise = np.round(40.0 * np.exp(-0.5 * (e / 0.08) ** 2))
    data = np.concatenate([np.broadcast_to(noise, eds.data.shape[:-1] + (n_before,)), eds.data],
                          axis=-1)
    s = exspy.signals.EDSTEMSpectrum(data)
    s.metadata.add_dictionary(eds.metadata.as_dictionary())
    ax = s.axes_manager.signal_axes[0]
    ax.offset, ax.scale, ax.units = offset, scale, "keV"
    return s


def test_decompose_crops_the_axis_as_the_cli_does(eds):
    """A -0.5 keV axis with a noise peak: the channels at or below 0 keV and the noise peak
    are dropped by the CLI's rules (edxs.io::crop), and said so; energy_range crops further."""
    s = shifted_axis_signal(eds)
    cropped, note = edxs.hyperspy.crop_to_model_range(s)
    off = cropped.axes_manager.signal_axes[0].offset
    assert "at or below 0 keV" in note and "noise peak" in note, note
    # The noise peak (σ = 80 eV around 0) has fallen away before O Ka (0.525 keV) - FWHM.
    assert 0.05 < off < 0.47, off
    assert cropped.data.shape[-1] == s.data.shape[-1] - round((off - (-0.5)) / 0.01)
    cut, note2 = edxs.hyperspy.crop_to_model_range(s, energy_range=(0.5, 15))
    ax = cut.axes_manager.signal_axes[0]
    assert ax.offset == pytest.approx(0.5, abs=1e-9)
    assert ax.offset + ax.scale * (ax.size - 1) <= 15 + 1e-9
    assert "outside --energy-range" in note2
    res = edxs.decompose(s, n_components=3, max_iter=50)
    assert res.energy_note == note
    assert res.spectra.axes_manager.signal_axes[0].offset == pytest.approx(off)
    assert res.spectra.data.shape[-1] == cropped.data.shape[-1]
    assert np.isfinite(res.W).all() and np.isfinite(res.H).all()
    if LAZY_OK:
        lazy_cut, lazy_note = edxs.hyperspy.crop_to_model_range(s.as_lazy())
        assert lazy_note == note
        assert lazy_cut.axes_manager.signal_axes[0].offset == pytest.approx(off)


@pytest.mark.parametrize("bad", ["junk", "5", (1.0, 0.5), (float("nan"), 2.0), (1, 2, 3),
                                 ("a", 3)])
def test_decompose_bad_energy_range_is_named(eds, bad):
    with pytest.raises((ValueError, TypeError), match="energy_range"):
        edxs.decompose(eds, n_components=3, energy_range=bad)


def test_energy_range_off_the_data_is_named(eds):
    with pytest.raises(ValueError, match="keeps no channel"):
        edxs.decompose(eds, n_components=3, energy_range=(30, 40))


def test_decompose_real_map():
    """The shared 80x80 TEM map (EDSTEMSpectrum, axis from 0.83 keV, O without a line on it)."""
    path = need_shared("data", "88_ES-LP_G8", "88_ES-LP_G8_selection2_cropped2.hspy")
    s = hs.load(str(path))
    with pytest.warns(UserWarning, match="O"):
        res = edxs.decompose(s, n_components=3)
    assert "O" not in res.model.elements and "Fe" in res.model.elements
    assert res.maps.data.shape == (3, 80, 80)
    assert np.isfinite(res.W).all() and np.isfinite(res.H).all()
    recon = (res.G @ res.W @ res.H).sum()
    assert recon == pytest.approx(float(s.data.sum()), rel=0.02)
    print("real map: ", res.estimator.method_, res.estimator.n_iter_, "iterations")


def vendor(name):
    return need_shared("data", "vendor", name)


@pytest.mark.parametrize("name", ["16x16_12bit_packed_8bit.bcf",
                                  "30x30_instructively_packed_16bit_compressed.bcf"])
def test_sem_vendor_files_get_a_clear_error(name):
    """Bruker SEM maps (20 keV beam): read through RosettaSciIO, then a ValueError naming
    what edxs supports."""
    s = edxs.load(str(vendor(name)))
    assert s.axes_manager.signal_axes[0].offset < 0
    with pytest.raises(ValueError, match="20.*100, 200 and 300 keV"):
        edxs.decompose(s, n_components=2, elements=["Si", "O", "Fe"])


def test_jeol_tem_vendor_file_end_to_end():
    """The JEOL .pts TEM map (200 keV, 4096 channels from -0.96 keV) read by RosettaSciIO
    (needs numba), decomposed end to end after the CLI's crop (at or below 0 keV dropped)."""
    pytest.importorskip("numba", reason="RosettaSciIO's JEOL reader needs numba")
    s = edxs.load(str(vendor("View000_0000006.pts")), downsample=8, cutoff_at_kV=20)
    assert s.axes_manager.signal_axes[0].offset < 0
    res = edxs.decompose(s, n_components=2, elements=["C", "O", "S", "Fe", "Cu"])
    assert res.spectra.axes_manager.signal_axes[0].offset > 0
    assert "at or below 0 keV" in res.energy_note
    assert res.maps.data.shape[0] == 2
    assert np.isfinite(res.W).all() and np.isfinite(res.H).all()
