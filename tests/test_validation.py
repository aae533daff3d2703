"""Bad input fails loudly and helpfully, at fit and never at construction.

Each error is a ValueError or TypeError whose message names the offending
parameter and what it accepts. User-written Activation, Loss and Optimizer
subclasses work end to end.
"""

import re

import numpy as np
import pytest
from _helpers import quiet_fit as _quiet_fit
from scipy import sparse
from scipy.special import expit, softmax
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp._network import init_params, loss_and_gradients
from sklearn_bp.activations import ELU, Activation, LeakyReLU
from sklearn_bp.losses import Huber, Loss
from sklearn_bp.optimizers import SGD, Adam, Optimizer, RMSprop

ESTIMATORS = [BackpropClassifier, BackpropRegressor]


def _data(Estimator, n=30, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    y = (
        (X[:, 0] > 0).astype(int)
        if Estimator is BackpropClassifier
        else X[:, 0] - X[:, 1]
    )
    return X, y


# -- bad hyper-parameters: raised at fit, naming the parameter and what it accepts --

# (estimator kwargs, regex every part of which the message must contain)
BAD_PARAMS = {
    "activation-unknown-name": (
        dict(activation="swish"),
        ["'activation'", "relu", "leaky_relu", "Activation", "swish"],
    ),
    "activation-int": (dict(activation=3), ["'activation'", "tanh", "Activation"]),
    "activation-class-not-instance": (
        dict(activation=LeakyReLU),
        ["'activation'", "instance", "Activation"],
    ),
    "optimizer-unknown-name": (
        dict(optimizer="adagrad"),
        ["'optimizer'", "sgd", "adam", "rmsprop", "Optimizer", "adagrad"],
    ),
    "optimizer-object": (
        dict(optimizer=object()),
        ["'optimizer'", "adam", "Optimizer"],
    ),
    "optimizer-class-not-instance": (dict(optimizer=Adam), ["'optimizer'", "instance"]),
    "alpha-negative": (dict(alpha=-1.0), ["'alpha'", r"\[0(\.0)?, inf\)", "-1"]),
    "alpha-nan": (dict(alpha=float("nan")), ["'alpha'", r"\[0(\.0)?, inf\)"]),
    "learning_rate_init-zero": (
        dict(learning_rate_init=0),
        ["'learning_rate_init'", r"\(0(\.0)?, inf\)"],
    ),
    "learning_rate-unknown": (
        dict(learning_rate="cosine"),
        ["'learning_rate'", "constant", "invscaling", "adaptive"],
    ),
    "max_iter-zero": (dict(max_iter=0), ["'max_iter'", r"\[1, inf\)"]),
    "batch_size-zero": (dict(batch_size=0), ["'batch_size'", "auto", r"\[1, inf\)"]),
    "hidden_layer_sizes-negative": (
        dict(hidden_layer_sizes=(10, -1)),
        ["hidden_layer_sizes", "positive", r"\(10, -1\)"],
    ),
    "hidden_layer_sizes-float": (
        dict(hidden_layer_sizes=(2.5,)),
        ["hidden_layer_sizes", "int"],
    ),
    "hidden_layer_sizes-str": (
        dict(hidden_layer_sizes="abc"),
        ["'hidden_layer_sizes'", "int"],
    ),
    "sgd-nesterov-without-momentum": (
        dict(optimizer=SGD(nesterov=True, momentum=0)),
        ["nesterov", "momentum > 0", "momentum=0"],
    ),
    "sgd-momentum-one": (
        dict(optimizer=SGD(momentum=1.0)),
        ["'momentum'", "SGD", r"\[0(\.0)?, 1(\.0)?\)"],
    ),
    "sgd-nesterov-not-bool": (
        dict(optimizer=SGD(nesterov="yes")),
        ["'nesterov'", "bool"],
    ),
    "adam-beta_1": (
        dict(optimizer=Adam(beta_1=1.5)),
        ["'beta_1'", "Adam", r"\[0(\.0)?, 1(\.0)?\)", "1.5"],
    ),
    "adam-beta_2-negative": (dict(optimizer=Adam(beta_2=-0.1)), ["'beta_2'", "Adam"]),
    "adam-epsilon-zero": (
        dict(optimizer=Adam(epsilon=0)),
        ["'epsilon'", r"\(0(\.0)?, inf\)"],
    ),
    "rmsprop-rho": (
        dict(optimizer=RMSprop(rho=1.0)),
        ["'rho'", "RMSprop", r"\[0(\.0)?, 1(\.0)?\)"],
    ),
    "rmsprop-centered-not-bool": (
        dict(optimizer=RMSprop(centered=None)),
        ["'centered'", "bool"],
    ),
    "leaky_relu-negative-slope": (
        dict(activation=LeakyReLU(negative_slope=-0.1)),
        ["'negative_slope'", "LeakyReLU", r"\[0(\.0)?, inf\)"],
    ),
    "elu-alpha-str": (dict(activation=ELU(alpha="one")), ["'alpha'", "ELU"]),
}


@pytest.mark.parametrize("case", BAD_PARAMS)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_parameter_raises_at_fit_not_construction(Estimator, case):
    params, expected = BAD_PARAMS[case]
    X, y = _data(Estimator)
    params = {"hidden_layer_sizes": (3,), "max_iter": 2, **params}
    est = Estimator(**params)  # no error here
    clone(est)  # nor when cloned (searches clone before they fit)
    Estimator().set_params(**params)  # nor here
    with pytest.raises((ValueError, TypeError)) as excinfo:
        est.fit(X, y)
    message = str(excinfo.value)
    for part in expected:
        assert re.search(part, message), f"{part!r} not in {message!r}"
    assert not hasattr(est, "coefs_")  # nothing was half-fitted
    # partial_fit validates the same way
    with pytest.raises((ValueError, TypeError)):
        if Estimator is BackpropClassifier:
            est.partial_fit(X, y, classes=[0, 1])
        else:
            est.partial_fit(X, y)


@pytest.mark.parametrize(
    ("Estimator", "loss", "accepted"),
    [
        (BackpropClassifier, "squared_error", ["log_loss"]),
        (BackpropClassifier, "hinge", ["log_loss"]),
        (BackpropClassifier, Huber, ["Loss"]),
        (
            BackpropRegressor,
            "log_loss",
            ["squared_error", "absolute_error", "huber", "poisson"],
        ),
        (BackpropRegressor, 3.5, ["squared_error", "Loss"]),
        (BackpropRegressor, Huber(delta=0), ["'delta'", "Huber", r"\(0(\.0)?, inf\)"]),
        (BackpropRegressor, Huber(delta=-1.0), ["'delta'"]),
    ],
)
def test_bad_loss_raises_at_fit(Estimator, loss, accepted):
    X, y = _data(Estimator)
    est = Estimator(loss=loss, hidden_layer_sizes=(3,), max_iter=2)
    with pytest.raises((ValueError, TypeError)) as excinfo:
        est.fit(X, y)
    message = str(excinfo.value)
    if not isinstance(loss, Huber):
        assert "'loss'" in message
    for part in accepted:
        assert re.search(part, message), f"{part!r} not in {message!r}"


def test_unknown_nested_parameter_names_the_valid_ones():
    est = BackpropClassifier(optimizer=Adam())
    with pytest.raises(ValueError, match=r"'beta1'.*Adam.*beta_1.*beta_2.*epsilon"):
        est.set_params(optimizer__beta1=0.5)


# -- bad data -----------------------------------------------------------------


def _bad_data_cases():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(20, 3))
    y_clf = (X[:, 0] > 0).astype(int)
    y_reg = X[:, 0]
    X_nan, X_inf = X.copy(), X.copy()
    X_nan[2, 1], X_inf[5, 0] = np.nan, np.inf
    y_nan, y_inf = y_reg.copy(), y_reg.copy()
    y_nan[3], y_inf[4] = np.nan, -np.inf
    sw_nan = np.ones(20)
    sw_nan[3] = np.nan
    sw_neg = np.ones(20)
    sw_neg[3] = -1.0
    # id -> (estimator, X, y, sample_weight, regex the message must match)
    return (
        {
            "X-1d": ("both", X[:, 0], None, None, "Expected 2D array"),
            "X-3d": ("both", X[:, :, None], None, None, "dim 3"),
            "X-y-lengths": (
                "both",
                X,
                "short",
                None,
                r"inconsistent numbers of samples: \[20, 19\]",
            ),
            "X-no-samples": ("both", X[:0], "empty", None, "0 sample"),
            "X-no-features": ("both", X[:, :0], None, None, "0 feature"),
            "X-nan": ("both", X_nan, None, None, "X contains NaN"),
            "X-inf": ("both", X_inf, None, None, "X contains infinity"),
            "X-nan-csr": (
                "both",
                sparse.csr_matrix(X_nan),
                None,
                None,
                "X contains NaN",
            ),
            "X-str": ("both", np.full((20, 3), "a"), None, None, "could not convert"),
            "X-complex": ("both", X + 1j, None, None, "Complex data not supported"),
            "y-3d": (BackpropRegressor, X, y_reg[:, None, None], None, "dim 3"),
            "y-nan": (BackpropRegressor, X, y_nan, None, "y contains NaN"),
            "y-inf": (BackpropRegressor, X, y_inf, None, "y contains infinity"),
            "y-nan-classifier": (BackpropClassifier, X, y_nan, None, "y contains NaN"),
            "y-continuous-classifier": (
                BackpropClassifier,
                X,
                y_reg,
                None,
                "Unknown label type",
            ),
            "y-one-class": (
                BackpropClassifier,
                X,
                np.zeros(20, int),
                None,
                "at least 2 classes",
            ),
            "sample_weight-length": (
                "both",
                X,
                None,
                np.ones(19),
                r"sample_weight.*\(19,\).*\(20,\)",
            ),
            "sample_weight-2d": ("both", X, None, np.ones((20, 2)), "1D array"),
            "sample_weight-nan": (
                "both",
                X,
                None,
                sw_nan,
                "sample_weight contains NaN",
            ),
            "sample_weight-negative": (
                "both",
                X,
                None,
                sw_neg,
                "Negative values.*sample_weight",
            ),
            "sample_weight-all-zero": (
                "both",
                X,
                None,
                np.zeros(20),
                "non-zero|sum to zero",
            ),
        },
        y_clf,
        y_reg,
    )


