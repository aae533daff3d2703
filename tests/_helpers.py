"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""

import warnings

from sklearn.exceptions import ConvergenceWarning


def quiet_fit(est, *args, **kwargs):
    """``est.fit(*args, **kwargs)`` without the ConvergenceWarning that fixed,
    short trainings raise on purpose; returns the fitted estimator."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)
