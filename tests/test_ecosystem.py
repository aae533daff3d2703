"""The estimators inside scikit-learn's workflows: pipelines, searches,
cross-validation, cloning, persistence, metadata routing and reproducibility.

Every test uses small data, small networks and few epochs: they check that the
workflows are wired correctly, not that the networks are good.
"""

import pickle
import warnings

import joblib
import numpy as np
import pytest
import sklearn
from scipy.stats import loguniform, uniform
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import (
    GridSearchCV,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
    cross_val_score,
    cross_validate,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.optimizers import SGD, Adam, RMSprop


def _pandas():
    return pytest.importorskip("pandas", reason="the DataFrame tests need pandas")


# Converges (by tol / n_iter_no_change) well before max_iter on the data below,
# so no ConvergenceWarning hides among the warnings the tests turn into errors.
SMALL = dict(
    hidden_layer_sizes=(8,),
    max_iter=300,
    tol=1e-3,
    n_iter_no_change=5,
    learning_rate_init=0.05,
    batch_size=50,
    random_state=0,
)
# A fixed, short budget for tests that mostly compare runs with each other; it
# stops at max_iter, so its ConvergenceWarning is expected (filtered below).
QUICK = dict(
    hidden_layer_sizes=(8,),
    max_iter=15,
    learning_rate_init=0.01,
    batch_size=32,
    random_state=0,
)

pytestmark = pytest.mark.filterwarnings(
    "ignore:Stochastic optimizer:sklearn.exceptions.ConvergenceWarning"
)


def assert_same_params(a, b):
    for Wa, Wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(Wa, Wb)


def params_differ(a, b):
    return any(
        not np.array_equal(Wa, Wb)
        for Wa, Wb in zip(
            a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True
        )
    )


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(
        n_samples=150, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=150, n_features=5, noise=1.0, random_state=0)
    return StandardScaler().fit_transform(X), y / np.std(y)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.RandomState(0)
    n = 200
    df = _pandas().DataFrame(
        {
            "a": rng.randn(n),
            "b": rng.randn(n),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )
    y = np.where(
        df["a"] + 2 * (df["colour"] == "red") - 0.5 * df["b"] > 0.5, "yes", "no"
    )
    return df, y


def _column_transformer():
    return ColumnTransformer(
        [
            ("num", StandardScaler(), ["a", "b"]),
            ("cat", OneHotEncoder(sparse_output=False), ["colour"]),
        ]
    )


# -- Pipeline and ColumnTransformer on a DataFrame ---------------------------------


@pytest.mark.parametrize("early_stopping", [False, True])
def test_column_transformer_pipeline_on_dataframe(frame, early_stopping):
    df, y = frame
    with warnings.catch_warnings():
        # Any warning is a failure: above all scikit-learn's "X does not have
        # valid feature names" / "X has feature names, but ... was fitted
        # without feature names", which a predict path that loses the names
        # (e.g. the early-stopping validation pass) would raise.
        warnings.simplefilter("error")
        clf = BackpropClassifier(**SMALL, early_stopping=early_stopping)
        pipe = make_pipeline(_column_transformer(), clf).fit(df, y)
        assert list(pipe.feature_names_in_) == ["a", "b", "colour"]
        assert pipe.score(df, y) > 0.85
        proba = pipe.predict_proba(df)
        assert proba.shape == (len(df), 2)
        assert set(pipe.predict(df)) <= {"yes", "no"}
        assert (clf.validation_scores_ is not None) == early_stopping

        # With pandas output the network itself sees and records named columns.
        clf = BackpropClassifier(**SMALL, early_stopping=early_stopping)
        pipe = make_pipeline(_column_transformer(), clf).set_output(transform="pandas")
        pipe.fit(df, y)
        expected = [
            "num__a",
            "num__b",
            "cat__colour_blue",
            "cat__colour_green",
            "cat__colour_red",
        ]
        assert list(clf.feature_names_in_) == expected
        assert clf.n_features_in_ == 5
        np.testing.assert_array_equal(pipe.predict_proba(df), proba)
        # the network as a transformer names its hidden features
        hidden = clf.transform(pipe[:-1].transform(df))
        assert hidden.shape == (len(df), 8)
        assert list(clf.get_feature_names_out()) == [
            f"backpropclassifier{i}" for i in range(8)
        ]

    # The check above is not vacuous: a genuine mismatch does warn.
    with pytest.warns(UserWarning, match="valid feature names"):
        clf.predict(pipe[:-1].transform(df).to_numpy())


@pytest.mark.parametrize("early_stopping", [False, True])
def test_regressor_on_dataframe_records_feature_names(early_stopping):
    rng = np.random.RandomState(1)
    df = _pandas().DataFrame(rng.randn(120, 3), columns=["x0", "x1", "x2"])
    y = df["x0"] - 2 * df["x1"] + 0.1 * rng.randn(120)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reg = BackpropRegressor(**SMALL, early_stopping=early_stopping).fit(df, y)
        assert list(reg.feature_names_in_) == ["x0", "x1", "x2"]
        assert reg.score(df, y) > 0.8
        reg.predict(df)
        reg.transform(df)


def test_network_as_feature_extractor_in_pipeline(frame):
    # fit_transform in the middle of a pipeline: the hidden layer feeds another
    # estimator, with named (pandas) features.
    df, y = frame
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe = make_pipeline(
            _column_transformer(),
            BackpropClassifier(**SMALL),
            LogisticRegression(),
        ).set_output(transform="pandas")
        pipe.fit(df, y)
        assert pipe.score(df, y) > 0.85
        hidden = pipe[:-1].transform(df)
        assert list(hidden.columns) == [f"backpropclassifier{i}" for i in range(8)]
        assert list(pipe[-1].feature_names_in_) == list(hidden.columns)


def test_grid_search_over_pipeline_with_nested_optimizer_params(frame):
    df, y = frame
    pipe = make_pipeline(_column_transformer(), BackpropClassifier(**SMALL))
    grid = {
        "backpropclassifier__optimizer": [Adam()],
        "backpropclassifier__optimizer__beta_1": [0.5, 0.9],
        "backpropclassifier__learning_rate_init": [0.01, 0.05],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        search = GridSearchCV(pipe, grid, cv=3, n_jobs=2).fit(df, y)
    assert len(search.cv_results_["params"]) == 4
    best = search.best_estimator_[-1]
    beta_1 = search.best_params_["backpropclassifier__optimizer__beta_1"]
    assert best.optimizer.beta_1 == beta_1
    assert grid["backpropclassifier__optimizer"][0] == Adam()  # never mutated
    assert search.best_score_ > 0.85


# -- Hyper-parameter searches ------------------------------------------------------

OPTIMIZER_GRID = [
    {"optimizer": ["sgd", "adam", "rmsprop"]},
    {"optimizer": [Adam()], "optimizer__beta_1": [0.5, 0.9]},
    {
        "optimizer": [SGD()],
        "optimizer__momentum": [0.0, 0.9],
        "optimizer__nesterov": [False],
    },
    {"optimizer": [RMSprop(centered=True)], "optimizer__rho": [0.8]},
]


def test_grid_search_over_optimizers_and_nested_params(clf_data):
    X, y = clf_data
    grid = [dict(g) for g in OPTIMIZER_GRID]
    before = [repr(g) for g in grid]
    cv = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(BackpropClassifier(**QUICK), grid, cv=cv, n_jobs=2)
    search.fit(X, y)
    n_candidates = 3 + 2 + 2 + 1
    assert len(search.cv_results_["params"]) == n_candidates
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_score_ > 0.5
    # the search never mutates the optimizer instances of the grid
    assert [repr(g) for g in grid] == before

    # nested parameters really reach the fitted networks: each candidate equals
    # a direct fit with that configuration.
    serial = GridSearchCV(BackpropClassifier(**QUICK), grid, cv=cv, n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"]
    )
    params = search.best_params_
    direct = (
        BackpropClassifier(**QUICK).set_params(**clone(params, safe=False)).fit(X, y)
    )
    assert_same_params(search.best_estimator_, direct)

    # different beta_1 values give different networks (the param is not ignored)
    a = BackpropClassifier(**QUICK, optimizer=Adam(beta_1=0.5)).fit(X, y)
    b = BackpropClassifier(**QUICK, optimizer=Adam(beta_1=0.9)).fit(X, y)
    assert params_differ(a, b)


def test_randomized_search_over_nested_params(reg_data):
    X, y = reg_data
    distributions = {
        "optimizer": [Adam(), RMSprop()],
        "learning_rate_init": loguniform(1e-3, 3e-2),
    }
    search = RandomizedSearchCV(
        BackpropRegressor(**QUICK),
        [
            distributions,
            {"optimizer": [Adam()], "optimizer__beta_1": uniform(0.5, 0.45)},
        ],
        n_iter=6,
        cv=3,
        n_jobs=2,
        random_state=0,
    )
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 6
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    betas = [
        p["optimizer__beta_1"]
        for p in search.cv_results_["params"]
        if "optimizer__beta_1" in p
    ]
    for params in search.cv_results_["params"]:
        assert isinstance(params["optimizer"], (Adam, RMSprop))
    best = search.best_estimator_
    if "optimizer__beta_1" in search.best_params_:
        assert best.optimizer.beta_1 == search.best_params_["optimizer__beta_1"]
    assert all(0.5 <= b <= 0.95 for b in betas)
    # the search is reproducible, in parallel as serially
    again = clone(search).set_params(n_jobs=1).fit(X, y)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], again.cv_results_["mean_test_score"]
    )


def test_search_rejects_nested_param_on_string_optimizer(clf_data):
    X, y = clf_data
    search = GridSearchCV(
        BackpropClassifier(**QUICK),
        {"optimizer__beta_1": [0.5]},
        cv=2,
        error_score="raise",
    )
    with pytest.raises(ValueError, match="nested parameters need an instance"):
        search.fit(X, y)


# -- Cross-validation --------------------------------------------------------------


def test_cross_val_score_equals_manual_folds(clf_data):
    X, y = clf_data
    est = BackpropClassifier(**QUICK)
    cv = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(est, X, y, cv=cv, n_jobs=2)
    manual = [
        clone(est).fit(X[train], y[train]).score(X[test], y[test])
        for train, test in cv.split(X, y)
    ]
    np.testing.assert_array_equal(scores, manual)
    assert np.mean(scores) > 0.5


def test_cross_validate_multi_metric(reg_data):
    X, y = reg_data
    est = BackpropRegressor(**QUICK)
    result = cross_validate(
        est,
        X,
        y,
        cv=3,
        scoring=("r2", "neg_mean_squared_error"),
        return_train_score=True,
        return_estimator=True,
    )
    assert len(result["estimator"]) == 3
    for key in ("test_r2", "train_r2", "test_neg_mean_squared_error"):
        assert np.all(np.isfinite(result[key]))
    assert np.mean(result["train_r2"]) > 0.5
    for fitted in result["estimator"]:
        assert fitted.n_iter_ == QUICK["max_iter"]
        assert fitted is not est
    with pytest.raises(NotFittedError):
        check_is_fitted(est)


# -- clone ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "Estimator, data",
    [(BackpropClassifier, "clf_data"), (BackpropRegressor, "reg_data")],
)
def test_clone_carries_no_fitted_or_optimizer_state(Estimator, data, request):
    X, y = request.getfixturevalue(data)
    spec = Adam(beta_1=0.8)
    est = Estimator(**QUICK, optimizer=spec).fit(X, y)
    assert hasattr(est, "_optimizer_state")
    cloned = clone(est)
    assert not any(
        key.endswith("_") and not key.startswith("__") for key in vars(cloned)
    )
    assert not any(key.startswith("_") for key in vars(cloned))
    with pytest.raises(NotFittedError):
        check_is_fitted(cloned)
    # the spec is copied, not shared, and equal; fitting left it untouched
    assert cloned.optimizer is not spec
    assert cloned.optimizer == spec == Adam(beta_1=0.8)
    assert cloned.get_params()["optimizer__beta_1"] == 0.8
    assert not vars(spec).keys() - set(spec.get_params())
    # a fitted clone starts afresh: identical to the original's first fit
    assert_same_params(
        cloned.fit(X, y), Estimator(**QUICK, optimizer=Adam(beta_1=0.8)).fit(X, y)
    )
    # and changing the clone's spec does not reach the original
    cloned.set_params(optimizer__beta_1=0.5)
    assert est.optimizer.beta_1 == 0.8