BAD_DATA, _Y_CLF, _Y_REG = _bad_data_cases()


@pytest.mark.parametrize("case", BAD_DATA)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_data_raises_value_error_at_fit(Estimator, case):
    which, X, y, sample_weight, pattern = BAD_DATA[case]
    if which != "both" and which is not Estimator:
        return  # this case is about the other estimator's targets
    default_y = _Y_CLF if Estimator is BackpropClassifier else _Y_REG
    if y is None:
        y = default_y
    elif isinstance(y, str):
        y = default_y[:19] if y == "short" else default_y[:0]
    est = Estimator(hidden_layer_sizes=(3,), max_iter=2)
    with pytest.raises(ValueError, match=pattern):
        est.fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_bad_data_at_prediction(Estimator):
    X, y = _data(Estimator)
    est = _quiet_fit(Estimator(hidden_layer_sizes=(3,), max_iter=2), X, y)
    methods = ["predict", "transform"] + (
        ["predict_proba", "predict_log_proba", "decision_function"]
        if Estimator is BackpropClassifier
        else []
    )
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    for method in methods:
        with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 3"):
            getattr(est, method)(X[:, :2])
        with pytest.raises(ValueError, match="X contains NaN"):
            getattr(est, method)(X_nan)
        with pytest.raises(ValueError, match="Expected 2D array"):
            getattr(est, method)(X[0])
    with pytest.raises(ValueError, match="X has 2 features"):
        est.partial_fit(X[:, :2], y)


