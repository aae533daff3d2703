"""L-BFGS (optimizer="lbfgs"): MLP's path iteration for iteration, and beyond MLP."""

import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_digits, make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp._network import Layer, init_params
from sklearn_bp._solvers import LBFGSSolver, pack
from sklearn_bp.activations import Activation, get_activation
from sklearn_bp.losses import SquaredError, get_loss
from sklearn_bp.optimizers import LBFGS


def _quiet(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=150, n_features=6, noise=5.0, random_state=0)
    return StandardScaler().fit_transform(X), y / np.std(y)


def _assert_params_close(ours, mlp, rtol):
    for a, b in zip(ours.coefs_ + ours.intercepts_, mlp.coefs_ + mlp.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


# -- the same path as MLP's solver="lbfgs" --------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 1e-2])
@pytest.mark.parametrize("n_iter", [1, 5, 25])
@pytest.mark.parametrize("binary", [False, True], ids=["multiclass", "binary"])
def test_classifier_follows_mlp_lbfgs(digits, alpha, n_iter, binary):
    X, y = digits
    y = y % 2 if binary else y
    settings = dict(hidden_layer_sizes=(20,), alpha=alpha, max_iter=n_iter,
                    random_state=0)
    ours = _quiet(BackpropClassifier(optimizer="lbfgs", **settings), X, y)
    mlp = _quiet(MLPClassifier(solver="lbfgs", **settings), X, y)
    assert ours.n_iter_ == mlp.n_iter_ == n_iter
    assert ours.loss_ == pytest.approx(mlp.loss_, rel=1e-9)
    _assert_params_close(ours, mlp, rtol=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 1e-1])
@pytest.mark.parametrize("n_iter", [1, 5, 25])
def test_regressor_follows_mlp_lbfgs(reg_data, alpha, n_iter):
    X, y = reg_data
    settings = dict(hidden_layer_sizes=(10,), alpha=alpha, max_iter=n_iter,
                    activation="tanh", random_state=0)
    ours = _quiet(BackpropRegressor(optimizer="lbfgs", **settings), X, y)
    mlp = _quiet(MLPRegressor(solver="lbfgs", **settings), X, y)
    assert ours.n_iter_ == mlp.n_iter_ == n_iter
    assert ours.loss_ == pytest.approx(mlp.loss_, rel=1e-9)
    _assert_params_close(ours, mlp, rtol=1e-7)


def test_regressor_reaches_mlps_solution(reg_data):
    # Run to convergence, the two paths part by rounding (the products sum
    # in another order) amplified over a hundred iterations: the same
    # minimum, not the same last bits.
    X, y = reg_data
    settings = dict(hidden_layer_sizes=(10,), max_iter=400, activation="tanh",
                    random_state=0)
    ours = _quiet(BackpropRegressor(optimizer="lbfgs", **settings), X, y)
    mlp = _quiet(MLPRegressor(solver="lbfgs", **settings), X, y)
    assert ours.loss_ == pytest.approx(mlp.loss_, abs=2e-5)  # (both near 2e-4)
    assert ours.score(X, y) == pytest.approx(mlp.score(X, y), abs=1e-4)


def test_initial_weights_are_mlps(digits):
    X, y = digits
    ours = _quiet(BackpropClassifier(hidden_layer_sizes=(7,), optimizer="lbfgs",
                                     max_iter=1, random_state=3), X, y)
    mlp = _quiet(MLPClassifier(hidden_layer_sizes=(7,), solver="lbfgs",
                               max_iter=1, random_state=3), X, y)
    _assert_params_close(ours, mlp, rtol=1e-12)


def test_multi_output_gradient_is_the_true_gradient():
    # MLP's multi-output squared-error gradient is n_outputs times too large
    # (scikit-learn #8349): ours is checked against central differences of
    # the objective scipy minimises.
    rng = np.random.RandomState(0)
    X, Y = rng.normal(size=(30, 4)), rng.normal(size=(30, 3))
    activation, loss = get_activation("tanh"), SquaredError()
    coefs, intercepts = init_params([4, 5, 3], activation, rng)
    solver = LBFGSSolver(coefs, intercepts, layers=[Layer(activation)], loss=loss,
                         spec=LBFGS(), alpha=1e-2, max_fun=10, tol=0.0)
    from sklearn_bp._step import workspace_for

    solver.workspace = workspace_for(coefs, activation, X.shape[0])

    class Hooks:
        def begin_iteration(self):
            pass

    objective = solver._objective(X, Y, None, Hooks())
    x0 = pack(coefs + intercepts)
    _, grad = objective(x0)
    eps = 1e-6
    for _ in range(8):
        d = rng.normal(size=x0.shape)
        numeric = (objective(x0 + eps * d)[0] - objective(x0 - eps * d)[0]) / (2 * eps)
        assert grad @ d == pytest.approx(numeric, rel=1e-6)


