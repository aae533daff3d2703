"""The benchmark's PyTorch competitor does the same work as our ``fit``.

``benchmarks/torch_loop.py`` times a plain torch loop against our estimator
(issue 17); its ratio means something only if both train the same network from
the same weights on the same batches with the same update. After one epoch (and
after three, where the shuffles differ per epoch) the parameters of both sides
must agree to rounding, in float64, for Adam, Nesterov SGD and plain SGD, for
softmax, binary and squared-error outputs, with a short last batch. Two epochs:
the second shuffle permutes the first order, as ``fit``'s does.
"""

import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

torch = pytest.importorskip("torch")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from torch_loop import TorchLoop, initial_params, max_abs_difference  # noqa: E402
from workloads import WORKLOADS  # noqa: E402

BY_NAME = {w.name: w for w in WORKLOADS}


def _data(task, n_classes):
    # 130 rows in batches of 32: a short last batch of 2
    if task == "regression":
        X, y = make_regression(130, 12, n_informative=8, random_state=0)
        return X, y / y.std()
    return make_classification(
        130, 12, n_informative=8, n_classes=n_classes, random_state=0
    )


@pytest.mark.parametrize(
    "name, task, n_classes",
    [
        ("W1", "classification", 3),  # adam, softmax
        ("W1", "classification", 2),  # adam, one logit
        ("W3", "regression", None),  # Nesterov SGD, half squared error
        ("W4-SGD", "classification", 3),  # plain SGD
    ],
)
def test_torch_loop_matches_fit(name, task, n_classes):
    epochs = 2
    w = replace(
        BY_NAME[name],
        task=task,
        hidden_layer_sizes=(16, 8),
        batch_size=32,
        learning_rate_init=0.01,
    )
    X, y = _data(task, n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = w.estimators(max_iter=epochs)[0].fit(X, y)
    model = TorchLoop(w, X, y, torch).fit(epochs)

    start, _, _ = initial_params((16, 8), X.shape[1], ours.n_outputs_, 0, X.dtype)
    moved = max(
        float(np.max(np.abs(a - b))) for a, b in zip(ours.coefs_, start, strict=True)
    )
    assert moved > 1e-3  # the comparison is not between two untrained networks
    assert max_abs_difference(ours, model) < 1e-6


def test_torch_loop_rejects_work_it_does_not_do():
    w = BY_NAME["W2-L2"]
    X, y = _data("classification", 3)
    with pytest.raises(ValueError, match="L2 penalty or dropout"):
        TorchLoop(w, X, y, torch)
