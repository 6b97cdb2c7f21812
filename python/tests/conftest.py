"""Shared fixtures: small data sets, the shared data folder, optional packages."""

import os
import pathlib

import numpy as np
import pytest

import edxs

ROOT = pathlib.Path(__file__).resolve().parents[2]


def shared_dir():
    """../shared beside the clone (CI), or $EDXS_SHARED; None when absent."""
    env = os.environ.get("EDXS_SHARED")
    for cand in ([pathlib.Path(env)] if env else []) + [ROOT.parent / "shared",
                                                        pathlib.Path("/work/shared")]:
        if (cand / "data").is_dir():
            return cand
    return None


def need_shared(*parts):
    """The path under the shared folder, or a visible skip naming what is missing."""
    base = shared_dir()
    if base is None:
        msg = "../shared (or $EDXS_SHARED) is absent: test skipped"
        print(f"SKIP: {msg}")
        pytest.skip(msg)
    path = base.joinpath(*parts)
    if not path.exists():
        msg = f"{path} is absent: test skipped"
        print(f"SKIP: {msg}")
        pytest.skip(msg)
    return path


#: The paper's elements and model (spec §3.7), used on a small simulated scan.
PAPER_ELEMENTS = ["O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd"]
PAPER_MODEL = dict(e_offset=0.3, e_size=1980, e_scale=0.01, E0=200, width_slope=0.01,
                   width_intercept=0.065, thickness=100e-7, toa=35.0, density=4.5)


@pytest.fixture(scope="session")
def small_sim():
    """A 16x16 paper-like scan at 100 counts per pixel (rows x cols x 1980 float64 counts)."""
    return edxs.simulate(shape=(16, 16), counts_per_pixel=100.0, seed=3, radius=5.0,
                         centers=[(4, 4), (11, 10)])


@pytest.fixture(scope="session")
def paper_model():
    """edxs's G for the paper's set-up (no ignored element)."""
    return edxs.build_G(PAPER_ELEMENTS, ignored_elements=[], **PAPER_MODEL)


def start_for(X, M, k, seed=0):
    """A positive start (W: M x k with columns summing to one, H: k x P) both programs share."""
    rng = np.random.default_rng(seed)
    W = rng.uniform(0.1, 1.0, (M, k))
    W /= W.sum(axis=0)
    H = rng.uniform(0.5, 1.5, (k, X.shape[1])) * X.sum(axis=0).mean() / k
    return W, H