# -- pickle and joblib ---------------------------------------------------------------


def _pickle_round_trip(est, tmp_path):
    return pickle.loads(pickle.dumps(est))


def _joblib_round_trip(est, tmp_path):
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


@pytest.mark.parametrize("round_trip", [_pickle_round_trip, _joblib_round_trip])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "optimizer", ["adam", SGD(momentum=0.9), RMSprop(centered=True)]
)
def test_persistence_round_trip_then_partial_fit(
    clf_data, tmp_path, round_trip, dtype, optimizer
):
    X, y = clf_data
    X = X.astype(dtype)
    half = len(X) // 2
    est = BackpropClassifier(**QUICK, optimizer=optimizer)
    est.partial_fit(X[:half], y[:half], classes=np.unique(y))
    est.partial_fit(X[half:], y[half:])

    loaded = round_trip(est, tmp_path)
    assert loaded is not est
    for method in ("predict", "predict_proba", "predict_log_proba", "transform"):
        np.testing.assert_array_equal(
            getattr(loaded, method)(X), getattr(est, method)(X)
        )
    assert loaded.coefs_[0].dtype == dtype
    assert loaded.n_iter_ == est.n_iter_ == 2
    assert loaded.t_ == est.t_ == len(X)

    # Both continue with the same optimizer state and shuffling stream, so they
    # stay bit-identical.
    for model in (est, loaded):
        model.partial_fit(X[:half], y[:half])
        model.partial_fit(X[half:], y[half:])
    assert_same_params(loaded, est)
    assert loaded.loss_curve_ == est.loss_curve_
    assert loaded.t_ == 2 * len(X)
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("round_trip", [_pickle_round_trip, _joblib_round_trip])
@pytest.mark.parametrize("early_stopping", [False, True])
def test_persistence_of_fitted_regressor(
    reg_data, tmp_path, round_trip, early_stopping
):
    X, y = reg_data
    est = BackpropRegressor(**QUICK, early_stopping=early_stopping)
    est.fit(X, y)
    loaded = round_trip(est, tmp_path)
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    assert loaded.score(X, y) == est.score(X, y)
    for model in (est, loaded):
        model.set_params(early_stopping=False).partial_fit(X, y)
    assert_same_params(loaded, est)
    assert loaded.n_iter_ == est.n_iter_