def test_unfitted_estimator_says_so():
    from sklearn.exceptions import NotFittedError

    for Estimator in ESTIMATORS:
        with pytest.raises(NotFittedError):
            Estimator().predict(np.zeros((2, 3)))


# -- user-written components, end to end --------------------------------------


class Swish(Activation):
    """``z * sigmoid(beta * z)``: a user activation with a hyper-parameter."""

    def __init__(self, *, beta=1.0):
        self.beta = beta

    def forward(self, Z):
        return Z * expit(self.beta * Z)

    def derivative(self, Z, A):
        s = expit(self.beta * Z)
        return s + self.beta * Z * s * (1 - s)


class LogCosh(Loss):
    """``mean(log(cosh(raw - y)))``: a smooth robust regression loss."""

    def link(self, raw):
        return raw

    def loss(self, y, raw, sample_weight=None):
        r = raw - y
        # log(cosh(r)) = logaddexp(r, -r) - log 2, stable for large |r|
        per_sample = np.mean(np.logaddexp(r, -r) - np.log(2), axis=1)
        return float(np.average(per_sample, weights=sample_weight))

    def gradient(self, y, raw):
        return np.tanh(raw - y) / raw.shape[1]


class Brier(Loss):
    """Brier score with a softmax (or logistic, for one output) link."""

    out_activation_name = "softmax"

    def link(self, raw):
        return expit(raw) if raw.shape[1] == 1 else softmax(raw, axis=1)

    def loss(self, y, raw, sample_weight=None):
        per_sample = np.sum((self.link(raw) - y) ** 2, axis=1)
        return float(np.average(per_sample, weights=sample_weight))

    def gradient(self, y, raw):
        p = self.link(raw)
        r = p - y
        if raw.shape[1] == 1:
            return 2 * r * p * (1 - p)
        # through the softmax Jacobian: 2 p_k (r_k - sum_j r_j p_j)
        return 2 * p * (r - np.sum(r * p, axis=1, keepdims=True))