# -- attributes, warnings, limits ------------------------------------------------


def test_attributes_one_entry_per_iteration(digits):
    X, y = digits
    clf = _quiet(BackpropClassifier(hidden_layer_sizes=(15,), optimizer="lbfgs",
                                    max_iter=12, random_state=0), X, y)
    assert clf.n_iter_ == 12 == len(clf.loss_curve_)
    assert clf.loss_ == clf.loss_curve_[-1]
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert np.all(np.diff(clf.loss_curve_) <= 0)  # a line search never goes up
    assert clf.t_ == 12 * len(X)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert not hasattr(clf, "partial_fit")
    assert hasattr(clf.set_params(optimizer="adam"), "partial_fit")


def test_convergence_warning_gives_scipys_reason(digits):
    X, y = digits
    with pytest.warns(ConvergenceWarning, match="TOTAL NO. OF ITERATIONS"):
        BackpropClassifier(optimizer="lbfgs", max_iter=3, random_state=0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="max_fun.*now 4"):
        clf = BackpropClassifier(optimizer="lbfgs", max_fun=4, random_state=0)
        clf.fit(X, y)
    assert clf.n_iter_ < 4


def test_converged_fit_warns_nothing():
    X, y = make_classification(n_samples=60, n_features=4, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = BackpropClassifier(hidden_layer_sizes=(3,), optimizer="lbfgs",
                                 tol=1e-2, random_state=0).fit(X, y)
    assert clf.n_iter_ < clf.max_iter


def test_nested_history_size_is_searchable(digits):
    X, y = digits
    base = BackpropClassifier(hidden_layer_sizes=(10,), optimizer=LBFGS(),
                              max_iter=15, random_state=0)
    fits = {}
    for m in (3, 30):
        fits[m] = _quiet(base.set_params(optimizer__history_size=m), X, y).loss_
    assert fits[3] != fits[30]
    with pytest.raises(ValueError, match="history_size"):
        BackpropClassifier(optimizer=LBFGS(history_size=0)).fit(X, y)


# -- everything the stochastic optimizers support -------------------------------


def test_float32_stays_float32(digits):
    X, y = digits
    clf = _quiet(BackpropClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs",
                                    max_iter=20, random_state=0),
                 X.astype(np.float32), y)
    assert all(p.dtype == np.float32 for p in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert clf.score(X, y) > 0.9


def test_sparse_equals_dense(digits):
    X, y = digits
    est = BackpropClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs",
                             max_iter=10, random_state=0)
    dense = _quiet(est, X, y)
    coefs = [W.copy() for W in dense.coefs_]
    sparse_fit = _quiet(est, sparse.csr_matrix(X), y)
    for a, b in zip(coefs, sparse_fit.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


def test_integer_weights_equal_repeated_rows(reg_data):
    X, y = reg_data
    w = np.random.RandomState(0).randint(0, 3, size=len(X))
    est = BackpropRegressor(hidden_layer_sizes=(6,), optimizer="lbfgs", max_iter=30,
                            random_state=0)
    weighted = _quiet(est, X, y, sample_weight=w).predict(X)
    repeated = _quiet(est, np.repeat(X, w, axis=0), np.repeat(y, w)).predict(X)
    np.testing.assert_allclose(weighted, repeated, rtol=1e-6, atol=1e-8)


def test_class_weight_multilabel_and_multi_output():
    X, Y = make_classification(n_samples=120, n_features=5, random_state=0)
    balanced = _quiet(BackpropClassifier(hidden_layer_sizes=(5,), optimizer="lbfgs",
                                         class_weight="balanced", max_iter=30,
                                         random_state=0), X, Y)
    plain = _quiet(BackpropClassifier(hidden_layer_sizes=(5,), optimizer="lbfgs",
                                      max_iter=30, random_state=0), X, Y)
    assert balanced.loss_ != plain.loss_
    labels = np.column_stack([Y, 1 - Y, X[:, 0] > 0]).astype(int)
    multilabel = _quiet(BackpropClassifier(hidden_layer_sizes=(5,), optimizer="lbfgs",
                                           max_iter=50, random_state=0), X, labels)
    assert multilabel.predict(X).shape == labels.shape
    assert multilabel.score(X, labels) > 0.8
    targets = np.column_stack([X[:, 0], X[:, 1] - X[:, 2]])
    reg = _quiet(BackpropRegressor(hidden_layer_sizes=(8,), optimizer="lbfgs",
                                   max_iter=100, random_state=0), X, targets)
    assert reg.predict(X).shape == targets.shape and reg.score(X, targets) > 0.9


@pytest.mark.parametrize("loss", ["absolute_error", "huber", "poisson"])
def test_every_regression_loss(reg_data, loss):
    X, y = reg_data
    y = np.abs(y) if loss == "poisson" else y
    reg = _quiet(BackpropRegressor(hidden_layer_sizes=(8,), optimizer="lbfgs",
                                   loss=loss, max_iter=60, random_state=0), X, y)
    assert np.isfinite(reg.loss_) and reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_user_components(reg_data):
    class Cube(Activation):
        def forward(self, Z):
            return Z**3 / 3 + Z

        def derivative(self, Z, A):
            return Z**2 + 1

    X, y = reg_data
    reg = _quiet(BackpropRegressor(hidden_layer_sizes=(4,), activation=Cube(),
                                   loss=get_loss("huber"), optimizer="lbfgs",
                                   max_iter=40, random_state=0), X, y)
    assert reg.score(X, y) > 0.5


def test_warm_start_counts_this_fits_iterations(digits):
    X, y = digits
    clf = BackpropClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs",
                             max_iter=5, random_state=0)
    _quiet(clf, X, y)
    first_curve = list(clf.loss_curve_)
    _quiet(clf.set_params(warm_start=True, max_iter=4), X, y)
    assert clf.n_iter_ == 4
    assert clf.loss_curve_[:5] == first_curve and len(clf.loss_curve_) == 9
    assert clf.t_ == 9 * len(X)
    assert clf.loss_curve_[5] < first_curve[-1]  # continued, not restarted


