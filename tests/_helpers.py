"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning


def quiet_fit(est, *args, **kwargs):
    """``est.fit(*args, **kwargs)`` without the ConvergenceWarning that fixed,
    short trainings raise on purpose; returns the fitted estimator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def central_differences(value, params, h=1e-6):
    """``(value() at p + h - value() at p - h) / 2h`` for every element of every
    array in ``params``, perturbed in place one at a time and restored."""
    numeric = []
    for p in params:
        out = np.empty_like(p)
        for idx in np.ndindex(p.shape):
            saved = p[idx]
            p[idx] = saved + h
            plus = value()
            p[idx] = saved - h
            minus = value()
            p[idx] = saved
            out[idx] = (plus - minus) / (2 * h)
        numeric.append(out)
    return numeric