class SignSGD(Optimizer):
    """Steps of ``lr * scale * sign(g)``, with a step counter in the state."""

    def __init__(self, *, scale=1.0):
        self.scale = scale

    def init_state(self, params):
        return {"n_steps": 0}

    def step(self, params, grads, state, lr):
        state["n_steps"] += 1
        for p, g in zip(params, grads, strict=True):
            p -= float(lr) * float(self.scale) * np.sign(g)


class PlainGD(Optimizer):
    """No hyper-parameters and no ``__init__`` at all."""

    def init_state(self, params):
        return {}

    def step(self, params, grads, state, lr):
        for p, g in zip(params, grads, strict=True):
            p -= lr * g


@pytest.mark.parametrize(
    ("activation", "loss", "n_outputs"),
    [(Swish(beta=1.5), LogCosh(), 2), (Swish(), Brier(), 3), (Swish(), Brier(), 1)],
    ids=["swish-logcosh", "swish-brier-softmax", "swish-brier-logistic"],
)
def test_custom_components_gradients_match_finite_differences(
    activation, loss, n_outputs
):
    # User components go through the default in-place hooks of the base
    # classes; the whole network's gradient must still be exact.
    rng = np.random.RandomState(0)
    X = rng.normal(size=(6, 4))
    coefs, intercepts = init_params([4, 5, 3, n_outputs], activation, rng)
    if isinstance(loss, Brier):
        Y = (
            np.eye(n_outputs)[rng.randint(n_outputs, size=6)]
            if n_outputs > 1
            else rng.randint(2, size=(6, 1)).astype(float)
        )
    else:
        Y = rng.normal(size=(6, n_outputs))
    sample_weight = rng.uniform(0.5, 2, size=6)
    problem = dict(
        coefs=coefs,
        intercepts=intercepts,
        X=X,
        Y=Y,
        sample_weight=sample_weight,
        layers=activation,
        loss=loss,
        alpha=0.1,
    )
    value, cg, ig = loss_and_gradients(**problem)
    analytic = [g.copy() for g in cg + ig]
    assert value == pytest.approx(
        loss.loss(Y, _raw(coefs, intercepts, X, activation), sample_weight)
        + 0.1 / (2 * sample_weight.sum()) * sum(np.sum(W**2) for W in coefs),
        rel=1e-12,
    )
    h = 1e-5
    for param, grad in zip(coefs + intercepts, analytic, strict=True):
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            orig = param[idx]
            param[idx] = orig + h
            plus = loss_and_gradients(**problem)[0]
            param[idx] = orig - h
            minus = loss_and_gradients(**problem)[0]
            param[idx] = orig
            numeric[idx] = (plus - minus) / (2 * h)
        err = np.linalg.norm(grad - numeric) / np.linalg.norm(numeric)
        assert err <= 1e-6


