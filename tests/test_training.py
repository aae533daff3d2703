"""Training controls: schedules, stopping, warm start / partial_fit state, weights,
divergence, verbose output, callbacks and hidden-layer features."""

import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.optimizers import SGD

# Quiet, fast defaults for these tests; each test overrides what it checks.
FAST = dict(hidden_layer_sizes=(8,), random_state=0, n_iter_no_change=1000, tol=0.0)


@pytest.fixture
def clf_data():
    X, y = make_classification(
        n_samples=120, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return StandardScaler().fit_transform(X), y


@pytest.fixture
def reg_data():
    X, y = make_regression(n_samples=100, n_features=5, noise=0.1, random_state=0)
    return StandardScaler().fit_transform(X), (y - y.mean()) / y.std()


# Records the learning rate of every step. The record lives on the class: the
# estimator works on a private copy of the spec, and must never write to it.
class RecordingSGD(SGD):
    lrs = []

    def step(self, params, grads, state, lr):
        RecordingSGD.lrs.append(lr)
        super().step(params, grads, state, lr)


@pytest.fixture
def recorded_lrs():
    RecordingSGD.lrs = []
    yield RecordingSGD.lrs
    RecordingSGD.lrs = []


def _fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


# -- learning-rate schedules --


def test_invscaling_schedule_per_step(reg_data, recorded_lrs):
    X, y = reg_data
    est = BackpropRegressor(
        **FAST,
        optimizer=RecordingSGD(momentum=0.5),
        learning_rate="invscaling",
        power_t=0.3,
        learning_rate_init=0.01,
        batch_size=40,
        max_iter=3,
    )
    _fit_quietly(est, X, y)
    steps_per_epoch = 3  # 100 rows in batches of 40
    expected = []
    for epoch in range(3):
        t = epoch * X.shape[0]  # samples seen before this epoch
        lr = 0.01 if epoch == 0 else 0.01 / (t + 1) ** 0.3
        expected += [lr] * steps_per_epoch
    np.testing.assert_allclose(recorded_lrs, expected, rtol=1e-12)


def test_adaptive_schedule_divides_by_five_then_stops(reg_data, recorded_lrs):
    X, y = reg_data
    # tol so large that no epoch ever counts as an improvement
    est = BackpropRegressor(
        hidden_layer_sizes=(8,),
        random_state=0,
        optimizer=RecordingSGD(),
        learning_rate="adaptive",
        learning_rate_init=1e-4,
        tol=1e6,
        n_iter_no_change=2,
        batch_size=100,
        max_iter=100,
    )
    est.fit(X, y)
    # One step per epoch. The first epoch improves on best_loss_=inf; after it,
    # the rate drops after every 3 epochs without improvement
    # (count > n_iter_no_change) until it is <= 1e-6, then training stops.
    lrs = np.array(recorded_lrs)
    expected_rates = [1e-4, 2e-5, 4e-6, 8e-7]
    np.testing.assert_allclose(lrs, np.repeat(expected_rates, [4, 3, 3, 3]), rtol=1e-12)
    assert est.n_iter_ == 13


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_schedules_apply_to_every_optimizer(reg_data, optimizer):
    X, y = reg_data
    common = dict(**FAST, optimizer=optimizer, max_iter=5, learning_rate_init=0.01)
    constant = _fit_quietly(BackpropRegressor(**common), X, y)
    scaled = _fit_quietly(
        BackpropRegressor(**common, learning_rate="invscaling", power_t=0.5), X, y
    )
    # identical first epoch, different afterwards
    assert constant.loss_curve_[0] == scaled.loss_curve_[0]
    assert constant.loss_curve_[-1] != scaled.loss_curve_[-1]


# -- stopping --


def test_stopping_epoch_matches_mlp(clf_data):
    X, y = clf_data
    settings = dict(
        hidden_layer_sizes=(8,),
        random_state=0,
        tol=10.0,
        n_iter_no_change=4,
        max_iter=50,
    )
    ours = BackpropClassifier(**settings).fit(X, y)
    mlp = MLPClassifier(**settings).fit(X, y)
    # epoch 1 improves on inf; stop when the count of epochs without
    # improvement exceeds n_iter_no_change: after epoch n_iter_no_change + 2
    assert ours.n_iter_ == mlp.n_iter_ == 6
    assert len(ours.loss_curve_) == ours.n_iter_
    assert ours.best_loss_ == min(ours.loss_curve_)
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None


def test_max_iter_warns_convergence(clf_data):
    X, y = clf_data
    with pytest.warns(ConvergenceWarning, match="maximum iterations"):
        BackpropClassifier(**FAST, max_iter=3).fit(X, y)


class EpochSnapshots:
    """A FitCallback keeping a copy of the parameters after every epoch."""

    def __init__(self):
        self.coefs, self.begins, self.ends = [], 0, 0

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context, *, X=None, y=None):
        self.begins += 1

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        self.ends += 1
        if context.task_name == "epoch":
            self.coefs.append([W.copy() for W in fitted_estimator.coefs_])
        return False


