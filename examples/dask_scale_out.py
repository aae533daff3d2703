"""
======================================
Scaling out with Dask (runs a cluster)
======================================

The two ways to take :class:`~sklearn_bp.BackpropClassifier` beyond one
machine, described in :doc:`/scaling`:

1. **Many fits, data that fit in memory**: run scikit-learn's own
   :class:`~sklearn.model_selection.GridSearchCV` with its fits spread over the
   cluster's workers, through joblib's ``dask`` backend.
2. **Data larger than memory**: train chunk by chunk through ``partial_fit``
   on a chunked dask array, with ``dask_ml.wrappers.Incremental``, and search
   hyper-parameters the same way with ``dask_ml.model_selection``'s
   ``HyperbandSearchCV``.

This script starts a Dask cluster, so the documentation build does not run it
(its name has no ``plot_`` prefix). Run it yourself::

    pip install "sklearn_bp[dask]"
    python examples/dask_scale_out.py                      # local cluster
    python examples/dask_scale_out.py tcp://scheduler:8786  # existing cluster

With an address, the same code runs on that cluster; nothing else changes
(every worker needs the same Python environment, ``sklearn_bp`` included).
"""

# %%
import sys
import time

import dask
import dask.array as da
import joblib
import numpy as np
from dask.distributed import Client, LocalCluster
from dask_ml.model_selection import HyperbandSearchCV
from dask_ml.preprocessing import StandardScaler
from dask_ml.wrappers import Incremental
from scipy.stats import loguniform
from sklearn.datasets import make_classification
from sklearn.model_selection import GridSearchCV

from sklearn_bp import BackpropClassifier
from sklearn_bp.optimizers import SGD, Adam

N_SAMPLES = 400_000  # path 2; 100 times more is the same code, with more chunks
CHUNK_ROWS = 25_000  # rows per chunk: the unit of partial_fit and of memory
N_FEATURES = 20


def cluster_client(address=None):
    """A client for the cluster at ``address``, or for a new local cluster."""
    if address:
        return Client(address)  # e.g. "tcp://scheduler:8786"
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,  # our fits are single-threaded numpy: 1 per core
        processes=True,
        host="127.0.0.1",  # reachable from this machine only
        dashboard_address=None,  # ":8787" to watch the tasks in a browser
    )
    client = Client(cluster)
    client.close_cluster = True  # read back in main(): ours to shut down
    return client


# %%
# Path 1: a grid search whose fits run on the workers
# ----------------------------------------------------
# The data fit in memory; the *search* is what is large. joblib's ``dask``
# backend sends each (candidate, fold) fit to a worker. The search object is
# scikit-learn's own, and its results equal a local run's.


def grid_search_on_cluster(client):
    X, y = make_classification(
        n_samples=3_000, n_features=N_FEATURES, n_informative=10, random_state=0
    )
    param_grid = [
        {"optimizer": ["sgd", "rmsprop"], "learning_rate_init": [1e-3, 1e-2]},
        {
            "optimizer": [Adam()],
            "optimizer__beta_1": [0.8, 0.9],
            "learning_rate_init": [1e-3, 1e-2],
        },
    ]
    search = GridSearchCV(
        BackpropClassifier(
            hidden_layer_sizes=(32,),
            early_stopping=True,  # each fit stops when its validation score does
            n_iter_no_change=5,
            random_state=0,
        ),
        param_grid,
        cv=3,
        n_jobs=-1,  # as many fits at a time as the cluster has worker threads
    )
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    n_fits = len(search.cv_results_["params"]) * 3
    print(f"[grid search] {n_fits} fits in {time.perf_counter() - start:.1f} s")
    print(f"[grid search] best {search.best_params_}, score {search.best_score_:.3f}")


# %%
# Path 2: out-of-core training through ``partial_fit``
# -----------------------------------------------------
# The data are a chunked dask array, created (or read) on the workers; the
# client never holds them. Each ``partial_fit`` call is one epoch over one
# chunk, and the optimizer state carries over from call to call.


def _labels(X):
    """The rule to learn: a fixed non-linear function of the features."""
    W = np.random.RandomState(42).standard_normal((X.shape[1], 2))
    W /= np.sqrt(X.shape[1])  # unit-variance projections
    return (np.tanh(X @ W[:, 0]) + np.sin(X @ W[:, 1]) > 0).astype(np.int64)


