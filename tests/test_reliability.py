"""Reliability: divergence and recovery, interrupts, long runs, memory, threads.

* An absurd learning rate on every optimizer ends in the documented ValueError
  (epoch and batch named, smaller ``learning_rate_init`` or scaled inputs
  suggested); the estimator keeps the last parameters whose loss was finite, so
  it predicts, and a refit with a sane rate works.
* A KeyboardInterrupt during fit (from inside an optimizer step, half-way
  through the update, or between epochs) leaves a consistent fitted model and
  reaches the caller, with a warning.
* Many partial_fit calls keep memory flat and the attributes consistent;
  prediction works in bounded chunks whose results equal an unchunked pass.
* Predictions from several threads equal serial ones; a model pickled between
  partial_fit calls resumes bit for bit.
"""

import gc
import pickle
import re
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _helpers import quiet_fit as _quiet_fit
from scipy import sparse
from sklearn import config_context
from sklearn.datasets import make_classification, make_regression

from sklearn_bp import BackpropClassifier, BackpropRegressor, _solvers
from sklearn_bp.optimizers import SGD, Optimizer, RMSprop

DIVERGED = r"epoch \d+, batch \d+.*learning_rate_init.*scale the inputs"

OPTIMIZERS = {
    "sgd": "sgd",
    "sgd-plain": SGD(momentum=0.0, nesterov=False),
    "adam": "adam",
    "rmsprop": "rmsprop",
    "rmsprop-centered-momentum": RMSprop(centered=True, momentum=0.5),
}


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(n_samples=60, n_features=5, n_informative=3,
                               n_classes=3, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=60, n_features=5, random_state=0)
    return X, y / y.std()


def _params(est):
    return [p.copy() for p in est.coefs_ + est.intercepts_]


def _assert_usable(est, X):
    """Finite parameters, finite predictions, consistent attributes."""
    assert all(np.all(np.isfinite(p)) for p in est.coefs_ + est.intercepts_)
    assert len(est.loss_curve_) == est.n_iter_
    assert np.all(np.isfinite(est.loss_curve_))
    if isinstance(est, BackpropClassifier):
        proba = est.predict_proba(X)
        assert np.all(np.isfinite(proba))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert np.all(np.isin(est.predict(X), est.classes_))
    else:
        assert np.all(np.isfinite(est.predict(X)))
    assert np.all(np.isfinite(est.transform(X)))


# -- divergence and recovery ---------------------------------------------------


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_absurd_learning_rate_diverges_with_documented_error_then_recovers(
    Estimator, optimizer, clf_data, reg_data
):
    X, y = clf_data if Estimator is BackpropClassifier else reg_data
    est = Estimator(hidden_layer_sizes=(8,), optimizer=optimizer, batch_size=10,
                    learning_rate_init=1e200, max_iter=20, random_state=0)
    with pytest.raises(ValueError, match=DIVERGED) as info:
        _quiet_fit(est, X, y)
    assert type(info.value).__name__ == "DivergenceError"
    # The model holds the last parameters whose loss was finite: it predicts.
    _assert_usable(est, X)
    # A refit with a sane rate works and learns.
    est.set_params(learning_rate_init=1e-2, max_iter=30)
    _quiet_fit(est, X, y)
    _assert_usable(est, X)
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    # So does continuing with partial_fit.
    est.partial_fit(X, y)
    _assert_usable(est, X)


def test_divergence_in_partial_fit_keeps_a_usable_model(reg_data):
    X, y = reg_data
    est = BackpropRegressor(hidden_layer_sizes=(8,), random_state=0, batch_size=10,
                            learning_rate_init=1e200)
    with pytest.raises(ValueError, match=DIVERGED):
        for _ in range(5):
            est.partial_fit(X, y)
    assert all(np.all(np.isfinite(p)) for p in _params(est))
    assert np.all(np.isfinite(est.predict(X)))
    assert len(est.loss_curve_) == est.n_iter_ and est.t_ == est.n_iter_ * len(X)
    # As with MLP, partial_fit keeps the learning rate of its first call: a new
    # rate needs a new fit.
    est.set_params(learning_rate_init=1e-3)
    _quiet_fit(est, X, y)
    est.partial_fit(X, y)
    _assert_usable(est, X)


