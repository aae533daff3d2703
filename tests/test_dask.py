"""Scale-out on Dask, on a real local cluster (two worker processes on 127.0.0.1).

Two paths, as documented in ``doc/scaling.rst``:

* hyper-parameter searches whose fits run on the cluster through joblib's
  ``dask`` backend (scikit-learn's own ``GridSearchCV``, unchanged);
* out-of-core training of chunked dask arrays through ``partial_fit``, with
  ``dask_ml.wrappers.Incremental`` and dask-ml's adaptive searches
  (``IncrementalSearchCV``, ``HyperbandSearchCV``).

These tests need the optional ``dask`` extra and skip only when it is missing.
"""

import contextlib
import warnings

import numpy as np
import pytest

_EXTRA = (
    "the optional 'dask' extra is not installed "
    "(pip install 'sklearn_bp[dask]' for dask, distributed and dask-ml)"
)
dask = pytest.importorskip("dask", reason=_EXTRA)
da = pytest.importorskip("dask.array", reason=_EXTRA)
distributed = pytest.importorskip("distributed", reason=_EXTRA)
dask_ml = pytest.importorskip("dask_ml", reason=_EXTRA)

import joblib  # noqa: E402
from dask_ml.model_selection import HyperbandSearchCV, IncrementalSearchCV  # noqa: E402
from dask_ml.wrappers import Incremental  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.metrics import mean_squared_error, r2_score  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

from sklearn_bp import BackpropClassifier, BackpropRegressor  # noqa: E402
from sklearn_bp.optimizers import SGD, Adam  # noqa: E402

N_SAMPLES, CHUNK = 2000, 250  # eight chunks
N_CHUNKS = N_SAMPLES // CHUNK
GOOD_LR, BAD_LR = 0.03, 1e-5  # BAD_LR barely moves the initial weights

pytestmark = pytest.mark.filterwarnings(
    "ignore:Stochastic optimizer:sklearn.exceptions.ConvergenceWarning"
)