def load_data(n_samples, seed):
    """Stand-in for reading a large data set lazily, chunk by chunk.

    With real data this is ``da.from_zarr(...)``, ``da.from_npy_stack(...)`` or
    ``dd.read_parquet(...)``; here each chunk is generated on a worker when a
    task needs it, so the client never holds the data.
    """
    rng = da.random.default_rng(seed)
    X = rng.standard_normal(
        (n_samples, N_FEATURES), chunks=(CHUNK_ROWS, N_FEATURES)
    ).astype(np.float32)  # float32 in: float32 network, half the memory
    y = X.map_blocks(_labels, drop_axis=1, dtype=np.int64)
    return X, y


def out_of_core_training(client):
    X_train, y_train = load_data(N_SAMPLES, seed=0)
    X_test, y_test = load_data(N_SAMPLES // 10, seed=1)  # held out
    scaler = StandardScaler().fit(X_train)  # one pass for the means and stds
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    # The small held-out set is scored after every pass: keep it in the
    # workers' memory. The training chunks are recomputed (or re-read) on
    # each pass and never all held at once.
    X_test, y_test = dask.persist(X_test, y_test)
    classes = np.array([0, 1])  # every class that can appear, for the first call

    # 2a. Choose the hyper-parameters with Hyperband, which also drives
    # partial_fit: it trains many models chunk by chunk and drops the poor ones
    # early. dask-ml's adaptive searches keep the data they train on in the
    # cluster's memory (spread over the workers), so give them a sample of
    # chunks that fits there.
    n_sample = 4 * CHUNK_ROWS
    X_sample, y_sample = dask.persist(X_train[:n_sample], y_train[:n_sample])
    search = HyperbandSearchCV(
        BackpropClassifier(hidden_layer_sizes=(32,), random_state=0),
        {
            "learning_rate_init": loguniform(1e-5, 1e-1),
            "optimizer": [Adam(), SGD(momentum=0.9)],
            "alpha": loguniform(1e-6, 1e-2),
        },
        max_iter=9,  # at most 9 partial_fit calls (chunks) per model
        random_state=0,
    )
    start = time.perf_counter()
    with dask_ml_search_workaround(client):
        search.fit(X_sample, y_sample, classes=classes)
    print(
        f"[hyperband] {search.metadata_['n_models']} models, "
        f"{search.metadata_['partial_fit_calls']} partial_fit calls, "
        f"{time.perf_counter() - start:.1f} s"
    )
    best = search.best_params_
    print(f"[hyperband] best {best}, score {search.best_score_:.3f}")

    # 2b. Train the chosen configuration on every chunk with Incremental: one
    # partial_fit call per chunk, one chunk in memory at a time, the model
    # passed from task to task with its optimizer state.
    model = Incremental(
        BackpropClassifier(hidden_layer_sizes=(32,), random_state=0, **best),
        scoring="accuracy",
        shuffle_blocks=True,  # a new random chunk order on every pass
        random_state=0,
    )
    start = time.perf_counter()
    for epoch in range(3):  # three passes over all the chunks
        model.partial_fit(X_train, y_train, classes=classes)
        print(
            f"[incremental] pass {epoch + 1}: held-out accuracy "
            f"{model.score(X_test, y_test):.3f}"
        )
    net = model.estimator_
    print(
        f"[incremental] {net.n_iter_} partial_fit calls ({X_train.numblocks[0]} "
        f"chunks x 3 passes), {net.t_} samples seen, "
        f"{time.perf_counter() - start:.1f} s"
    )
    # Predictions stay lazy, chunk by chunk, until computed.
    print("[incremental] first predictions:", model.predict(X_test)[:10].compute())


def dask_ml_search_workaround(client):
    """dask-ml <= 2025.1 with dask >= 2025.3 (dask/dask-ml#1016).

    dask-ml's adaptive searches call the synchronous ``dask.persist`` from
    inside the client's event loop, which recent dask refuses ("Attempting to
    use an asynchronous Client in a synchronous context"). Giving dask the
    client's ``get`` as the scheduler makes that ``persist`` go straight to
    ``client.persist``, which is what dask-ml expects.
    """
    return dask.config.set(scheduler=client.get)


# %%
# Run both paths.


def main(address=None):
    client = cluster_client(address)
    try:
        print("workers:", list(client.scheduler_info()["workers"]))
        grid_search_on_cluster(client)
        out_of_core_training(client)
    finally:
        cluster = client.cluster if getattr(client, "close_cluster", False) else None
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":  # worker processes re-import this module
    main(sys.argv[1] if len(sys.argv) > 1 else None)