class RecordingSGD(Optimizer):
    """Plain SGD; records the parameters before each step.

    The record lives on the class: the estimator works on a private copy of
    the spec and must not write to it.
    """

    history = []

    def init_state(self, params):
        return {}

    def step(self, params, grads, state, lr):
        RecordingSGD.history.append([p.copy() for p in params])
        for p, g in zip(params, grads, strict=True):
            p -= lr * g


def test_divergence_restores_the_last_parameters_with_a_finite_loss(reg_data):
    """The step that made the next loss overflow is undone, not only the failing one."""
    X, y = reg_data
    RecordingSGD.history = []
    est = BackpropRegressor(hidden_layer_sizes=(8,), optimizer=RecordingSGD(),
                            learning_rate_init=1e100, batch_size=10, max_iter=5,
                            shuffle=False, random_state=0)
    with pytest.raises(ValueError, match=DIVERGED) as info:
        _quiet_fit(est, X, y)
    batch = int(re.search(r"batch (\d+)", str(info.value)).group(1))
    assert len(RecordingSGD.history) == batch - 1  # the failing batch took no step
    for p, saved in zip(_params(est), RecordingSGD.history[-1], strict=True):
        np.testing.assert_array_equal(p, saved)


class OverflowingSGD(Optimizer):
    """Writes inf into the first weight matrix at step ``at``."""

    def __init__(self, *, at=1):
        self.at = at

    def init_state(self, params):
        return {"step": 0}

    def step(self, params, grads, state, lr):
        state["step"] += 1
        for p, g in zip(params, grads, strict=True):
            p -= lr * g
        if state["step"] == self.at:
            params[0][0, 0] = np.inf


@pytest.mark.parametrize("at", [1, 6])  # 6: the very last step of the fit
def test_an_update_that_makes_parameters_non_finite_is_undone(reg_data, at):
    X, y = reg_data
    est = BackpropRegressor(hidden_layer_sizes=(4,), optimizer=OverflowingSGD(at=at),
                            batch_size=10, max_iter=1, random_state=0)
    with pytest.raises(ValueError, match=r"update at epoch 1, batch \d+ made the "
                                         r"parameters non-finite.*learning_rate_init"):
        _quiet_fit(est, X, y)
    assert all(np.all(np.isfinite(p)) for p in _params(est))
    assert np.all(np.isfinite(est.predict(X)))


def test_tiny_sample_weights_divergence_names_the_penalty(reg_data):
    X, y = reg_data
    est = BackpropRegressor(hidden_layer_sizes=(4,), optimizer="sgd", random_state=0)
    with pytest.raises(ValueError, match=r"alpha / sum\(sample_weight\).*scale "
                                         r"sample_weight up"):
        _quiet_fit(est, X, y, sample_weight=np.full(len(X), 1e-300))
    # Only the weights' ratios matter to the data term: scaled up, they fit.
    _quiet_fit(est, X, y, sample_weight=np.full(len(X), 1.0))
    _assert_usable(est, X)


# -- KeyboardInterrupt ---------------------------------------------------------


