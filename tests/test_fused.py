"""The fused multi-threaded step (sklearn_bp._fused) against the generic step.

The fused step only runs for networks with many weights; here the threshold is
lowered so that small, fast networks take it, and products are split across
threads however small they are. Each test states which path it compares with.
"""

import threading

import numpy as np
import pytest
from _helpers import force_fused_step
from _helpers import quiet_fit as _fit
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_info, threadpool_limits

from sklearn_bp import BackpropClassifier, BackpropRegressor, _fused
from sklearn_bp._step import DivergenceError, Step, workspace_for
from sklearn_bp.activations import Activation
from sklearn_bp.optimizers import SGD, Adam, RMSprop


@pytest.fixture
def fused(monkeypatch):
    """Force the fused step on any network; record how often it ran."""
    return force_fused_step(monkeypatch)


@pytest.fixture
def generic(monkeypatch):
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def n_threads(request):
    """The fused step's thread budget follows BLAS's limit."""
    with threadpool_limits(limits=request.param, user_api="blas"):
        yield request.param


class Cube(Activation):
    """A user-written activation: the fused step applies it on one thread."""

    def forward(self, Z):
        return Z**3 / 3 + Z

    def derivative(self, Z, A):
        return Z**2 + 1


def _data(dtype, n=157, n_features=12, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0)
    return X, y


CASES = {
    "adam": dict(),
    "adam-l2-tanh": dict(alpha=0.3, activation="tanh"),
    "sgd-nesterov": dict(optimizer=SGD(momentum=0.9), learning_rate_init=0.05),
    "sgd-plain": dict(optimizer=SGD(momentum=0.0, nesterov=False), alpha=0.01),
    "sgd-momentum": dict(optimizer=SGD(momentum=0.5, nesterov=False)),
    "rmsprop-centered-momentum": dict(
        optimizer=RMSprop(centered=True, momentum=0.5), alpha=0.01
    ),
    "custom-activation": dict(activation=Cube(), learning_rate_init=0.003),
    "invscaling-sgd": dict(
        optimizer="sgd", learning_rate="invscaling", learning_rate_init=0.1
    ),
}


def _pair(case, dtype, request, **extra):
    """The same model fitted by the generic and by the fused step."""
    X, y = _data(dtype)
    params = dict(
        hidden_layer_sizes=(40, 24), max_iter=6, batch_size=32, random_state=0
    )
    params.update(CASES[case])
    params.update(extra)
    sw = np.random.RandomState(1).uniform(0.2, 2.0, X.shape[0])
    generic_model = _fit(BackpropClassifier(**params), X, y, sample_weight=sw)
    request.getfixturevalue("fused")
    fused_model = _fit(BackpropClassifier(**params), X, y, sample_weight=sw)
    return generic_model, fused_model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_step_equals_generic_step(case, dtype, n_threads, request):
    # The same arithmetic: only the matrix products' summation order differs.
    generic_model, fused_model = _pair(case, dtype, request)
    calls = request.getfixturevalue("fused")
    assert calls["fused"] == 6 * 5 and calls["fallback"] == 0
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    for a, b in zip(
        generic_model.coefs_ + generic_model.intercepts_,
        fused_model.coefs_ + fused_model.intercepts_,
        strict=True,
    ):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * 1e-2)
    np.testing.assert_allclose(
        fused_model.loss_curve_, generic_model.loss_curve_, rtol=rtol
    )
    state_g, state_f = generic_model._optimizer_state, fused_model._optimizer_state
    assert state_g.keys() == state_f.keys()
    for key, value in state_g.items():
        if isinstance(value, list):
            for a, b in zip(value, state_f[key], strict=True):
                np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * 1e-2)
        else:
            assert state_f[key] == value