def test_pickle_of_unfitted_and_of_pipeline(frame, tmp_path):
    df, y = frame
    unfitted = BackpropClassifier(**SMALL, optimizer=Adam(beta_1=0.7))
    assert repr(pickle.loads(pickle.dumps(unfitted))) == repr(unfitted)
    pipe = make_pipeline(_column_transformer(), BackpropClassifier(**SMALL)).fit(df, y)
    loaded = _joblib_round_trip(pipe, tmp_path)
    np.testing.assert_array_equal(loaded.predict_proba(df), pipe.predict_proba(df))


@pytest.mark.parametrize(
    "Estimator, data",
    [(BackpropClassifier, "clf_data"), (BackpropRegressor, "reg_data")],
)
def test_partial_fit_with_early_stopping_flag(Estimator, data, request):
    # MLP >= 1.3: partial_fit has no held-out set, so early_stopping=True is
    # refused with a clear error (first call, or continuing a fit), rather than
    # silently ignored; fit with the flag still holds data out.
    X, y = request.getfixturevalue(data)
    kwargs = {"classes": np.unique(y)} if Estimator is BackpropClassifier else {}
    est = Estimator(**QUICK, early_stopping=True)
    with pytest.raises(ValueError, match="partial_fit does not support early_stop"):
        est.partial_fit(X, y, **kwargs)
    assert not hasattr(est, "coefs_")
    fitted = Estimator(**QUICK, early_stopping=True).fit(X, y)
    assert fitted.validation_scores_
    with pytest.raises(ValueError, match="partial_fit does not support early_stop"):
        fitted.partial_fit(X, y)
    n_iter = fitted.n_iter_
    fitted.set_params(early_stopping=False).partial_fit(X, y)
    assert fitted.n_iter_ == n_iter + 1
    assert fitted.validation_scores_ is None


