# %% [markdown]
# # edxs from Python and HyperSpy
#
# A notebook-style script (cells marked `# %%`, runs as a plain script too):
#
#     pip install ./python hyperspy exspy matplotlib
#     python python/examples/hyperspy_quickstart.py [OUT_DIR]
#
# It simulates the ESpM paper's sample, decomposes it three ways and writes the figures
# `maps.png` and `spectra.png` to OUT_DIR (default `edxs-python-demo`).

# %%
import os
import sys

import matplotlib

matplotlib.use("Agg")
import hyperspy.api as hs  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import edxs  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "edxs-python-demo"
os.makedirs(out, exist_ok=True)

# %% [markdown]
# ## 1. Data: a simulated 64x64 scan (or `s = edxs.load("map.bcf")` / `hs.load(...)`)
# `to_signal()` gives an exspy EDSTEMSpectrum with beam energy, elements and take-off angle.

# %%
sim = edxs.simulate(shape=(64, 64), counts_per_pixel=293.0, seed=0, radius=12.0,
                    centers=[(46, 25), (34, 40)])
s = sim.to_signal()
print(s, s.metadata.Sample.elements)

# %% [markdown]
# ## 2. The one-liner: G from the metadata, edxs's default method
# `res.maps` and `res.spectra` are HyperSpy signals, `res.quant` a table of at.%/wt.%.

# %%
res = edxs.decompose(s, n_components=3)
print(res, res.estimator.method_, res.estimator.n_iter_, "iterations")
print(res.quant)

# %% [markdown]
# ## 3. HyperSpy's own decomposition with edxs's estimator
# Keep `normalize_poissonian_noise=False` (exspy turns it on for EDS signals; ESpM needs raw
# counts). `compat="espm"` would reproduce espm 1.1.3's SmoothNMF iterate for iterate.

# %%
G = edxs.build_G(s, ignored_elements=[])
est = edxs.SmoothNMF(n_components=3, G=G, shape_2d=(64, 64), hspy_comp=True, verbose=0)
s.decomposition(normalize_poissonian_noise=False, algorithm=est, output_dimension=3)
loadings = s.get_decomposition_loadings()
factors = s.get_decomposition_factors()
print("HyperSpy loadings", loadings.data.shape, "factors", factors.data.shape)

# %% [markdown]
# ## 4. Lazy (dask) signals: HyperSpy >= 2.5 streams chunks to `partial_fit`
# Each chunk is kept only as its non-zero counts; the fit runs once on all of them and equals
# the in-memory result. Chunk the navigation by whole scan rows.

# %%
import hyperspy  # noqa: E402

if tuple(int(x) for x in hyperspy.__version__.split(".")[:2]) >= (2, 5):
    lazy = s.as_lazy()
    lazy.data = lazy.data.rechunk((16, 64, -1))
    est_lazy = edxs.SmoothNMF(n_components=3, G=G, shape_2d=(64, 64), hspy_comp=True,
                              verbose=0)
    lazy.decomposition(normalize_poissonian_noise=False, algorithm=est_lazy,
                       output_dimension=3)
    print("lazy == in memory:", np.array_equal(est_lazy.H_, est.H_))

# %% [markdown]
# ## 5. Figures: abundance maps against the truth, and the phase spectra

# %%
k = res.H.shape[0]
fig, axes = plt.subplots(2, k, figsize=(3 * k, 6))
for c in range(k):
    axes[0, c].imshow(sim.maps[c], vmin=0, vmax=1)
    axes[0, c].set_title(f"truth: {sim.info['phases'][c]['name']}")
    axes[1, c].imshow(res.maps.data[c], vmin=0)
    axes[1, c].set_title(f"edxs phase {c}")
for a in axes.ravel():
    a.set_axis_off()
fig.tight_layout()
fig.savefig(os.path.join(out, "maps.png"), dpi=80)

E = res.model.energies
fig, ax = plt.subplots(figsize=(8, 4))
for c in range(k):
    ax.plot(E, res.spectra.data[c] / res.spectra.data[c].sum(), label=f"phase {c}", lw=0.8)
ax.set_xlim(0.3, 10)
ax.set_xlabel("energy (keV)")
ax.set_ylabel("normalised intensity")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(out, "spectra.png"), dpi=80)
print("figures written to", out)
