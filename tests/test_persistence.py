"""Saving and loading: pickle, joblib and skops, and what a skops user trusts.

A saved estimator holds its parameters, public fitted attributes and plain
state; private machinery is rebuilt on load. Every configuration round-trips
bit for bit, ``partial_fit`` after loading continues exactly as the saved
estimator would, and a skops file names only public types, all listed in
``sklearn_bp.TRUSTED_TYPES``. The stored files under ``tests/data`` were written
by release 0.1 and must keep loading (see ``make_fixtures`` below).
"""

import copy
import importlib
import io
import pickle
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression

import sklearn_bp
from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.activations import ELU, LeakyReLU
from sklearn_bp.optimizers import SGD, Adam, AdamW, RMSprop
from sklearn_bp.schedules import Cosine, StepDecay

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _clf_data(n_classes=3, n=90):
    X, y = make_classification(n_samples=n, n_features=5, n_informative=3,
                               n_classes=n_classes, random_state=0)
    return X, y


def _reg_data(n_targets=1):
    X, y = make_regression(n_samples=90, n_features=5, n_targets=n_targets,
                           random_state=0)
    return X, y / 100


def _multilabel():
    X, y = _clf_data(n_classes=4)
    return X, np.stack([y == 0, y >= 2, y % 2 == 1], axis=1).astype(int)


# name -> (estimator, data); each one fitted for a few epochs
CONFIGURATIONS = {
    "multiclass": (BackpropClassifier((6,), max_iter=5), _clf_data()),
    "binary-strings": (
        BackpropClassifier((4, 3), activation=["tanh", LeakyReLU(negative_slope=0.2)],
                           optimizer=SGD(momentum=0.5), max_iter=5),
        (_clf_data(2)[0], np.array(["no", "yes"])[_clf_data(2)[1]]),
    ),
    "multilabel-rmsprop": (
        BackpropClassifier((5,), optimizer=RMSprop(centered=True), max_iter=5),
        _multilabel(),
    ),
    "dropout-adamw-cosine": (
        BackpropClassifier((6, 4), dropout=[0.2, 0.1], optimizer=AdamW(),
                           learning_rate=Cosine(warmup=2), class_weight="balanced",
                           max_iter=5),
        _clf_data(),
    ),
    "adaptive-float32": (
        BackpropClassifier((5,), optimizer=SGD(), learning_rate="adaptive",
                           n_iter_no_change=1, tol=10.0, max_iter=5),
        (_clf_data()[0].astype(np.float32), _clf_data()[1]),
    ),
    "early-stopping": (
        BackpropClassifier((5,), early_stopping=True, max_iter=5), _clf_data()),
    "lbfgs": (BackpropClassifier((5,), optimizer="lbfgs", max_iter=5), _clf_data()),
    "regressor": (BackpropRegressor((6,), max_iter=5), _reg_data()),
    "regressor-poisson-stepdecay": (
        BackpropRegressor((5,), activation=ELU(alpha=0.5), loss="poisson",
                          learning_rate=StepDecay(step_size=2),
                          optimizer=Adam(beta_1=0.8), max_iter=5),
        (_reg_data()[0], np.abs(_reg_data()[1])),
    ),
    "regressor-multioutput-huber": (
        BackpropRegressor((5,), loss="huber", weight_init="he_normal",
                          clip_grad_norm=1.0, max_iter=5), _reg_data(2)),
}


def _fitted(name):
    estimator, (X, y) = CONFIGURATIONS[name]
    return clone(estimator).set_params(random_state=0).fit(X, y), X, y


def _outputs(estimator, X):
    """Everything a fitted estimator computes from X."""
    names = ["predict", "transform", "predict_proba", "predict_log_proba",
             "decision_function"]
    return {n: getattr(estimator, n)(X) for n in names if hasattr(estimator, n)}