def _has_sklearn_callbacks():
    try:
        import sklearn.callback  # noqa: F401
    except ImportError:
        return False
    return True


# The callback API is new in scikit-learn 1.9; on older versions the estimators
# train without it and only these tests do not apply.
needs_callbacks = pytest.mark.skipif(
    not _has_sklearn_callbacks(), reason="sklearn.callback needs scikit-learn >= 1.9"
)


@needs_callbacks
def test_early_stopping_restores_best_weights(clf_data):
    X, y = clf_data
    snapshots = EpochSnapshots()
    est = BackpropClassifier(
        hidden_layer_sizes=(8,),
        random_state=0,
        early_stopping=True,
        validation_fraction=0.25,
        n_iter_no_change=3,
        max_iter=200,
        learning_rate_init=0.05,
    )
    est.set_callbacks(snapshots)
    est.fit(X, y)
    scores = est.validation_scores_
    assert len(scores) == est.n_iter_ == len(est.validation_loss_curve_)
    assert est.best_validation_score_ == max(scores)
    assert est.best_loss_ is None
    best_epoch = int(np.argmax(scores))
    assert best_epoch < est.n_iter_ - 1  # stopped after the best epoch
    for W, W_best in zip(est.coefs_, snapshots.coefs[best_epoch], strict=True):
        np.testing.assert_array_equal(W, W_best)
    assert all(np.isfinite(est.validation_loss_curve_))


def test_early_stopping_split_is_stratified():
    # 10 % of a 50/5 imbalanced problem: a stratified split keeps both classes
    rng = np.random.RandomState(0)
    X = rng.normal(size=(55, 3))
    y = np.array([0] * 50 + [1] * 5)
    est = BackpropClassifier(
        **FAST, early_stopping=True, max_iter=2, validation_fraction=0.4
    )
    _fit_quietly(est, X, y)
    assert len(est.validation_scores_) == 2


def test_validation_loss_curve_is_the_held_out_loss(reg_data):
    X, y = reg_data
    est = BackpropRegressor(
        **FAST, early_stopping=True, max_iter=5, learning_rate_init=0.01, alpha=0.0
    )
    _fit_quietly(est, X, y)
    assert len(est.validation_loss_curve_) == 5
    # the held-out loss differs from the training loss and is positive
    assert all(v > 0 for v in est.validation_loss_curve_)
    assert est.validation_loss_curve_ != est.loss_curve_


# -- warm start and partial_fit state ---------------------------------------------