# -- metadata routing of sample_weight ------------------------------------------------


@pytest.fixture
def routing():
    with sklearn.config_context(enable_metadata_routing=True):
        yield


def _weights(y):
    # strongly uneven weights, so that weighted and unweighted fits differ
    rng = np.random.RandomState(3)
    return np.where(y == 0, 5.0, 0.2) * rng.uniform(0.5, 1.5, size=len(y))


@pytest.mark.usefixtures("routing")
@pytest.mark.parametrize(
    "Estimator, data",
    [(BackpropClassifier, "clf_data"), (BackpropRegressor, "reg_data")],
)
def test_sample_weight_routed_through_pipeline(Estimator, data, request):
    X, y = request.getfixturevalue(data)
    w = _weights(y if Estimator is BackpropClassifier else (y > 0).astype(int))
    pipe = make_pipeline(
        StandardScaler().set_fit_request(sample_weight=False),
        Estimator(**QUICK).set_fit_request(sample_weight=True),
    )
    weighted = clone(pipe).fit(X, y, sample_weight=w)
    unweighted = clone(pipe).fit(X, y)
    Xs = StandardScaler().fit_transform(X)
    direct = Estimator(**QUICK).fit(Xs, y, sample_weight=w)
    assert_same_params(weighted[-1], direct)
    assert params_differ(weighted[-1], unweighted[-1])
    # without a request the pipeline refuses the metadata instead of dropping it
    plain = make_pipeline(
        StandardScaler().set_fit_request(sample_weight=False), Estimator(**QUICK)
    )
    with pytest.raises(Exception, match="sample_weight"):
        plain.fit(X, y, sample_weight=w)