@pytest.mark.parametrize("split", ["rows", "columns"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", ["adam-l2-tanh", "custom-activation"])
def test_both_ways_of_splitting_the_products(case, dtype, split, monkeypatch, request):
    # Each dtype uses one way by default; both must give the generic result.
    rows = {np.dtype(dtype)} if split == "rows" else set()
    monkeypatch.setattr(_fused, "_ROW_SPLIT", frozenset(rows))
    with threadpool_limits(limits=2, user_api="blas"):
        generic_model, fused_model = _pair(case, dtype, request)
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    for a, b in zip(generic_model.coefs_ + generic_model.intercepts_,
                    fused_model.coefs_ + fused_model.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=rtol * 1e-2)


def test_fused_result_does_not_depend_on_the_thread_count(fused):
    # Each weight-gradient chunk is one GEMM on the same operands whichever
    # thread runs it, so the updates agree; the column-split forward products
    # may differ in the last bits.
    X, y = _data(np.float64)
    models = []
    for limit in (1, 2):
        with threadpool_limits(limits=limit, user_api="blas"):
            models.append(
                _fit(BackpropClassifier(hidden_layer_sizes=(64, 32), max_iter=5,
                                        random_state=0), X, y)
            )
    for a, b in zip(models[0].coefs_, models[1].coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_regressor_and_partial_fit_take_the_fused_step(monkeypatch, request):
    X, _ = _data(np.float64)
    y = X[:, :2] @ np.array([[1.0, -2.0], [0.5, 1.0]])

    def three_partial_fits():
        reg = BackpropRegressor(
            hidden_layer_sizes=(32,), batch_size=50, learning_rate_init=0.01,
            random_state=0,
        )
        for _ in range(3):
            reg.partial_fit(X, y)
        return reg

    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)
    expected = three_partial_fits()
    calls = request.getfixturevalue("fused")
    got = three_partial_fits()
    assert calls["fused"] == 3 * 4
    np.testing.assert_allclose(got.predict(X), expected.predict(X), rtol=1e-10)
    assert got.loss_curve_[-1] < got.loss_curve_[0]


def test_blas_limit_is_restored_and_threads_are_stopped(fused):
    def blas_threads():
        return [info["num_threads"] for info in threadpool_info()
                if info["user_api"] == "blas"]

    X, y = _data(np.float64)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        threads_before = threading.active_count()
        _fit(BackpropClassifier(hidden_layer_sizes=(20,), max_iter=3), X, y)
        assert blas_threads() == before == [2] * len(before)
        assert threading.active_count() == threads_before
    assert fused["fused"] > 0


def test_concurrent_fits_in_threads_restore_the_blas_limit(fused):
    # Fits in several threads (joblib's threading backend) share the
    # process-wide BLAS limit; the original limit comes back after the last.
    from joblib import Parallel, delayed

    X, y = _data(np.float64)

    def fit(seed):
        return _fit(BackpropClassifier(hidden_layer_sizes=(64, 32), max_iter=8,
                                       random_state=seed), X, y)

    with threadpool_limits(limits=2, user_api="blas"):
        models = Parallel(n_jobs=4, backend="threading")(
            delayed(fit)(seed) for seed in range(8)
        )
        assert all(info["num_threads"] == 2 for info in threadpool_info()
                   if info["user_api"] == "blas")
    alone = fit(3)
    for a, b in zip(models[3].coefs_, alone.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)


def test_sparse_input_and_custom_optimizers_keep_the_generic_step(fused):
    from scipy import sparse

    class MyAdam(Adam):
        pass

    X, y = _data(np.float64)
    _fit(BackpropClassifier(max_iter=2), sparse.csr_matrix(X), y)
    _fit(BackpropClassifier(max_iter=2, optimizer=MyAdam()), X, y)
    assert fused["fused"] == 0


def test_unproven_gradients_fall_back_to_the_generic_step(fused, monkeypatch):
    # When the bound cannot prove the gradients finite, the fused step changes
    # nothing (not even the optimizer's step count) and the generic step runs:
    # the result is then bit for bit the generic path's.
    X, y = _data(np.float64)
    params = dict(hidden_layer_sizes=(20, 10), max_iter=3, random_state=0)
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)
    expected = _fit(BackpropClassifier(**params), X, y)
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", 0)
    monkeypatch.setattr(_fused, "_norm", lambda a: np.inf)
    got = _fit(BackpropClassifier(**params), X, y)
    assert fused["fused"] == 0 and fused["fallback"] == 3
    assert got._optimizer_state["step"] == expected._optimizer_state["step"] == 3
    for a, b in zip(expected.coefs_ + expected.intercepts_,
                    got.coefs_ + got.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_divergence_in_the_fused_step_restores_finite_parameters(
    fused, n_threads, dtype
):
    X, y = _data(dtype)
    X = X * 1e3
    clf = BackpropClassifier(
        hidden_layer_sizes=(30, 30),
        optimizer=SGD(momentum=0.9),
        learning_rate_init=1e12,
        max_iter=50,
        random_state=0,
    )
    with pytest.raises(DivergenceError, match="non-finite"):
        _fit(clf, X, y)
    assert all(np.isfinite(p).all() for p in clf.coefs_ + clf.intercepts_)
    assert np.isfinite(clf.predict_proba(X[:5])).all()


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("where", ["calling thread", "worker"])
def test_interrupted_update_is_undone_whole(fused, where, monkeypatch):
    # An exception in the middle of the chunked update (after some chunks
    # were updated) leaves the parameters exactly as before the step, and the
    # trainer's backup holding them, whichever thread was interrupted.
    monkeypatch.setattr(_fused, "_CHUNK_BYTES", 64)  # one row per chunk
    X, y = _data(np.float64)
    clf = _fit(BackpropClassifier(hidden_layer_sizes=(64, 48), max_iter=1,
                                  random_state=0), X, y)
    trainer = Step(clf.coefs_, clf.intercepts_, layers=clf._layers,
                   loss=clf._loss, optimizer=clf._optimizer,
                   optimizer_state=clf._optimizer_state, alpha=clf.alpha,
                   workspace=workspace_for(clf.coefs_, clf._layers, X.shape[0]))
    Y = clf._label_binarizer.transform(y).astype(np.float64)
    with threadpool_limits(limits=2, user_api="blas"):
        trainer.prepare(X)
        step = trainer._fused
        assert step.threads.n_threads == 2
        before = [p.copy() for p in trainer.params]
        kernel_of = Adam._kernel
        calls = []
        main = threading.main_thread()
        worker_started = threading.Event()
        worker_raised = threading.Event()

        def failing_kernel(self, params, state, lr):
            kernel, buffers = kernel_of(self, params, state, lr)

            def k(*args):
                calls.append(threading.current_thread())
                is_main = threading.current_thread() is main
                if is_main:  # let the worker take chunks too, however slow
                    worker_started.wait(timeout=10)
                    if where == "worker":
                        # (and reach its interrupt: the calling thread holds
                        # the GIL between chunks and could take them all)
                        worker_raised.wait(timeout=10)
                else:
                    worker_started.set()
                if len(calls) > 4 and is_main == (where == "calling thread"):
                    if not is_main:
                        worker_raised.set()
                    raise _Interrupt
                kernel(*args)

            return k, buffers

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(Adam, "_kernel", failing_kernel)
            with pytest.raises(_Interrupt):
                trainer(X[:64], Y[:64], None, 0.1)
        trainer.close()
    assert len(calls) > 4 and worker_started.is_set()
    for p, b, saved in zip(trainer.params, before, trainer.previous, strict=True):
        np.testing.assert_array_equal(p, b)
        np.testing.assert_array_equal(saved, b)


def test_threads_run_waits_for_every_worker_and_reraises():
    threads = _fused.Threads(3)
    finished = []

    def fn(part):
        if part == 1:
            raise RuntimeError("worker failed")
        threading.Event().wait(0.05)
        finished.append(part)
        return part

    with pytest.raises(RuntimeError, match="worker failed"):
        threads.run(fn, [0, 1, 2])
    assert sorted(finished) == [0, 2]
    assert threads.run(lambda part: part * 2, [1, 2, 3]) == [2, 4, 6]
    threads.close()


@pytest.mark.parametrize(
    "width,n_parts", [(10, 2), (1024, 2), (1000, 3), (17, 8), (300, 8), (128, 2)]
)
def test_parts_cover_the_range_once(width, n_parts):
    # (the default _MIN_PART: no monkeypatching fixture here)
    parts = _fused._parts(width, n_parts)
    assert 1 <= len(parts) <= n_parts
    assert len(parts) == 1 or min(p.stop - p.start for p in parts) >= 48
    covered = np.concatenate([np.arange(width)[p] for p in parts])
    np.testing.assert_array_equal(covered, np.arange(width))


def test_trainer_step_count_matches_batches(fused):
    # One optimizer step per batch, fused or not.
    X, y = _data(np.float64, n=100)
    clf = _fit(BackpropClassifier(batch_size=30, max_iter=2, random_state=0), X, y)
    assert clf._optimizer_state["step"] == 2 * 4


@pytest.fixture
def _fused_two_threads(monkeypatch):
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", 0)
    monkeypatch.setattr(_fused, "_MIN_SPLIT", 0)
    monkeypatch.setattr(_fused, "_MIN_PART", 1)
    with threadpool_limits(limits=2, user_api="blas"):
        yield


@parametrize_with_checks(
    [
        BackpropClassifier(hidden_layer_sizes=(16,), max_iter=100, random_state=0,
                           learning_rate_init=0.01),
        BackpropRegressor(hidden_layer_sizes=(16,), max_iter=100, random_state=0,
                          learning_rate_init=0.01),
    ]
)
def test_estimator_checks_with_the_fused_step(estimator, check, _fused_two_threads):
    check(estimator)


def test_parameters_stay_packed_and_early_stopping_restores_the_best(
    fused, monkeypatch
):
    # coefs_ and intercepts_ stay one packed buffer under the fused step, and
    # early stopping restores its best weights into them.
    from sklearn_bp import _flat

    X, y = _data(np.float64, n=400)
    params = dict(hidden_layer_sizes=(48, 24), max_iter=30, early_stopping=True,
                  n_iter_no_change=3, learning_rate_init=0.01, random_state=0)
    got = _fit(BackpropClassifier(**params), X, y)
    assert fused["fused"] > 0
    assert _flat.flat_base(got.coefs_ + got.intercepts_) is not None
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)
    expected = _fit(BackpropClassifier(**params), X, y)
    assert got.n_iter_ == expected.n_iter_
    np.testing.assert_allclose(got.validation_scores_, expected.validation_scores_)
    for a, b in zip(expected.coefs_ + expected.intercepts_,
                    got.coefs_ + got.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def test_partial_fit_calls_equal_fit_epochs_bit_for_bit(fused):
    X, y = _data(np.float64)
    params = dict(hidden_layer_sizes=(40,), batch_size=32, random_state=0,
                  shuffle=False)
    fitted = _fit(BackpropClassifier(max_iter=3, **params), X, y)
    stepped = BackpropClassifier(**params)
    for _ in range(3):
        stepped.partial_fit(X, y, classes=np.unique(y))
    for a, b in zip(fitted.coefs_ + fitted.intercepts_,
                    stepped.coefs_ + stepped.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "task", ["multilabel", "multi-output regression", "binary, odd sizes"]
)
def test_other_targets_and_shapes_equal_the_generic_step(task, monkeypatch, request):
    # Three hidden layers of widths that are not multiples of 16, a batch
    # size that leaves a short last batch, zero sample weights, L2.
    rng = np.random.RandomState(3)
    X = rng.standard_normal((203, 17))
    sw = rng.uniform(0, 2, X.shape[0])
    sw[::7] = 0
    params = dict(hidden_layer_sizes=(37, 29, 13), batch_size=45, max_iter=4,
                  alpha=0.01, random_state=0)
    if task == "multilabel":
        y = (X[:, :3] + rng.normal(size=(203, 3)) > 0).astype(int)
        make = lambda: BackpropClassifier(**params)  # noqa: E731
    elif task == "multi-output regression":
        y = X[:, :2] @ rng.normal(size=(2, 2)) + 0.1 * rng.normal(size=(203, 2))
        make = lambda: BackpropRegressor(optimizer=RMSprop(), **params)  # noqa: E731
    else:
        y = (X[:, 0] > 0).astype(int)
        make = lambda: BackpropClassifier(  # noqa: E731
            optimizer=SGD(momentum=0.9), activation="elu", **params
        )
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)
    expected = _fit(make(), X, y, sample_weight=sw)
    calls = request.getfixturevalue("fused")
    with threadpool_limits(limits=2, user_api="blas"):
        got = _fit(make(), X, y, sample_weight=sw)
    assert calls["fused"] == 4 * 5 and calls["fallback"] == 0
    for a, b in zip(expected.coefs_ + expected.intercepts_,
                    got.coefs_ + got.intercepts_, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