class InterruptingSGD(Optimizer):
    """Plain SGD that raises KeyboardInterrupt half-way through step ``at``.

    Records the parameters before each step on the class (see RecordingSGD).
    """

    history = []

    def __init__(self, *, at=3):
        self.at = at

    def init_state(self, params):
        return {"step": 0}

    def step(self, params, grads, state, lr):
        state["step"] += 1
        InterruptingSGD.history.append([p.copy() for p in params])
        for i, (p, g) in enumerate(zip(params, grads, strict=True)):
            if state["step"] == self.at and i == 1:
                raise KeyboardInterrupt  # the first layer is already updated
            p -= lr * g


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
@pytest.mark.parametrize("at", [1, 4, 9, 13])
def test_keyboard_interrupt_in_a_step_leaves_a_consistent_model(
    Estimator, at, clf_data, reg_data
):
    X, y = clf_data if Estimator is BackpropClassifier else reg_data
    n_batches = len(X) // 10  # 6 steps per epoch
    InterruptingSGD.history = []
    est = Estimator(hidden_layer_sizes=(8,), optimizer=InterruptingSGD(at=at),
                    learning_rate_init=1e-2, batch_size=10, max_iter=5,
                    random_state=0)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="interrupt"):
        _quiet_fit(est, X, y)
    complete = (at - 1) // n_batches
    assert est.n_iter_ == complete == len(est.loss_curve_)
    assert est.t_ == complete * len(X)
    # The half-done update was undone: the parameters are those before it.
    for p, saved in zip(_params(est), InterruptingSGD.history[-1], strict=True):
        np.testing.assert_array_equal(p, saved)
    if complete:
        _assert_usable(est, X)
    else:
        assert all(np.all(np.isfinite(p)) for p in _params(est))
        assert est.loss_ is None
    # The estimator can be fitted again.
    est.set_params(optimizer="adam")
    _quiet_fit(est, X, y)
    _assert_usable(est, X)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_keyboard_interrupt_between_epochs(monkeypatch, clf_data, early_stopping):
    """Interrupt after k epochs (as Ctrl-C during the monitor's bookkeeping)."""
    X, y = clf_data
    calls = {"n": 0}
    run_epoch = _solvers.StochasticSolver.run_epoch

    def interrupted_run_epoch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return run_epoch(self, *args, **kwargs)

    monkeypatch.setattr(_solvers.StochasticSolver, "run_epoch", interrupted_run_epoch)
    est = BackpropClassifier(hidden_layer_sizes=(8,), max_iter=10, random_state=0,
                             early_stopping=early_stopping, validation_fraction=0.2,
                             n_iter_no_change=100)
    with pytest.raises(KeyboardInterrupt), pytest.warns(
        UserWarning, match="interrupted by the user after 3 complete epochs"
    ) as record:
        est.fit(X, y)
    assert est.n_iter_ == 3 == len(est.loss_curve_)
    if early_stopping:
        assert len(est.validation_scores_) == 3
        assert est.best_validation_score_ == max(est.validation_scores_)
        assert any("best parameters" in str(w.message) for w in record)
    else:
        assert est.t_ == 3 * len(X)
        assert est.best_loss_ == min(est.loss_curve_)
    _assert_usable(est, X)
    monkeypatch.undo()
    est.set_params(early_stopping=False).partial_fit(X, y)  # and it goes on
    assert est.n_iter_ == 4 == len(est.loss_curve_)


def test_keyboard_interrupt_in_partial_fit(clf_data):
    X, y = clf_data
    InterruptingSGD.history = []
    est = BackpropClassifier(hidden_layer_sizes=(8,), optimizer=InterruptingSGD(at=8),
                             batch_size=10, random_state=0)
    est.partial_fit(X, y, classes=np.unique(y))
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning, match="interrupt"):
        est.partial_fit(X, y)
    assert est.n_iter_ == 1 == len(est.loss_curve_) and est.t_ == len(X)
    for p, saved in zip(_params(est), InterruptingSGD.history[-1], strict=True):
        np.testing.assert_array_equal(p, saved)
    _assert_usable(est, X)


# -- long runs and memory ------------------------------------------------------


