"""The benchmark's numpy floor trains the same network as our ``fit``.

``benchmarks/numpy_floor.py`` times the shortest numpy loop for W1's training
(issue 17, target 3) as a floor for a small-batch step; it says something only
if it does the same work. After three epochs on digits (430 rows: a short last
batch, and shuffles that differ per epoch) its parameters must be the
estimator's to rounding, in float64, L2 term included.
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from numpy_floor import HIDDEN, estimator_params, numpy_loop  # noqa: E402
from torch_loop import initial_params  # noqa: E402


def test_numpy_floor_matches_fit():
    X, y = load_digits(return_X_y=True)
    X, y = StandardScaler().fit_transform(X[:430]), y[:430]
    epochs = 3
    coefs, intercepts = numpy_loop(X, y, epochs)
    est = BackpropClassifier(**estimator_params(epochs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    # training moved the weights well beyond the tolerance below
    start, _, _ = initial_params(HIDDEN, X.shape[1], 10, 0, np.float64)
    assert min(np.abs(a - b).max() for a, b in zip(coefs, start, strict=True)) > 1e-3
    for ours, floor in zip(
        est.coefs_ + est.intercepts_, coefs + intercepts, strict=True
    ):
        np.testing.assert_allclose(floor, ours, rtol=1e-9, atol=1e-12)
