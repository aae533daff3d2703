"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_bp.utils import _central_differences


def quiet_fit(est, *args, **kwargs):
    """``est.fit(*args, **kwargs)`` without the ConvergenceWarning that fixed,
    short trainings raise on purpose; returns the fitted estimator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def central_differences(value, params, h=1e-6):
    """``(value() at p + h - value() at p - h) / 2h`` for every element of every
    array in ``params`` (perturbed in place one at a time and restored), as
    arrays shaped like ``params``: the loop of ``sklearn_bp.utils.check_gradients``."""
    flat = _central_differences(value, params, h)
    sizes = np.cumsum([p.size for p in params])[:-1]
    return [part.reshape(p.shape) for part, p in zip(np.split(flat, sizes), params,
                                                     strict=True)]


def force_fused_step(monkeypatch):
    """Make any network take the fused step (``sklearn_bp._fused``), split
    however small; returns a dict counting the steps it took (``"fused"``) and
    those it handed to the generic step (``"fallback"``)."""
    from sklearn_bp import _fused

    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", 0)
    monkeypatch.setattr(_fused, "_MIN_SPLIT", 0)
    monkeypatch.setattr(_fused, "_MIN_PART", 1)
    calls = {"fused": 0, "fallback": 0}
    run = _fused.FusedStep.run

    def counting_run(self, *args):
        result = run(self, *args)
        calls["fused" if result is not None else "fallback"] += 1
        return result

    monkeypatch.setattr(_fused.FusedStep, "run", counting_run)
    return calls
