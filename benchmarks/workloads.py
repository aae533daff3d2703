"""Benchmark workloads: data, architecture and equal settings of both estimators.

Every workload is fixed work: ``max_iter`` epochs with ``tol=0`` and a huge
``n_iter_no_change``, so that neither estimator stops early, the same
architecture, optimizer, batch size, learning rate, L2 penalty and
``random_state`` on both sides. MLP's ``solver`` is matched with our optimizer of
the same name (``adam`` with ``adam``, ``sgd`` with Nesterov-momentum ``sgd``,
plain SGD with ``sgd`` at ``momentum=0``), so that both do the same work per step.

Besides the per-epoch rows (:data:`WORKLOADS`), two other kinds of rows:
:data:`PREDICTIONS` (``predict_proba``/``predict`` on many rows with a fitted
network of W2 or W4) and :data:`SEARCHES` (a whole ``GridSearchCV`` end to end).
"""

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import sparse
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.optimizers import SGD

# Larger than any epoch count used here: the stopping rule never fires.
NEVER = 10**9


@dataclass(frozen=True)
class Workload:
    """One benchmark row (per dtype)."""

    name: str
    description: str
    task: str  # "classification" or "regression"
    make_data: callable
    hidden_layer_sizes: tuple
    optimizer: str  # "adam", "sgd" (Nesterov momentum 0.9), "plain sgd" or "lbfgs"
    batch_size: int  # ignored by "lbfgs" (full batch)
    epochs: int  # full run (iterations for "lbfgs")
    epochs_quick: int
    learning_rate_init: float = 1e-3
    alpha: float = 0.0
    in_geomean: bool = True  # part of the headline geometric mean (W1-W4)
    predict: bool = False  # also time predict() on this workload
    tags: dict = field(default_factory=dict)
    # parameters given to ours only (e.g. dropout, which MLP does not have)
    ours_params: dict = field(default_factory=dict)
    # also timed against the plain PyTorch loop (benchmarks/torch_loop.py)
    torch: bool = False

    @property
    def solver(self):
        """``"lbfgs"`` (full-batch iterations) or ``"stochastic"`` (epochs).

        Decides how ``run.py`` times the row and which table shows it.
        """
        return "lbfgs" if self.optimizer == "lbfgs" else "stochastic"

    def estimators(self, max_iter):
        """``(ours, MLP's)`` unfitted, with equal settings."""
        common = dict(
            hidden_layer_sizes=self.hidden_layer_sizes,
            activation="relu",
            learning_rate_init=self.learning_rate_init,
            learning_rate="constant",
            alpha=self.alpha,
            batch_size=self.batch_size,
            max_iter=max_iter,
            shuffle=True,
            random_state=0,
            tol=0.0,
            n_iter_no_change=NEVER,
            early_stopping=False,
        )
        ours_extra = {}
        if self.optimizer == "lbfgs":
            # max_fun counts loss/gradient evaluations (line-search steps
            # included): far above what max_iter iterations need, on both sides
            ours_opt = "lbfgs"
            ours_extra = dict(max_fun=NEVER)
            theirs = dict(solver="lbfgs", max_fun=NEVER)
        elif self.optimizer == "sgd":
            # MLP's defaults: momentum=0.9 with Nesterov; ours is the same update
            # (torch.optim.SGD) for a constant learning rate.
            ours_opt = SGD(momentum=0.9, nesterov=True)
            theirs = dict(solver="sgd", momentum=0.9, nesterovs_momentum=True)
        elif self.optimizer == "plain sgd":
            # p -= lr * g on both sides: the cheapest update there is
            ours_opt = SGD(momentum=0.0, nesterov=False)
            theirs = dict(solver="sgd", momentum=0.0, nesterovs_momentum=False)
        else:
            ours_opt = "adam"
            theirs = dict(solver="adam", beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        if self.task == "classification":
            return (
                BackpropClassifier(
                    optimizer=ours_opt, **ours_extra, **self.ours_params, **common
                ),
                MLPClassifier(**theirs, **common),
            )
        return (
            BackpropRegressor(
                optimizer=ours_opt, **ours_extra, **self.ours_params, **common
            ),
            MLPRegressor(**theirs, **common),
        )


def _digits(dtype):
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(dtype), y


def _classification(n_samples, n_features, n_classes, seed):
    def make(dtype):
        X, y = make_classification(
            n_samples=n_samples,
            n_features=n_features,
            n_informative=min(n_features, 40),
            n_redundant=min(n_features - 40, 10) if n_features > 40 else 0,
            n_classes=n_classes,
            n_clusters_per_class=2,
            class_sep=1.5,
            random_state=seed,
        )
        return StandardScaler().fit_transform(X).astype(dtype), y

    return make


def _regression(n_samples, n_features, seed):
    def make(dtype):
        X, y = make_regression(
            n_samples=n_samples,
            n_features=n_features,
            n_informative=50,
            noise=10.0,
            random_state=seed,
        )
        X = StandardScaler().fit_transform(X)
        y = (y - y.mean()) / y.std()  # standardised target
        return X.astype(dtype), y.astype(dtype)

    return make


def _sparse_text_like(n_samples, n_features, density, n_classes, seed):
    """A bag-of-words-like CSR matrix whose classes use different vocabularies."""

    def make(dtype):
        rng = np.random.RandomState(seed)
        y = rng.randint(n_classes, size=n_samples)
        X = sparse.random(
            n_samples,
            n_features,
            density=density,
            format="csr",
            random_state=rng,
            dtype=np.float64,
        )
        # class-specific words: each class owns a block of 50 features
        rows = np.repeat(np.arange(n_samples), 5)
        cols = (y[rows] * 50 + rng.randint(50, size=rows.size)) % n_features
        X = X + sparse.csr_matrix(
            (np.ones(rows.size), (rows, cols)), shape=(n_samples, n_features)
        )
        X.data = np.log1p(X.data)
        return X.tocsr().astype(dtype), y

    return make


_W2 = Workload(
    "W2",
    "50,000x100 synthetic 10-class, (256, 128), adam, batch 200",
    "classification",
    _classification(50_000, 100, 10, 0),
    (256, 128),
    "adam",
    200,
    epochs=4,
    epochs_quick=1,
    predict=True,
    torch=True,
)

_W4 = Workload(
    "W4",
    "20,000x784 10-class, (1024, 1024), adam, batch 256",
    "classification",
    _classification(20_000, 784, 10, 0),
    (1024, 1024),
    "adam",
    256,
    epochs=2,
    epochs_quick=1,
    predict=True,
    torch=True,
)

_W1 = Workload(
    "W1",
    "load_digits 1797x64, (100,), adam, batch 200",
    "classification",
    _digits,
    (100,),
    "adam",
    200,
    epochs=60,
    epochs_quick=10,
    torch=True,
)

WORKLOADS = [
    _W1,
    _W2,
    Workload(
        "W3",
        "50,000x100 synthetic regression (standardised y), (256, 128), sgd, batch 200",
        "regression",
        _regression(50_000, 100, 0),
        (256, 128),
        "sgd",
        200,
        epochs=4,
        epochs_quick=1,
        torch=True,
    ),
    _W4,
    # Not a target: W4 with the cheapest update, which shows how close the
    # rest of the step (products, activations, loss, threads) comes to the
    # GEMM limit; the difference to W4 is what Adam's element-wise passes cost.
    replace(
        _W4,
        name="W4-SGD",
        description="W4 with plain SGD (momentum 0)",
        optimizer="plain sgd",
        learning_rate_init=0.1,  # 1e-3 barely moves plain SGD in two epochs
        in_geomean=False,
        predict=False,
        torch=False,
    ),
    replace(
        _W2,
        name="W2-L2",
        description="W2 with alpha=1e-4 (L2 penalty)",
        alpha=1e-4,
        in_geomean=False,
        predict=False,
        torch=False,
    ),
    # Small batches (issue 17, target 3, with W1): 1,563 steps an epoch, where
    # the Python and numpy-call overhead of a step weighs more than its products.
    replace(
        _W2,
        name="W2-bs32",
        description="W2 with batch_size=32 (small batches)",
        batch_size=32,
        epochs=2,
        in_geomean=False,
        predict=False,
    ),
    # Dropout's cost (issue 16): ours with dropout=0.2 against MLP without it
    # (MLP has none); this row's ratio over W2's is what dropout adds.
    replace(
        _W2,
        name="W2-dropout",
        description="W2 with dropout=0.2 on ours only (MLP has no dropout)",
        ours_params={"dropout": 0.2},
        in_geomean=False,
        predict=False,
        torch=False,
    ),
    Workload(
        "S1",
        "sparse CSR 20,000x10,000 (0.5% dense) 10-class, (256,), adam, batch 200",
        "classification",
        _sparse_text_like(20_000, 10_000, 0.005, 10, 0),
        (256,),
        "adam",
        200,
        epochs=2,
        epochs_quick=1,
        in_geomean=False,
    ),
    # L-BFGS, full batch, next to MLP's solver="lbfgs": seconds per iteration
    # and the final losses, in a table of their own (not in the geometric mean).
    # alpha=1e-4 (MLP's default) keeps a minimum above zero, so that scipy's
    # relative-reduction test does not end digits early (it does by 65
    # iterations with alpha=0, where the loss falls to 1e-9).
    # 20 iterations, in full mode too (it only repeats more): both libraries
    # take the same path, but their rounding differences grow along it. In
    # float64 (summation order in the products) about tenfold every 7
    # iterations on LB2: 1e-13 relative after 20, 1e-10 after 50, 4e-2 after
    # 100. In float32, where ours computes in float32 and MLP in float64, 1e-5
    # after 20 and 3e-2 after 25. Past that the final losses belong to two
    # different (equally valid) descents and no longer show equal work.
    Workload(
        "LB1",
        "load_digits 1797x64, (100,), L-BFGS, alpha=1e-4",
        "classification",
        _digits,
        (100,),
        "lbfgs",
        1797,
        epochs=20,
        epochs_quick=20,
        alpha=1e-4,
        in_geomean=False,
    ),
    Workload(
        "LB2",
        "5,000x100 synthetic regression (standardised y), (64, 64), L-BFGS, "
        "alpha=1e-4",
        "regression",
        _regression(5_000, 100, 0),
        (64, 64),
        "lbfgs",
        5_000,
        epochs=20,
        epochs_quick=20,
        alpha=1e-4,
        in_geomean=False,
    ),
]


@dataclass(frozen=True)
class PredictionWorkload:
    """``predict_proba`` and ``predict`` on ``n_rows`` rows with a fitted network.

    Both estimators are fitted for one epoch on ``workload``'s data (what a
    prediction costs does not depend on the weights' values), then predict on
    ``n_rows`` standard-normal rows of the same width (the training data is
    standardised too), at scikit-learn's default ``working_memory``.
    """

    name: str
    description: str
    workload: Workload
    n_rows: int
    n_rows_quick: int
    kind: str = "predict"


@dataclass(frozen=True)
class SearchWorkload:
    """A whole ``GridSearchCV`` of ``StandardScaler`` + estimator, end to end."""

    name: str
    description: str
    make_data: callable
    base: Workload  # the estimator's fixed settings (the grid overrides some)
    param_grid: dict
    epochs: int
    epochs_quick: int
    cv: int = 3
    kind: str = "search"

    @property
    def n_candidates(self):
        n = 1
        for values in self.param_grid.values():
            n *= len(values)
        return n

    def searches(self, max_iter):
        """``(ours, MLP's)`` unfitted searches over the same grid and folds."""
        grid = {f"net__{k}": v for k, v in self.param_grid.items()}
        return tuple(
            GridSearchCV(
                Pipeline([("scale", StandardScaler()), ("net", est)]),
                grid,
                cv=self.cv,
            )
            for est in self.base.estimators(max_iter=max_iter)
        )


def _raw_digits(dtype):
    X, y = load_digits(return_X_y=True)
    return X.astype(dtype), y  # unscaled: the pipeline's StandardScaler scales


PREDICTIONS = [
    PredictionWorkload(
        "P-W2",
        "predict on 200,000 rows, W2's network (100 -> 256 -> 128 -> 10)",
        _W2,
        n_rows=200_000,
        n_rows_quick=20_000,
    ),
    PredictionWorkload(
        "P-W4",
        "predict on 200,000 rows, W4's network (784 -> 1024 -> 1024 -> 10)",
        _W4,
        n_rows=200_000,
        n_rows_quick=20_000,
    ),
]

SEARCHES = [
    SearchWorkload(
        "GS-digits",
        "GridSearchCV(StandardScaler + net), load_digits, 3-fold, 8 configurations, "
        "adam, batch 200, fixed epochs",
        _raw_digits,
        _W1,
        {
            "hidden_layer_sizes": [(50,), (100,)],
            "alpha": [1e-4, 1e-2],
            "learning_rate_init": [1e-3, 1e-2],
        },
        epochs=20,
        epochs_quick=3,
    ),
]