def _rss_bytes():
    """Resident set size of this process (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.mark.slow
@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_many_partial_fit_calls_keep_memory_flat(Estimator):
    """Thousands of partial_fit calls (benchmarks/long_run.py runs 100,000).

    Memory may grow only by ``loss_curve_`` (one float per call, by contract):
    the process's RSS stays flat over 4,000 calls, and between two points
    2,000 calls apart the allocations still traced grow by that list's ~33
    bytes a call and no more (a leak of even one small array per call shows).
    """
    rng = np.random.RandomState(0)
    X = rng.standard_normal((500, 6))
    y = (X[:, 0] > 0).astype(int) if Estimator is BackpropClassifier else X[:, 0]
    est = Estimator(hidden_layer_sizes=(16,), random_state=0, learning_rate_init=1e-3)
    first = {"classes": [0, 1]} if Estimator is BackpropClassifier else {}
    batches = [slice(i, i + 5) for i in range(0, 500, 5)]
    calls = 0

    def run(n):
        nonlocal calls
        for _ in range(n):
            s = batches[calls % len(batches)]
            est.partial_fit(X[s], y[s], **(first if calls == 0 else {}))
            calls += 1

    run(1000)  # warm-up: caches, allocator pools
    gc.collect()
    rss_before = _rss_bytes()
    run(4000)
    gc.collect()
    rss_growth = _rss_bytes() - rss_before
    tracemalloc.start()
    try:
        run(1000)  # one-time allocations that tracing sees (caches) come first
        gc.collect()
        traced_before, _ = tracemalloc.get_traced_memory()
        run(2000)
        gc.collect()
        traced_after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rss_growth < 16 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB"
    per_call = (traced_after - traced_before) / 2000
    assert per_call < 48, f"{per_call:.0f} bytes kept per partial_fit call"
    assert est.n_iter_ == calls == len(est.loss_curve_) == 8000
    assert est.t_ == 5 * calls
    assert np.all(np.isfinite(est.loss_curve_))
    _assert_usable(est, X)


def _big_model(n_features=100, width=512):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((300, n_features))
    y = rng.randint(0, 3, 300)
    clf = BackpropClassifier(hidden_layer_sizes=(width, 64), max_iter=1,
                             random_state=0)
    return _quiet_fit(clf, X, y)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["predict_proba", "predict_log_proba", "predict",
                                    "decision_function", "transform"])
def test_prediction_peak_memory_is_bounded_by_working_memory(method):
    """Peak memory beyond the output does not scale with n_samples x width.

    An unchunked pass over 40,000 rows needs a 40,000 x 512 float64 hidden
    layer (164 MB); with working_memory=4 MiB the extra peak must stay within
    a few chunks, whatever the number of rows.
    """
    clf = _big_model()
    X = np.random.RandomState(1).standard_normal((40_000, 100))
    fn = getattr(clf, method)
    with config_context(working_memory=4):
        out = fn(X[:10])  # warm-up
        gc.collect()
        tracemalloc.start()
        try:
            out = fn(X)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    unchunked = X.shape[0] * 512 * 8
    extra = peak - out.nbytes
    # Beyond the output: at most a few output-sized temporaries (softmax, its
    # log), plus the chunk buffers (4 MiB of working memory per chunk).
    message = f"peak {peak / 2**20:.1f} MiB, output {out.nbytes / 2**20:.1f} MiB"
    assert extra < 3 * out.nbytes + 3 * 4 * 2**20, message
    assert extra < unchunked / 10, message


@pytest.mark.parametrize("method", ["predict_proba", "predict_log_proba",
                                    "decision_function", "transform"])
@pytest.mark.parametrize("layout", ["dense", "csr", "float32"])
def test_chunked_prediction_equals_an_unchunked_pass(method, layout):
    clf = _big_model(n_features=20, width=64)
    X = np.random.RandomState(2).standard_normal((3_001, 20))
    if layout == "csr":
        X[np.abs(X) < 1] = 0
        X = sparse.csr_matrix(X)
    if layout == "float32":
        clf = _quiet_fit(BackpropClassifier(hidden_layer_sizes=(64,), max_iter=1,
                                            random_state=0),
                         X[:300].astype(np.float32), np.arange(300) % 3)
        X = X.astype(np.float32)
    with config_context(working_memory=1024):
        whole = getattr(clf, method)(X)
    # 0.05 MiB: a few dozen rows per chunk, the last one partial
    with config_context(working_memory=0.05):
        chunked = getattr(clf, method)(X)
    assert chunked.dtype == whole.dtype
    # Up to rounding: the GEMMs of different row blocks may sum differently,
    # which shows as absolute error where a sum cancels to ~0.
    rtol = 1e-5 if chunked.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(chunked, whole, rtol=rtol,
                               atol=rtol * np.abs(whole).max())


# -- threads and pickles -------------------------------------------------------


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_predictions_from_threads_equal_serial_ones(Estimator, clf_data, reg_data):
    X, y = clf_data if Estimator is BackpropClassifier else reg_data
    est = _quiet_fit(Estimator(hidden_layer_sizes=(32, 16), max_iter=20,
                               random_state=0), X, y)
    rng = np.random.RandomState(0)
    inputs = [rng.standard_normal((rng.randint(1, 400), X.shape[1])) for _ in range(24)]
    inputs[3] = sparse.csr_matrix(inputs[3])
    methods = ["predict", "transform", "score"]
    if Estimator is BackpropClassifier:
        methods += ["predict_proba", "predict_log_proba", "decision_function"]

    def task(i, method):
        Xi = inputs[i]
        # chunk sizes differ between tasks: chunked paths run concurrently
        with config_context(working_memory=[0.01, 0.1, 1024][i % 3]):
            if method == "score":
                return est.score(Xi, est.predict(Xi))
            return getattr(est, method)(Xi)

    jobs = [(i, m) for i in range(len(inputs)) for m in methods]
    serial = [task(i, m) for i, m in jobs]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            threaded = list(pool.map(lambda job: task(*job), jobs))
            for (i, m), a, b in zip(jobs, serial, threaded, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"{m} on input {i}")


def _state_equal(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _state_equal(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, z in zip(a, b, strict=True):
            _state_equal(x, z)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS.values()), ids=list(OPTIMIZERS))
@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_model_pickled_between_partial_fits_resumes_bit_identically(
    Estimator, schedule, optimizer, clf_data, reg_data
):
    X, y = clf_data if Estimator is BackpropClassifier else reg_data
    est = Estimator(hidden_layer_sizes=(8, 4), optimizer=optimizer, batch_size=7,
                    learning_rate=schedule, learning_rate_init=1e-2,
                    n_iter_no_change=1, random_state=0, shuffle=True)
    first = {"classes": np.unique(y)} if Estimator is BackpropClassifier else {}
    est.partial_fit(X[:30], y[:30], **first)
    for _ in range(3):
        est.partial_fit(X, y)
    blob = pickle.dumps(est)
    resumed = pickle.loads(blob)
    for _ in range(4):
        est.partial_fit(X, y)
        resumed.partial_fit(X, y)
    for a, b in zip(est.coefs_ + est.intercepts_, resumed.coefs_ + resumed.intercepts_,
                    strict=True):
        np.testing.assert_array_equal(a, b)
    assert est.n_iter_ == resumed.n_iter_ == 8
    assert est.t_ == resumed.t_
    assert est.loss_curve_ == resumed.loss_curve_
    _state_equal(est._optimizer_state, resumed._optimizer_state)
    # The pickle carries the state a resumed run needs, not scratch buffers.
    assert not hasattr(pickle.loads(blob), "_workspace")


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_model_pickled_after_fit_resumes_with_warm_start(Estimator, clf_data, reg_data):
    X, y = clf_data if Estimator is BackpropClassifier else reg_data
    est = _quiet_fit(Estimator(hidden_layer_sizes=(8,), max_iter=3, random_state=0,
                               warm_start=True), X, y)
    resumed = pickle.loads(pickle.dumps(est))
    _quiet_fit(est, X, y)
    _quiet_fit(resumed, X, y)
    for a, b in zip(est.coefs_, resumed.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert est.loss_curve_ == resumed.loss_curve_