@pytest.mark.usefixtures("routing")
def test_sample_weight_routed_through_grid_search(clf_data):
    X, y = clf_data
    w = _weights(y)
    # The weights go to fit only; the search scores unweighted accuracy (score
    # also accepts sample_weight, so routing asks us to say which we want).
    est = (
        BackpropClassifier(**QUICK)
        .set_fit_request(sample_weight=True)
        .set_score_request(sample_weight=False)
    )
    grid = {"optimizer": [Adam(), Adam(beta_1=0.5)]}
    cv = KFold(3, shuffle=True, random_state=0)
    weighted = GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y, sample_weight=w)
    unweighted = GridSearchCV(est, grid, cv=cv, n_jobs=2).fit(X, y)
    # the refit on all data used the weights
    direct = clone(est).set_params(**clone(weighted.best_params_, safe=False))
    direct.fit(X, y, sample_weight=w)
    assert_same_params(weighted.best_estimator_, direct)
    assert params_differ(weighted.best_estimator_, unweighted.best_estimator_)
    # and so did each fold's fit: the first candidate's fold scores equal
    # direct weighted fits on the training folds
    first = grid["optimizer"][0]
    fold_scores = [
        clone(est)
        .set_params(optimizer=first)
        .fit(X[train], y[train], sample_weight=w[train])
        .score(X[test], y[test])
        for train, test in cv.split(X, y)
    ]
    got = [weighted.cv_results_[f"split{i}_test_score"][0] for i in range(3)]
    np.testing.assert_array_equal(got, fold_scores)


def test_metadata_request_is_scikit_learns(clf_data):
    # set_fit_request / set_partial_fit_request come from scikit-learn's
    # metadata-routing machinery, built from the method signatures.
    with sklearn.config_context(enable_metadata_routing=True):
        est = BackpropClassifier().set_fit_request(sample_weight=True)
        est.set_partial_fit_request(classes=True, sample_weight=True)
        routing = est.get_metadata_routing()
        assert routing.fit.requests == {"sample_weight": True}
        assert routing.partial_fit.requests == {"classes": True, "sample_weight": True}
        reg = BackpropRegressor().set_partial_fit_request(sample_weight=True)
        assert reg.get_metadata_routing().partial_fit.requests == {
            "sample_weight": True
        }


# -- reproducibility -------------------------------------------------------------------


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize(
    "Estimator, data",
    [(BackpropClassifier, "clf_data"), (BackpropRegressor, "reg_data")],
)
def test_refit_with_same_random_state_is_bit_identical(
    Estimator, data, early_stopping, request
):
    X, y = request.getfixturevalue(data)
    params = dict(QUICK, early_stopping=early_stopping, max_iter=20, n_iter_no_change=3)
    first = Estimator(**params).fit(X, y)
    second = Estimator(**params).fit(X, y)
    assert_same_params(first, second)
    assert first.loss_curve_ == second.loss_curve_
    assert first.n_iter_ == second.n_iter_
    if early_stopping:
        assert first.validation_scores_ == second.validation_scores_
        assert first.validation_loss_curve_ == second.validation_loss_curve_
    # refitting the same object starts afresh and gives the same network
    coefs = [W.copy() for W in first.coefs_]
    first.set_params(early_stopping=False).partial_fit(X, y)  # disturb the state
    first.set_params(early_stopping=early_stopping).fit(X, y)
    for W, W0 in zip(first.coefs_, coefs, strict=True):
        np.testing.assert_array_equal(W, W0)
    assert first.loss_curve_ == second.loss_curve_
    # the seed matters: another random_state gives another network
    other = Estimator(**dict(params, random_state=1)).fit(X, y)
    assert params_differ(first, other)