def test_grid_search_pipeline_with_huber(reg_data):
    X, y = reg_data
    search = GridSearchCV(
        make_pipeline(StandardScaler(),
                      BackpropRegressor(hidden_layer_sizes=(8,), optimizer="lbfgs",
                                        loss="huber", max_iter=50, random_state=0)),
        {"backpropregressor__alpha": [1e-4, 1e-2]}, cv=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_score_ > 0.5


def test_verbose_prints_one_line_per_iteration(digits, capsys):
    X, y = digits
    _quiet(BackpropClassifier(hidden_layer_sizes=(5,), optimizer="lbfgs", max_iter=3,
                              verbose=True, random_state=0), X, y)
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert [line.split(",")[0] for line in lines] == [
        "Iteration 1", "Iteration 2", "Iteration 3"
    ]


# -- beyond MLP: early stopping ---------------------------------------------------


def test_early_stopping_scores_each_iteration_and_restores_the_best(digits):
    X, y = digits
    clf = _quiet(BackpropClassifier(hidden_layer_sizes=(30,), optimizer="lbfgs",
                                    early_stopping=True, n_iter_no_change=3,
                                    max_iter=300, random_state=0), X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ == len(clf.loss_curve_) < 300
    assert clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    # stopped because the last n_iter_no_change + 1 scores did not beat the best
    best_at = int(np.argmax(scores))
    assert len(scores) - 1 - best_at >= 4
    # the returned weights are those of the best iteration: a second fit
    # stopped right there has the same parameters
    again = _quiet(BackpropClassifier(hidden_layer_sizes=(30,), optimizer="lbfgs",
                                      early_stopping=True, n_iter_no_change=3,
                                      max_iter=best_at + 1, random_state=0), X, y)
    _assert_params_close(clf, again, rtol=1e-12)


# -- divergence and interrupts ------------------------------------------------------


def test_divergence_keeps_finite_parameters(digits):
    X, y = digits
    clf = BackpropClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs",
                             random_state=0)
    with pytest.raises(ValueError, match="L-BFGS loss is not finite.*restored.*"
                       "scale them") as info:
        clf.fit(X * 1e308, y)
    assert "learning_rate_init" not in str(info.value)  # (no such thing here)
    assert all(np.isfinite(p).all() for p in clf.coefs_ + clf.intercepts_)
    assert clf.predict(X).shape == y.shape
    _quiet(clf, X, y)  # and it can be fitted again
    assert clf.score(X, y) > 0.9


def test_keyboard_interrupt_keeps_the_last_iterate(reg_data):
    class Interrupting(SquaredError):
        calls = 0

        def _loss_and_delta(self, y, raw, sample_weight, weight_sum, out):
            type(self).calls += 1
            if type(self).calls == 12:
                raise KeyboardInterrupt
            return super()._loss_and_delta(y, raw, sample_weight, weight_sum, out)

    X, y = reg_data
    reg = BackpropRegressor(hidden_layer_sizes=(5,), optimizer="lbfgs",
                            loss=Interrupting(), random_state=0)
    with pytest.raises(KeyboardInterrupt), pytest.warns(UserWarning,
                                                        match="interrupted"):
        reg.fit(X, y)
    assert 0 < reg.n_iter_ == len(reg.loss_curve_)
    # the parameters are the last accepted iterate, whose loss is the last entry
    value = 0.5 * np.mean((reg.predict(X) - y) ** 2)
    penalty = 0.5 * reg.alpha / len(X) * sum((W**2).sum() for W in reg.coefs_)
    assert value + penalty == pytest.approx(reg.loss_curve_[-1], rel=1e-9)


def test_scipys_blas_runs_single_threaded_during_lbfgs(reg_data):
    # scipy's wheels bring their own OpenBLAS: its threads spinning next to
    # numpy's made every iteration 3.5-4x slower on 2 cores. During L-BFGS it
    # gets one thread, numpy's keeps its threads, and both come back after.
    from threadpoolctl import threadpool_info, threadpool_limits

    def blas_threads():
        return {info["filepath"]: info["num_threads"] for info in threadpool_info()
                if info["user_api"] == "blas"}

    seen = []

    class Recording(SquaredError):
        def _loss_and_delta(self, y, raw, sample_weight, weight_sum, out):
            seen.append(blas_threads())
            return super()._loss_and_delta(y, raw, sample_weight, weight_sum, out)

    X, y = reg_data
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        # Limited: the libraries besides numpy's, when numpy's is known and
        # there are others (numpy and scipy may also share one library,
        # which then keeps its threads).
        numpys = {path for path in before if "numpy" in path}
        expected = {path: 2 if path in numpys or not numpys else 1
                    for path in before}
        _quiet(BackpropRegressor(hidden_layer_sizes=(4,), optimizer="lbfgs",
                                 loss=Recording(), max_iter=3, random_state=0), X, y)
        assert blas_threads() == before
    assert seen and all(threads == expected for threads in seen)


def test_callbacks_see_one_subtask_per_iteration(digits):
    callback = pytest.importorskip("sklearn.callback")  # scikit-learn >= 1.9
    del callback

    class Iterations:
        def __init__(self):
            self.names, self.coefs = [], []

        def setup(self, estimator, context):
            pass

        def teardown(self, estimator, context):
            pass

        def on_fit_task_begin(self, estimator, context, *, X=None, y=None):
            pass

        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
            self.names.append(context.task_name)
            if context.task_name == "iteration":
                self.coefs.append([W.copy() for W in fitted_estimator.coefs_])
            return len(self.coefs) >= 4  # and a callback can stop the run

    X, y = digits
    monitor = Iterations()
    clf = BackpropClassifier(hidden_layer_sizes=(10,), optimizer="lbfgs",
                             max_iter=50, random_state=0).set_callbacks(monitor)
    clf.fit(X, y)  # stopped by the callback: no ConvergenceWarning
    assert clf.n_iter_ == 4 == len(clf.loss_curve_) == len(monitor.coefs)
    assert monitor.names.count("iteration") == 4
    # each subtask saw that iteration's parameters; the fit ends on the last
    for a, b in zip(monitor.coefs[-1], clf.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(monitor.coefs[0][0], monitor.coefs[1][0])