@pytest.fixture(scope="module")
def client():
    """A two-process cluster bound to the loopback interface, shut down after."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        workers = client.scheduler_info()["workers"]
        assert len(workers) == 2
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in workers)
        yield client


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(
        n_samples=N_SAMPLES, n_features=10, n_informative=6, random_state=0
    )
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(
        n_samples=N_SAMPLES, n_features=10, noise=5.0, random_state=0
    )
    return StandardScaler().fit_transform(X), y / np.std(y)


def _chunked(X, y):
    Xd, yd = da.from_array(X, chunks=(CHUNK, -1)), da.from_array(y, chunks=CHUNK)
    assert Xd.numblocks == (N_CHUNKS, 1)
    return Xd, yd


def _workers_that_ran(task_stream):
    return {task["worker"] for task in task_stream.data}


def assert_same_params(a, b):
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(Wa, Wb)


@contextlib.contextmanager
def adaptive_search_scheduler(client):
    """Work around dask-ml 2025.1.0 with dask >= 2025.3 (dask/dask-ml#1016).

    dask-ml's adaptive searches run their driver as a coroutine on the client's
    event loop and call the *synchronous* ``dask.persist`` from it
    (``dask_ml/model_selection/_incremental.py``, ``_fit``). Recent dask
    refuses that: ``get_scheduler`` resolves the default client, finds it
    asynchronous inside the loop and raises "RuntimeError: Attempting to use an
    asynchronous Client in a synchronous context of `dask.compute`". Handing
    dask the client's ``get`` as a plain callable scheduler skips that check;
    ``dask.persist`` then uses ``client.persist``, which only submits the graph
    (non-blocking) -- exactly what dask-ml expects. The work still runs on the
    cluster; nothing about the search changes. Not our bug: our estimators are
    only the models being fitted. Remove once dask-ml fixes #1016.
    """
    with dask.config.set(scheduler=client.get):
        yield


# -- path 1: scikit-learn searches on the cluster via joblib ----------------------


def test_grid_search_on_cluster_equals_local_search(client, clf_data):
    X, y = clf_data
    X, y = X[:600], y[:600]
    est = BackpropClassifier(
        hidden_layer_sizes=(8,), max_iter=10, batch_size=50, random_state=0
    )
    grid = [
        {"optimizer": ["sgd", "adam", "rmsprop"], "learning_rate_init": [1e-3, 1e-2]},
        {
            "optimizer": [Adam()],
            "optimizer__beta_1": [0.5, 0.9],
            "learning_rate_init": [1e-2],
        },
    ]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    local = GridSearchCV(est, grid, cv=cv, n_jobs=1).fit(X, y)

    with distributed.get_task_stream(client) as tasks, joblib.parallel_backend("dask"):
        remote = GridSearchCV(est, grid, cv=cv, n_jobs=-1).fit(X, y)

    # every fit ran in the worker processes (both of them), not locally
    assert _workers_that_ran(tasks) == set(client.scheduler_info()["workers"])
    n_candidates = 6 + 2
    assert len(remote.cv_results_["params"]) == n_candidates
    for key in ["mean_test_score", "rank_test_score"] + [
        f"split{i}_test_score" for i in range(3)
    ]:
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert repr(remote.best_params_) == repr(local.best_params_)
    assert_same_params(remote.best_estimator_, local.best_estimator_)
    assert remote.best_score_ > 0.7


# -- path 2: out-of-core training through partial_fit ------------------------------


def test_incremental_sees_every_chunk_in_order(client, clf_data):
    X, y = clf_data
    Xd, yd = _chunked(X, y)
    classes = np.unique(y)
    passes = 3
    est = BackpropClassifier(
        hidden_layer_sizes=(16,), learning_rate_init=0.01, batch_size=50, random_state=0
    )
    inc = Incremental(est, scoring="accuracy", shuffle_blocks=False)
    with distributed.get_task_stream(client) as tasks:
        inc.fit(Xd, yd, classes=classes)  # one pass over the chunks
        for _ in range(passes - 1):
            inc.partial_fit(Xd, yd, classes=classes)  # further passes
    assert _workers_that_ran(tasks) <= set(client.scheduler_info()["workers"])
    assert tasks.data

    fitted = inc.estimator_
    # one partial_fit call (= one epoch of our estimator) per chunk and pass
    assert fitted.n_iter_ == N_CHUNKS * passes
    assert len(fitted.loss_curve_) == N_CHUNKS * passes
    assert fitted.t_ == N_SAMPLES * passes
    # the wrapped estimator is left untouched
    with pytest.raises(NotFittedError):
        check_is_fitted(inc.estimator)

    # Bit-identical to feeding the chunks one by one locally: every chunk was
    # seen, in order, with the optimizer state carried across chunks.
    local = BackpropClassifier(**est.get_params())
    for _ in range(passes):
        for start in range(0, N_SAMPLES, CHUNK):
            rows = slice(start, start + CHUNK)
            local.partial_fit(X[rows], y[rows], classes=classes)
    assert_same_params(fitted, local)
    assert fitted.loss_curve_ == local.loss_curve_

    score = inc.score(Xd, yd)
    assert score == local.score(X, y)
    assert score > 0.85
    # predictions stay lazy, one block per chunk, computed on the workers
    pred = inc.predict(Xd)
    assert isinstance(pred, da.Array) and pred.numblocks == (N_CHUNKS,)
    np.testing.assert_array_equal(pred.compute(), local.predict(X))
    proba = inc.predict_proba(Xd)
    assert isinstance(proba, da.Array) and proba.numblocks == (N_CHUNKS, 1)
    # Bit-identical to predicting the same chunks locally (a single 2000-row
    # call may differ in the last bits: BLAS sums differently for other shapes).
    by_chunk = np.vstack(
        [local.predict_proba(X[i : i + CHUNK]) for i in range(0, N_SAMPLES, CHUNK)]
    )
    np.testing.assert_array_equal(proba.compute(), by_chunk)
    np.testing.assert_allclose(proba.compute(), local.predict_proba(X), rtol=1e-12)


def test_incremental_shuffled_blocks_regressor(client, reg_data):
    X, y = reg_data
    Xd, yd = _chunked(X, y)
    est = BackpropRegressor(
        hidden_layer_sizes=(16,), learning_rate_init=0.01, batch_size=50, random_state=0
    )
    # Not scoring="r2" (nor the default, which dask-ml maps to "r2" for a
    # RegressorMixin.score): dask-ml 2025.1.0's dask r2_score fails with dask >=
    # 2025.2 -- it assigns through a boolean mask of unknown length
    # (output_scores[valid_score] = ..., dask_ml/metrics/regression.py), which
    # dask now rejects with "cannot broadcast shape (nan,) to shape (nan,)"
    # (dask/dask-ml#1012). dask-ml's mean squared error works; R^2 is checked
    # below from the lazily computed predictions.
    inc = Incremental(
        est, scoring="neg_mean_squared_error", shuffle_blocks=True, random_state=0
    )
    inc.fit(Xd, yd)
    inc.partial_fit(Xd, yd)
    fitted = inc.estimator_
    assert fitted.n_iter_ == 2 * N_CHUNKS
    assert fitted.t_ == 2 * N_SAMPLES
    pred = inc.predict(Xd).compute()
    assert r2_score(y, pred) > 0.8
    np.testing.assert_allclose(
        -inc.score(Xd, yd), mean_squared_error(y, pred), rtol=1e-10
    )
    # a shuffled block order really differs from the in-order one
    ordered = Incremental(est, shuffle_blocks=False)
    ordered.fit(Xd, yd)
    ordered.partial_fit(Xd, yd)
    assert ordered.estimator_.t_ == fitted.t_
    assert not np.array_equal(ordered.estimator_.coefs_[0], fitted.coefs_[0])


def test_incremental_on_dask_dataframe_keeps_feature_names(client):
    pd = pytest.importorskip("pandas", reason=_EXTRA)
    dd = pytest.importorskip("dask.dataframe", reason=_EXTRA)
    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.randn(800, 3), columns=["a", "b", "c"])
    y = pd.Series((df["a"] - df["b"] > 0).astype(int), name="y")
    ddf, dy = dd.from_pandas(df, npartitions=4), dd.from_pandas(y, npartitions=4)
    est = BackpropClassifier(
        hidden_layer_sizes=(8,), learning_rate_init=0.01, batch_size=50, random_state=0
    )
    inc = Incremental(est, scoring="accuracy", shuffle_blocks=False)
    with warnings.catch_warnings():
        # each partition reaches partial_fit as a pandas DataFrame: the column
        # names are recorded and no feature-name warning is raised anywhere
        warnings.simplefilter("error")
        inc.fit(ddf, dy, classes=[0, 1])
        fitted = inc.estimator_
        assert list(fitted.feature_names_in_) == ["a", "b", "c"]
        assert fitted.n_iter_ == 4 and fitted.t_ == 800
        assert inc.score(ddf, dy) > 0.85
        np.testing.assert_array_equal(inc.predict(ddf).compute(), fitted.predict(df))


def test_incremental_search_finds_the_good_learning_rate(client, clf_data):
    X, y = clf_data
    Xd, yd = _chunked(X, y)
    est = BackpropClassifier(hidden_layer_sizes=(16,), batch_size=50, random_state=0)
    max_iter = 6
    search = IncrementalSearchCV(
        est,
        {"learning_rate_init": [BAD_LR, GOOD_LR]},
        n_initial_parameters="grid",
        max_iter=max_iter,
        decay_rate=None,  # plain search: every model gets max_iter chunks
        random_state=0,
    )
    with (
        adaptive_search_scheduler(client),
        distributed.get_task_stream(client) as tasks,
    ):
        search.fit(Xd, yd, classes=np.unique(y))
    assert _workers_that_ran(tasks) <= set(client.scheduler_info()["workers"])

    results = search.cv_results_
    assert search.best_params_ == {"learning_rate_init": GOOD_LR}
    assert search.best_score_ > 0.85
    bad = results["test_score"][results["param_learning_rate_init"] == BAD_LR]
    assert bad.size == 1 and bad[0] < 0.7
    np.testing.assert_array_equal(results["partial_fit_calls"], [max_iter, max_iter])
    best = search.best_estimator_
    # each partial_fit call drove one epoch of our estimator on one chunk
    assert best.n_iter_ == max_iter
    assert 0 < best.t_ <= max_iter * CHUNK
    assert best.learning_rate_init == GOOD_LR


def test_hyperband_search_prefers_good_configurations(client, clf_data):
    X, y = clf_data
    Xd, yd = _chunked(X, y)
    est = BackpropClassifier(hidden_layer_sizes=(16,), batch_size=50, random_state=0)
    params = {
        "learning_rate_init": [BAD_LR, GOOD_LR],
        # optimizer instances travel to the workers and are cloned there
        "optimizer": [Adam(), SGD(momentum=0.9)],
    }
    max_iter = 9
    search = HyperbandSearchCV(est, params, max_iter=max_iter, random_state=0)
    with adaptive_search_scheduler(client), warnings.catch_warnings():
        # Hyperband asks each bracket for more candidates than this 4-point
        # grid has; scikit-learn's ParameterSampler says so and uses all 4.
        warnings.filterwarnings("ignore", "The total space of parameters", UserWarning)
        search.fit(Xd, yd, classes=np.unique(y))

    results = search.cv_results_
    lrs = results["param_learning_rate_init"]
    assert search.best_params_["learning_rate_init"] == GOOD_LR
    assert search.best_score_ > 0.85
    # every model with the bad learning rate scored below every good one
    assert results["test_score"][lrs == BAD_LR].max() < 0.7
    assert (
        results["test_score"][lrs == BAD_LR].max()
        < results["test_score"][lrs == GOOD_LR].min()
    )
    # the brackets trained every configuration of the grid, some of them twice
    assert search.metadata_["n_models"] == len(results["params"]) >= 4
    assert sum(results["partial_fit_calls"]) == search.metadata_["partial_fit_calls"]
    best = search.best_estimator_
    assert best.n_iter_ == results["partial_fit_calls"][search.best_index_]
    assert isinstance(best.optimizer, (Adam, SGD))
    # the grid's optimizer instances were never mutated
    assert params["optimizer"][0] == Adam() and params["optimizer"][1] == SGD(
        momentum=0.9
    )
