"""MLP behaviours a switching user relies on, each asserted in our form."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier, MLPRegressor

from sklearn_bp import BackpropClassifier, BackpropRegressor, _network
from sklearn_bp._training import hold_out
from sklearn_bp.optimizers import SGD


def _quiet(est, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, **kwargs)


@pytest.fixture(scope="module")
def clf_data():
    return make_classification(n_samples=150, n_features=6, n_informative=4,
                               n_classes=3, random_state=0)


# -- the same batches as MLP: SGD follows MLP's trajectory ------------------------


@pytest.mark.parametrize("Ours, Theirs", [(BackpropClassifier, MLPClassifier),
                                          (BackpropRegressor, MLPRegressor)])
def test_sgd_with_shuffling_follows_mlp(clf_data, Ours, Theirs):
    X, y = clf_data
    if Ours is BackpropRegressor:
        X, y = make_regression(n_samples=150, n_features=6, random_state=0)
        y = y / np.std(y)
    common = dict(hidden_layer_sizes=(12,), learning_rate_init=0.01, batch_size=32,
                  max_iter=6, shuffle=True, random_state=0, tol=0.0,
                  n_iter_no_change=100, alpha=1e-3)
    ours = _quiet(Ours(optimizer=SGD(momentum=0.9, nesterov=True), **common), X, y)
    mlp = _quiet(Theirs(solver="sgd", momentum=0.9, nesterovs_momentum=True,
                        **common), X, y)
    # torch's momentum formula equals MLP's at a constant learning rate: the
    # same batches give the same trajectory, up to rounding
    for a, b in zip(ours.coefs_ + ours.intercepts_, mlp.coefs_ + mlp.intercepts_,
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ours.loss_curve_, mlp.loss_curve_, rtol=1e-9)
    assert ours.n_iter_ == mlp.n_iter_ and ours.t_ == mlp.t_


# -- classes ------------------------------------------------------------------------


def test_partial_fit_labels_must_be_in_classes(clf_data):
    X, y = clf_data
    with pytest.raises(ValueError, match=r"classes \[2\] that are not in classes"):
        BackpropClassifier().partial_fit(X, y, classes=[0, 1])
    clf = BackpropClassifier(hidden_layer_sizes=(4,))
    clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1])
    with pytest.raises(ValueError, match=r"classes \[2\] that are not in classes_"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"classes=\[0, 1, 2\] is not the same"):
        clf.partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    clf.partial_fit(X[y == 0], y[y == 0], classes=[1, 0])  # the same set: fine
    assert clf.n_iter_ == 2


@pytest.mark.parametrize("new_classes", [[0, 1], [0, 1, 3], [0, 1, 2, 3]])
def test_warm_start_needs_the_same_classes(clf_data, new_classes):
    X, y = clf_data
    clf = _quiet(BackpropClassifier(hidden_layer_sizes=(4,), max_iter=2,
                                    warm_start=True, random_state=0), X, y)
    y_new = np.array(new_classes)[np.arange(len(y)) % len(new_classes)]
    with pytest.raises(ValueError, match="same classes as the previous fit"):
        clf.fit(X, y_new)
    # the same set in another order and proportion is fine
    order = np.argsort(-y, kind="stable")
    _quiet(clf, X[order][:100], y[order][:100])
    assert clf.n_iter_ == 2


# -- n_iter_, t_, loss_curve_ ------------------------------------------------------


def test_n_iter_counts_this_fit_and_partial_fit_calls(clf_data):
    X, y = clf_data
    clf = BackpropClassifier(hidden_layer_sizes=(4,), max_iter=3, warm_start=True,
                             random_state=0)
    _quiet(clf, X, y)
    _quiet(clf, X, y)
    assert clf.n_iter_ == 3 == clf.max_iter  # "did not converge", as MLP says
    assert len(clf.loss_curve_) == 6 and clf.t_ == 6 * len(X)
    streamed = BackpropClassifier(hidden_layer_sizes=(4,), random_state=0)
    for k in range(1, 5):
        streamed.partial_fit(X, y, classes=np.unique(y))
        assert streamed.n_iter_ == k == len(streamed.loss_curve_)


def test_n_iter_no_change_inf_never_stops(clf_data):
    X, y = clf_data
    clf = _quiet(BackpropClassifier(hidden_layer_sizes=(4,), max_iter=30,
                                    tol=1e9, n_iter_no_change=np.inf,
                                    random_state=0), X, y)
    assert clf.n_iter_ == 30
    stops = _quiet(BackpropClassifier(hidden_layer_sizes=(4,), max_iter=30, tol=1e9,
                                      n_iter_no_change=2, random_state=0), X, y)
    # (epoch 1 sets the best loss; epochs 2-4 do not improve by tol; more than
    # n_iter_no_change=2 such epochs stop the fit, as in MLP)
    mlp = _quiet(MLPClassifier(hidden_layer_sizes=(4,), max_iter=30, tol=1e9,
                               n_iter_no_change=2, random_state=0), X, y)
    assert stops.n_iter_ == mlp.n_iter_ == 4


# -- early stopping ------------------------------------------------------------------


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_partial_fit_refuses_early_stopping(clf_data, Estimator):
    X, y = clf_data
    kwargs = {"classes": [0, 1, 2]} if Estimator is BackpropClassifier else {}
    with pytest.raises(ValueError, match="partial_fit does not support early"):
        Estimator(early_stopping=True).partial_fit(X, y, **kwargs)


def test_too_small_held_out_set_raises_before_training():
    X, y = make_regression(n_samples=10, n_features=3, random_state=0)
    reg = BackpropRegressor(early_stopping=True, validation_fraction=0.1)
    with pytest.raises(ValueError, match="validation set is too small to score"):
        reg.fit(X, y)
    assert not getattr(reg, "loss_curve_", [])  # no epoch ran
    reg.set_params(validation_fraction=0.2, max_iter=3)  # two rows: fine
    _quiet(reg, X, y)
    assert len(reg.validation_scores_) == 3


def test_divergence_in_the_held_out_pass_keeps_usable_parameters(clf_data,
                                                                 monkeypatch):
    X, y = clf_data
    real = _network.predict_raw
    calls = {"n": 0}

    def overflowing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the training batches stay finite
            raise ValueError("The network's output is not finite")
        return real(*args, **kwargs)

    monkeypatch.setattr(_network, "predict_raw", overflowing)
    best = {}

    def scored(est, *args):
        # the parameters of the best held-out score so far, to compare with
        score = type(est)._score_raw(est, *args)
        if score > best.get("score", -np.inf):
            best["score"] = score
            best["params"] = [p.copy() for p in est.coefs_ + est.intercepts_]
        return score

    for optimizer, unit in [("adam", "epoch"), ("lbfgs", "iteration")]:
        calls["n"] = 0
        best.clear()
        clf = BackpropClassifier(hidden_layer_sizes=(8,), early_stopping=True,
                                 optimizer=optimizer, max_iter=10, random_state=0)
        monkeypatch.setattr(clf, "_score_raw",
                            lambda *args, clf=clf: scored(clf, *args))
        with pytest.raises(ValueError, match=f"held-out pass.*{unit} 3") as info:
            clf.fit(X, y)
        assert type(info.value).__name__ == "DivergenceError"
        assert clf.n_iter_ == 3 and len(clf.validation_scores_) == 2
        # the estimator keeps the best parameters the held-out set scored
        for p, saved in zip(clf.coefs_ + clf.intercepts_, best["params"],
                            strict=True):
            np.testing.assert_array_equal(p, saved)
        assert np.isfinite(clf.predict_proba(X)).all()


def test_held_out_split_groups_duplicates_and_ignores_row_order():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3))
    Y = rng.normal(size=(40, 1))
    X, Y = np.vstack([X, X[:10]]), np.vstack([Y, Y[:10]])  # 10 duplicated rows
    train, (X_val, _, _) = hold_out(X, Y, None, None, fraction=0.25,
                                    rng=np.random.RandomState(1))
    held = {tuple(r) for r in X_val}
    assert not held & {tuple(r) for r in X[train]}  # no row on both sides
    assert len(train) + len(X_val) == len(X)
    order = rng.permutation(len(X))
    _, (X_val2, _, _) = hold_out(X[order], Y[order], None, None, fraction=0.25,
                                 rng=np.random.RandomState(1))
    assert {tuple(r) for r in X_val2} == held
    weights = np.ones(len(X))
    weights[:5] = 0
    train_w, (X_val_w, _, sw_val) = hold_out(X, Y, weights, None, fraction=0.5,
                                             rng=np.random.RandomState(1))
    assert set(range(5)) <= set(train_w.tolist()) and (sw_val > 0).all()


def test_held_out_split_is_stratified():
    X = np.arange(200, dtype=float).reshape(100, 2)
    y = np.array([0] * 80 + [1] * 20)
    train, (_, Y_val, _) = hold_out(X, y[:, None], None, y, fraction=0.2,
                                    rng=np.random.RandomState(0))
    assert Y_val.ravel().tolist().count(1) == 4 and len(Y_val) == 20


# -- MLP's parameter names ------------------------------------------------------------


@pytest.mark.parametrize("name, ours", [
    ("solver", "optimizer"), ("momentum", "optimizer__momentum"),
    ("nesterovs_momentum", "optimizer__nesterov"), ("beta_1", "optimizer__beta_1"),
    ("beta_2", "optimizer__beta_2"), ("epsilon", "optimizer__epsilon"),
])
def test_mlp_parameter_names_point_to_ours(clf_data, name, ours):
    with pytest.raises(ValueError, match=f"{name}.*MLPClassifier.*{ours}"):
        BackpropClassifier().set_params(**{name: 0.5})
    search = GridSearchCV(BackpropClassifier(max_iter=2), {name: [0.5]}, cv=2,
                          error_score="raise")
    with pytest.raises(ValueError, match=ours):
        search.fit(*clf_data)