def _raw(coefs, intercepts, X, activation):
    A = X
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        A = A @ W + b
        if i < len(coefs) - 1:
            A = activation.forward(A)
    return A


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_custom_components_in_a_regressor(dtype):
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(200, 3)).astype(dtype)
    Y = np.column_stack([X[:, 0] - X[:, 1], 0.5 * X[:, 2] + 0.2]).astype(dtype)
    spec = SignSGD(scale=0.5)
    reg = BackpropRegressor(
        hidden_layer_sizes=(16,),
        activation=Swish(beta=1.0),
        loss=LogCosh(),
        optimizer=spec,
        learning_rate_init=0.01,
        max_iter=150,
        random_state=0,
    )
    params = reg.get_params()
    assert params["activation__beta"] == 1.0 and params["optimizer__scale"] == 0.5
    _quiet_fit(reg, X, Y)
    assert reg.score(X, Y) > 0.9
    assert reg.predict(X).dtype == dtype and reg.coefs_[0].dtype == dtype
    # the state is the estimator's; the user's spec is untouched
    assert reg._optimizer_state["n_steps"] == reg.n_iter_
    assert vars(spec) == {"scale": 0.5}
    steps = reg._optimizer_state["n_steps"]
    reg.partial_fit(X, Y)
    assert reg._optimizer_state["n_steps"] == steps + 1
    # nested parameters of user components, and clone
    reg.set_params(activation__beta=2.0, optimizer__scale=0.1)
    cloned = clone(reg)
    assert cloned.activation.beta == 2.0 and cloned.optimizer.scale == 0.1
    assert not hasattr(cloned, "_optimizer_state")


@pytest.mark.parametrize("n_classes", [2, 3])
def test_custom_loss_and_optimizer_in_a_classifier(n_classes):
    X, y = make_blobs(150, centers=n_classes, n_features=3, random_state=0)
    X = StandardScaler().fit_transform(X)  # plain gradient descent needs it
    y = np.array(["ant", "bee", "cat"])[y]  # string labels
    clf = BackpropClassifier(
        hidden_layer_sizes=(8,),
        activation=Swish(),
        loss=Brier(),
        optimizer=PlainGD(),
        learning_rate_init=0.5,
        max_iter=200,
        random_state=0,
    )
    assert clf.get_params()["optimizer"] is clf.optimizer
    _quiet_fit(clf, X, y)
    assert clf.score(X, y) > 0.95
    proba = clf.predict_proba(X)
    assert proba.shape == (150, n_classes)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert set(clf.predict(X)) <= set(clf.classes_)


def test_custom_component_hyper_parameters_are_not_validated_unless_declared():
    # A user component without _parameter_constraints is taken as it is; one
    # that declares constraints gets them checked at fit like the built-ins.
    class Checked(Swish):
        _parameter_constraints = {"beta": [float]}

    X, y = _data(BackpropRegressor)
    _quiet_fit(
        BackpropRegressor(
            hidden_layer_sizes=(3,), activation=Swish(beta=2), max_iter=2
        ),
        X,
        y,
    )
    est = BackpropRegressor(
        hidden_layer_sizes=(3,), activation=Checked(beta=2), max_iter=2
    )
    with pytest.raises((ValueError, TypeError), match="'beta' parameter of Checked"):
        est.fit(X, y)
