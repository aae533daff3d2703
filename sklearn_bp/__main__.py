"""Demo: ``python -m sklearn_bp``.

Cross-validates BackpropClassifier and BackpropRegressor inside a Pipeline on
scikit-learn's built-in datasets and prints their scores and fit times next to
MLPClassifier and MLPRegressor with the same settings.
"""

import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from . import BackpropClassifier, BackpropRegressor, __version__


def _row(name, model, X, y, cv, scoring):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cross_validate(
            make_pipeline(StandardScaler(), model), X, y, cv=cv, scoring=scoring
        )
    wall = time.perf_counter() - start
    scores = result["test_score"]
    fit_time = np.mean(result["fit_time"])
    return name, scores.mean(), scores.std(), fit_time, wall


def main():
    """Run the demo and print a table."""
    # One BLAS thread for both libraries: these small matrices gain nothing from
    # more, and on a busy machine threaded BLAS calls stall waiting for cores.
    with threadpool_limits(limits=1, user_api="blas"):
        _run()


def _run():
    print(f"sklearn_bp {__version__}: 5-fold cross-validation, StandardScaler + model")
    print("(same architecture, optimizer, batch size, learning rate and epochs)\n")
    for title, results in (_digits(), _diabetes()):
        _print_table(title, results)
    print("ratio = fit time relative to scikit-learn's MLP on the same folds.")


def _digits():
    X, y = load_digits(return_X_y=True)
    settings = dict(hidden_layer_sizes=(100,), random_state=0)
    adam = dict(settings, learning_rate_init=1e-3, max_iter=60, batch_size=200,
                tol=0.0, n_iter_no_change=1000)
    lbfgs = dict(settings, max_iter=100)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return "digits (1797 x 64, 10 classes), accuracy", [
        _row("BackpropClassifier", BackpropClassifier(**adam), X, y, cv, "accuracy"),
        _row("MLPClassifier", MLPClassifier(**adam), X, y, cv, "accuracy"),
        _row("  optimizer='lbfgs'", BackpropClassifier(optimizer="lbfgs", **lbfgs),
             X, y, cv, "accuracy"),
        _row("  solver='lbfgs'", MLPClassifier(solver="lbfgs", **lbfgs), X, y, cv,
             "accuracy"),
    ]


def _diabetes():
    X, y = load_diabetes(return_X_y=True)
    y = (y - y.mean()) / y.std()
    settings = dict(hidden_layer_sizes=(64,), learning_rate_init=1e-2, max_iter=100,
                    batch_size=32, alpha=1e-2, random_state=0, tol=0.0,
                    n_iter_no_change=1000)
    cv = KFold(5, shuffle=True, random_state=0)
    return "diabetes (442 x 10, standardised target), R^2", [
        _row("BackpropRegressor", BackpropRegressor(**settings), X, y, cv, "r2"),
        _row("MLPRegressor", MLPRegressor(**settings), X, y, cv, "r2"),
    ]


def _print_table(title, results):
    """Pairs of rows (ours, MLP's); the ratio is each pair's fit time ratio."""
    print(title)
    print(f"{'model':<20} {'score':>16} {'fit s/fold':>11} {'ratio':>6} {'wall s':>7}")
    for k, (name, mean, std, fit_time, wall) in enumerate(results):
        ref_fit = results[k - k % 2 + 1][3]
        print(
            f"{name:<20} {mean:>9.4f} ± {std:<5.3f} {fit_time:>11.3f} "
            f"{fit_time / ref_fit:>6.2f} {wall:>7.2f}"
        )
    print()


if __name__ == "__main__":
    main()