def _assert_same(a, b, X):
    out_a, out_b = _outputs(a, X), _outputs(b, X)
    assert out_a.keys() == out_b.keys()
    for name in out_a:
        np.testing.assert_array_equal(out_a[name], out_b[name], err_msg=name)
        assert out_a[name].dtype == out_b[name].dtype
    assert a.get_params().keys() == b.get_params().keys()
    for key in ("loss_curve_", "n_iter_", "t_", "classes_", "out_activation_"):
        if hasattr(a, key):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def _skops_round_trip(estimator):
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    data = sio.dumps(estimator)
    untrusted = sio.get_untrusted_types(data=data)
    return sio.loads(data, trusted=sklearn_bp.TRUSTED_TYPES), untrusted


def _pickle_round_trip(estimator):
    return pickle.loads(pickle.dumps(estimator))


def _joblib_round_trip(estimator):
    buffer = io.BytesIO()
    joblib.dump(estimator, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


@pytest.mark.parametrize("name", CONFIGURATIONS)
def test_skops_round_trip_is_exact_and_names_only_public_types(name):
    estimator, X, _ = _fitted(name)
    loaded, untrusted = _skops_round_trip(estimator)
    _assert_same(estimator, loaded, X)
    assert type(estimator).__module__ == "sklearn_bp"
    assert f"sklearn_bp.{type(estimator).__name__}" in untrusted
    assert set(untrusted) <= set(sklearn_bp.TRUSTED_TYPES)
    # (every name public: no module path with a leading underscore)
    assert not any("._" in t for t in untrusted), untrusted


@pytest.mark.parametrize("round_trip", [_pickle_round_trip, _joblib_round_trip,
                                        copy.deepcopy, "skops"])
@pytest.mark.parametrize("name", [n for n in CONFIGURATIONS
                                  if n not in ("lbfgs", "early-stopping")])
def test_partial_fit_after_loading_continues_identically(name, round_trip):
    estimator, X, y = _fitted(name)
    if round_trip == "skops":
        loaded, _ = _skops_round_trip(estimator)
    else:
        loaded = round_trip(estimator)
    for model in (estimator, loaded):
        for _ in range(2):
            model.partial_fit(X, y)
    _assert_same(estimator, loaded, X)
    for a, b in zip(estimator.coefs_ + estimator.intercepts_,
                    loaded.coefs_ + loaded.intercepts_, strict=True):
        np.testing.assert_array_equal(a, b)


def test_warm_start_after_loading_continues_identically():
    estimator, X, y = _fitted("dropout-adamw-cosine")
    estimator.set_params(warm_start=True, max_iter=3)
    loaded, _ = _skops_round_trip(estimator)
    estimator.fit(X, y)
    loaded.fit(X, y)
    _assert_same(estimator, loaded, X)


def test_loaded_estimator_holds_no_private_type():
    estimator, X, y = _fitted("dropout-adamw-cosine")
    loaded = _pickle_round_trip(estimator)
    state = loaded.__getstate__()
    modules = {type(v).__module__ for v in state.values()}
    assert not any(m.startswith("sklearn_bp._") for m in modules), modules
    # the machinery is back and works
    assert loaded._monitor.learning_rate == estimator._monitor.learning_rate
    loaded.partial_fit(X, y)


def test_every_trusted_type_is_needed_by_some_configuration():
    sio = pytest.importorskip("skops.io", reason="skops is not installed")
    X, y = _clf_data()
    Xr, yr = _reg_data()
    seen = set()
    for qualified in sklearn_bp.TRUSTED_TYPES:
        module_name, _, name = qualified.rpartition(".")
        cls = getattr(importlib.import_module(module_name), name)
        if module_name == "sklearn_bp":
            estimator = cls((3,), max_iter=2)
        else:
            required = {"StepDecay": {"step_size": 1},
                        "ExponentialDecay": {"gamma": 0.9}}
            component = cls(**required.get(name, {}))
            parameter = module_name.rpartition(".")[2]
            parameter = {"activations": "activation", "losses": "loss",
                         "embeddings": "embedding",
                         "optimizers": "optimizer",
                         "schedules": "learning_rate"}[parameter]
            regression = parameter == "loss" and name != "LogLoss"
            estimator = (BackpropRegressor if regression else BackpropClassifier)(
                (3,), max_iter=2, **{parameter: component})
        data = (Xr, np.abs(yr)) if isinstance(estimator, BackpropRegressor) else (X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.set_params(random_state=0).fit(*data)
        dumped = sio.dumps(estimator)
        untrusted = sio.get_untrusted_types(data=dumped)
        assert qualified in untrusted
        assert set(untrusted) <= set(sklearn_bp.TRUSTED_TYPES)
        seen.update(untrusted)
        loaded = sio.loads(dumped, trusted=sklearn_bp.TRUSTED_TYPES)
        np.testing.assert_array_equal(loaded.predict(data[0]),
                                      estimator.predict(data[0]))
    assert seen == set(sklearn_bp.TRUSTED_TYPES)


def test_unfitted_and_cloned_estimators_round_trip():
    estimator = BackpropClassifier((3,), optimizer=Adam(beta_1=0.7))
    for loaded in (_pickle_round_trip(estimator), _skops_round_trip(estimator)[0]):
        assert loaded.get_params()["optimizer__beta_1"] == 0.7
        assert not hasattr(loaded, "coefs_")


def test_a_parameter_added_later_takes_its_default():
    """A file written before a parameter existed loads with its default."""
    estimator, X, _ = _fitted("multiclass")
    state = estimator.__getstate__()
    del state["clip_grad_norm"]
    loaded = BackpropClassifier.__new__(BackpropClassifier)
    loaded.__setstate__(state)
    assert loaded.clip_grad_norm is None
    _assert_same(estimator, loaded, X)


def test_a_newer_state_format_is_refused_clearly():
    estimator, _, _ = _fitted("multiclass")
    state = estimator.__getstate__()
    state["_sklearn_bp_state"] += 1
    with pytest.raises(ValueError, match="newer sklearn_bp"):
        BackpropClassifier.__new__(BackpropClassifier).__setstate__(state)


def test_optimizer_changed_before_saving_starts_afresh_as_without_saving():
    estimator, X, y = _fitted("multiclass")
    estimator.set_params(optimizer=SGD())
    loaded, _ = _skops_round_trip(estimator)
    for model in (estimator, loaded):
        model.partial_fit(X, y)
    _assert_same(estimator, loaded, X)


# -- files written by release 0.1 ----------------------------------------------

_FIXTURES = ("multiclass", "binary-strings", "regressor-poisson-stepdecay")


def make_fixtures():
    """Write the stored files (run once per release format, by hand)."""
    import skops.io as sio

    DATA.mkdir(exist_ok=True)
    for name in _FIXTURES:
        estimator, X, _ = _fitted(name)
        sio.dump(estimator, DATA / f"v0.1-{name}.skops")
        with open(DATA / f"v0.1-{name}.pkl", "wb") as f:
            pickle.dump(estimator, f, protocol=4)
        np.savez(DATA / f"v0.1-{name}.npz", X=X, **_outputs(estimator, X))


@pytest.mark.parametrize("fmt", ["skops", "pkl"])
@pytest.mark.parametrize("name", _FIXTURES)
def test_files_written_by_release_0_1_still_load(name, fmt):
    path = DATA / f"v0.1-{name}.{fmt}"
    if fmt == "skops":
        sio = pytest.importorskip("skops.io", reason="skops is not installed")
        assert set(sio.get_untrusted_types(file=path)) <= set(sklearn_bp.TRUSTED_TYPES)
        loaded = sio.load(path, trusted=sklearn_bp.TRUSTED_TYPES)
    else:
        with open(path, "rb") as f:
            loaded = pickle.load(f)
    expected = np.load(DATA / f"v0.1-{name}.npz")
    X = expected["X"]
    for method, values in _outputs(loaded, X).items():
        np.testing.assert_array_equal(values, expected[method], err_msg=method)
    _, (_, y) = CONFIGURATIONS[name]
    loaded.partial_fit(X, y)  # and it trains on