def test_partial_fit_k_calls_equal_fit_k_epochs(clf_data):
    X, y = clf_data
    params = dict(**FAST, shuffle=False, max_iter=4, batch_size=32)
    fitted = _fit_quietly(BackpropClassifier(**params), X, y)
    incremental = BackpropClassifier(**params)
    for _ in range(4):
        incremental.partial_fit(X, y, classes=np.unique(y))
    for a, b in zip(
        fitted.coefs_ + fitted.intercepts_,
        incremental.coefs_ + incremental.intercepts_,
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    assert incremental.loss_curve_ == fitted.loss_curve_
    assert incremental.n_iter_ == fitted.n_iter_ == 4
    assert incremental.t_ == fitted.t_ == 4 * X.shape[0]


def test_partial_fit_keeps_optimizer_state_and_inplace_edits(reg_data):
    X, y = reg_data
    est = BackpropRegressor(**FAST, batch_size=50)
    est.partial_fit(X, y)
    assert est._optimizer_state["step"] == 2
    est.coefs_[0][...] = 0.0  # in-place edit of the live weights
    est.intercepts_[0][...] = 0.0
    before = est.predict(X)
    assert np.allclose(before, before[0])  # the edit took effect
    est.partial_fit(X, y)
    assert est._optimizer_state["step"] == 4  # state kept across calls
    assert est.n_iter_ == 2 and est.t_ == 200


def test_warm_start_keeps_weights_with_fresh_optimizer_state(reg_data):
    X, y = reg_data
    est = BackpropRegressor(**FAST, max_iter=3, batch_size=50)
    _fit_quietly(est, X, y)
    weights = [W.copy() for W in est.coefs_]
    est.set_params(warm_start=True, max_iter=1)
    _fit_quietly(est, X, y)
    # one more epoch of 2 steps, counted from a fresh Adam state; n_iter_
    # counts this fit's epochs (MLP), t_ and loss_curve_ accumulate
    assert est._optimizer_state["step"] == 2
    assert est.n_iter_ == 1
    assert est.t_ == 4 * len(X) and len(est.loss_curve_) == 4
    # started from the previous weights: one epoch away, not a re-initialisation
    cold = _fit_quietly(clone(est).set_params(warm_start=False), X, y)
    dist_warm = sum(
        np.abs(a - b).sum() for a, b in zip(est.coefs_, weights, strict=True)
    )
    dist_cold = sum(
        np.abs(a - b).sum() for a, b in zip(cold.coefs_, weights, strict=True)
    )
    assert dist_warm < dist_cold


def test_fit_without_warm_start_starts_afresh(reg_data):
    X, y = reg_data
    est = BackpropRegressor(**FAST, max_iter=2)
    first = [W.copy() for W in _fit_quietly(est, X, y).coefs_]
    second = _fit_quietly(est, X, y).coefs_
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert est.n_iter_ == 2


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_changed_architecture_raises(reg_data, method):
    X, y = reg_data
    est = BackpropRegressor(**FAST, max_iter=1, warm_start=True)
    _fit_quietly(est, X, y)
    est.set_params(hidden_layer_sizes=(5, 3))
    with pytest.raises(
        ValueError,
        match=re.escape("layer sizes changed from [5, 8, 1] to [5, 5, 3, 1]"),
    ):
        if method == "warm_start":
            est.fit(X, y)
        else:
            est.partial_fit(X, y)


def test_changed_features_or_classes_raise(clf_data):
    X, y = clf_data
    est = BackpropClassifier(**FAST)
    est.partial_fit(X, y, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="features"):
        est.partial_fit(X[:, :3], y)
    with pytest.raises(ValueError, match=r"classes \[7\] that are not in classes_"):
        est.partial_fit(X, np.where(y == 2, 7, y))
    est.set_params(warm_start=True, max_iter=1)
    with pytest.raises(ValueError, match="same classes as the previous fit"):
        est.fit(X, np.where(y == 2, 7, y))


def test_partial_fit_requires_classes_first(clf_data):
    X, y = clf_data
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        BackpropClassifier(**FAST).partial_fit(X, y)


# -- sample and class weights --


def test_negative_sample_weight_raises(reg_data):
    X, y = reg_data
    with pytest.raises(ValueError, match="[Nn]egative"):
        BackpropRegressor(**FAST, max_iter=1).fit(X, y, sample_weight=-np.ones(len(y)))


def test_all_zero_weights(reg_data):
    X, y = reg_data
    # scikit-learn >= 1.7 words it its own way; older versions reach our check
    with pytest.raises(ValueError, match="at least one non-zero|sum to zero"):
        BackpropRegressor(**FAST, max_iter=1).fit(X, y, sample_weight=np.zeros(len(y)))
    est = BackpropRegressor(**FAST).partial_fit(X, y)
    coefs = [W.copy() for W in est.coefs_]
    state = (est.n_iter_, est.t_, list(est.loss_curve_))
    est.partial_fit(X, y, sample_weight=np.zeros(len(y)))
    for a, b in zip(coefs, est.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (est.n_iter_, est.t_, est.loss_curve_) == state


def test_zero_weight_batch_is_skipped(reg_data):
    X, y = reg_data
    sw = np.ones(len(y))
    sw[:50] = 0  # the first of two batches weighs nothing
    est = BackpropRegressor(**FAST, shuffle=False, batch_size=50)
    est.partial_fit(X, y, sample_weight=sw)
    assert est._optimizer_state["step"] == 1
    assert est.t_ == 50
    ref = BackpropRegressor(**FAST, shuffle=False, batch_size=50)
    ref.partial_fit(X[50:], y[50:])
    for a, b in zip(est.coefs_, ref.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert est.loss_ == pytest.approx(ref.loss_, rel=1e-12)


def test_integer_weights_equal_repeated_rows_and_zero_equals_dropped(reg_data):
    X, y = reg_data
    sw = np.random.RandomState(0).randint(0, 4, size=len(y))
    params = dict(**FAST, batch_size=1000, max_iter=20, alpha=1e-3)
    weighted = _fit_quietly(BackpropRegressor(**params), X, y, sample_weight=sw)
    repeated = _fit_quietly(
        BackpropRegressor(**params), np.repeat(X, sw, axis=0), np.repeat(y, sw)
    )
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-9)
    np.testing.assert_allclose(weighted.loss_curve_, repeated.loss_curve_, rtol=1e-9)


def test_class_weight_balanced_helps_the_minority_class():
    X, y = make_classification(
        n_samples=400, n_features=5, weights=[0.93], class_sep=0.5, random_state=0
    )
    params = dict(
        hidden_layer_sizes=(8,), random_state=0, max_iter=50, learning_rate_init=0.01
    )
    plain = _fit_quietly(BackpropClassifier(**params), X, y)
    balanced = _fit_quietly(BackpropClassifier(**params, class_weight="balanced"), X, y)
    assert (
        recall_score(y, balanced.predict(X)) > recall_score(y, plain.predict(X)) + 0.2
    )


def test_class_weight_dict_multiplies_sample_weight(clf_data):
    X, y = clf_data
    params = dict(**FAST, max_iter=3)
    with_dict = _fit_quietly(
        BackpropClassifier(**params, class_weight={0: 2.0, 1: 1.0, 2: 1.0}), X, y
    )
    sw = np.where(y == 0, 2.0, 1.0)
    with_sw = _fit_quietly(BackpropClassifier(**params), X, y, sample_weight=sw)
    for a, b in zip(with_dict.coefs_, with_sw.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_class_weight_with_partial_fit(clf_data):
    X, y = clf_data
    est = BackpropClassifier(**FAST, class_weight="balanced")
    est.partial_fit(X, y, classes=[0, 1, 2])
    est.partial_fit(X[:30], y[:30])
    assert est.n_iter_ == 2


# -- divergence --


def test_divergence_raises_and_keeps_last_finite_parameters(reg_data):
    X, y = reg_data
    est = BackpropRegressor(
        hidden_layer_sizes=(8,),
        random_state=0,
        optimizer=SGD(momentum=0.0, nesterov=False),
        learning_rate_init=1e6,
        batch_size=10,
        max_iter=5,
    )
    with pytest.raises(ValueError, match=r"epoch \d+, batch \d+") as info:
        est.fit(X * 1e3, y * 1e3)
    assert "learning_rate_init" in str(info.value)
    assert all(np.all(np.isfinite(p)) for p in est.coefs_ + est.intercepts_)
    assert np.all(np.isfinite(est.predict(X)))
    est.set_params(learning_rate_init=1e-3, max_iter=2)
    _fit_quietly(est, X, y)  # a refit with a sane rate works
    assert np.all(np.isfinite(est.predict(X)))


# -- verbose and callbacks --


def test_verbose_prints_one_line_per_epoch(clf_data, capsys):
    X, y = clf_data
    est = BackpropClassifier(**FAST, max_iter=3, verbose=True, early_stopping=True)
    _fit_quietly(est, X, y)
    lines = [
        ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("Epoch")
    ]
    assert len(lines) == 3
    pattern = (
        r"Epoch 1, loss = [\d.]+, validation loss = [\d.]+, "
        r"validation score = [\d.]+, lr = 0\.001, [\d.]+ s"
    )
    assert re.fullmatch(pattern, lines[0])


@needs_callbacks
def test_callbacks_receive_one_task_per_epoch(clf_data):
    X, y = clf_data
    cb = EpochSnapshots()
    est = BackpropClassifier(**FAST, max_iter=4).set_callbacks(cb)
    _fit_quietly(est, X, y)
    # the fit task plus one subtask per epoch, each begun and ended
    assert cb.begins == cb.ends == 5
    assert len(cb.coefs) == 4
    est.partial_fit(X, y)
    assert cb.ends == 7  # partial_fit: one fit task with one epoch


@needs_callbacks
def test_callback_can_stop_training(clf_data):
    X, y = clf_data

    class StopAfterTwo(EpochSnapshots):
        def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
            super().on_fit_task_end(
                estimator, context, fitted_estimator=fitted_estimator
            )
            return len(self.coefs) >= 2

    est = BackpropClassifier(**FAST, max_iter=50).set_callbacks(StopAfterTwo())
    est.fit(X, y)
    assert est.n_iter_ == 2


@needs_callbacks
def test_scoring_monitor_and_progress_bar_in_a_pipeline(clf_data):
    from sklearn.callback import ProgressBar, ScoringMonitor

    X, y = clf_data
    monitor = ScoringMonitor(scoring="accuracy")
    est = BackpropClassifier(**FAST, max_iter=3).set_callbacks(monitor)
    _fit_quietly(est, X, y)
    table = monitor.get_logs().data_as_pandas
    assert len(table) == 4  # 3 epochs + the whole fit
    assert table["accuracy"].between(0, 1).all()
    pipe = make_pipeline(StandardScaler(), BackpropClassifier(**FAST, max_iter=2))
    pipe.set_callbacks(ProgressBar())
    _fit_quietly(pipe, X, y)
    assert pipe[-1].n_iter_ == 2


# -- hidden-layer features --


def test_transform_returns_last_hidden_activations(clf_data):
    X, y = clf_data
    est = _fit_quietly(
        BackpropClassifier(
            hidden_layer_sizes=(7, 5), activation="tanh", random_state=0, max_iter=3
        ),
        X,
        y,
    )
    H = np.tanh(
        np.tanh(X @ est.coefs_[0] + est.intercepts_[0]) @ est.coefs_[1]
        + est.intercepts_[1]
    )
    np.testing.assert_allclose(est.transform(X), H, rtol=1e-12)
    assert list(est.get_feature_names_out()) == [
        f"backpropclassifier{i}" for i in range(5)
    ]


def test_hidden_features_feed_another_estimator(clf_data):
    X, y = clf_data
    net = _fit_quietly(
        BackpropClassifier(
            hidden_layer_sizes=(16,),
            random_state=0,
            max_iter=50,
            learning_rate_init=0.01,
        ),
        X,
        y,
    )
    head = LogisticRegression(max_iter=500).fit(net.transform(X), y)
    assert head.score(net.transform(X), y) > 0.8
    pipe = make_pipeline(clone(net), LogisticRegression(max_iter=500))
    _fit_quietly(pipe, X, y)
    assert pipe.score(X, y) > 0.8


# -- the public gradient checker --


def test_check_gradients_accepts_correct_and_flags_wrong_derivatives():
    from sklearn_bp.activations import Activation
    from sklearn_bp.utils import check_gradients

    for activation in ["tanh", "logistic", "softplus", "elu"]:
        for loss in ["squared_error", "log_loss", "poisson", "huber"]:
            assert check_gradients(activation, loss, alpha=0.1) < 1e-7

    class WrongCube(Activation):
        def forward(self, Z):
            return Z**3

        def derivative(self, Z, A):
            return 2 * Z**2  # should be 3 Z^2

    assert check_gradients(WrongCube(), "squared_error") > 1e-2
