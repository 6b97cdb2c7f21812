"""edxs from Python: ESpM-NMF of STEM-EDX spectrum images, with espm's estimator interface.

    import edxs
    est = edxs.SmoothNMF(n_components=3, G=edxs.build_G(s), hspy_comp=True)
    s.decomposition(algorithm=est)          # HyperSpy, in memory or lazy
    res = edxs.decompose(s, n_components=3) # G from the metadata; res.maps, res.spectra, res.quant

numpy is the only requirement; HyperSpy, exspy, RosettaSciIO and pandas are used when present.
"""

from ._edxs import __version__
from .estimator import SmoothNMF
from .model import EDXSModel, build_G, from_espm_model
from .simulate import Simulation, simulate


def decompose(signal, n_components=3, **options):
    """See :func:`edxs.hyperspy.decompose` (imported lazily: HyperSpy is optional)."""
    from .hyperspy import decompose as _decompose

    return _decompose(signal, n_components, **options)


def load(path, **kwargs):
    """See :func:`edxs.hyperspy.load`: a vendor file's EDS spectrum image via RosettaSciIO."""
    from .hyperspy import load as _load

    return _load(path, **kwargs)


def model_params_from_signal(signal):
    """See :func:`edxs.hyperspy.model_params_from_signal`."""
    from .hyperspy import model_params_from_signal as _m

    return _m(signal)


__all__ = [
    "SmoothNMF", "EDXSModel", "build_G", "from_espm_model", "simulate", "Simulation",
    "decompose", "load", "model_params_from_signal", "__version__",
]
