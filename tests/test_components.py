"""Contract tests of the pluggable components, driven by one table.

Every registered activation, loss and optimizer (plus parameterised instances)
runs through the same generic tests: shapes, dtype kept (float32 and float64,
including the private in-place hooks the network calls, which must agree with
the public methods), finite outputs, inputs never mutated, and a toy problem
learned inside an estimator. The settled details of API.md follow, each with
its own test.
"""

import copy
import inspect
import pickle
import warnings

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import quiet_fit as _fit
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import d2_tweedie_score
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier, MLPRegressor

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.activations import (
    ACTIVATIONS,
    ELU,
    Activation,
    LeakyReLU,
    Softplus,
    get_activation,
)
from sklearn_bp.losses import LOSSES, AbsoluteError, Huber, LogLoss, Poisson, get_loss
from sklearn_bp.optimizers import (
    OPTIMIZERS,
    SGD,
    Adam,
    AdamW,
    Optimizer,
    RMSprop,
    get_optimizer,
)

# -- the table ------------------------------------------------------------------

# Activations: id -> (spec, torch reference of the same function).
_TORCH_ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": torch.sigmoid,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,  # torch's default negative_slope=0.01
    "elu": F.elu,  # torch's default alpha=1
    "softplus": F.softplus,  # torch's default beta=1
}
# Optimizers: id -> (spec, learning rate for the toy problem).
_OPTIMIZER_LR = {"sgd": 0.05, "adam": 0.01, "adamw": 0.01, "rmsprop": 0.01}

TABLE = {
    "activation": {
        **{name: (name, _TORCH_ACTIVATIONS[name]) for name in ACTIVATIONS},
        "LeakyReLU(negative_slope=0.2)": (
            LeakyReLU(negative_slope=0.2),
            lambda z: F.leaky_relu(z, 0.2),
        ),
        "ELU(alpha=0.5)": (ELU(alpha=0.5), lambda z: F.elu(z, 0.5)),
        "Softplus()": (Softplus(), F.softplus),
    },
    "loss": {
        **{name: name for name in LOSSES},
        "Huber(delta=0.3)": Huber(delta=0.3),
        "LogLoss(label_smoothing=0.1)": LogLoss(label_smoothing=0.1),
    },
    "optimizer": {
        **{name: (name, _OPTIMIZER_LR[name]) for name in OPTIMIZERS},
        "SGD(momentum=0)": (SGD(momentum=0.0, nesterov=False), 0.2),
        "SGD(momentum=0.5)": (SGD(momentum=0.5, nesterov=False), 0.05),
        "Adam(beta_1=0.8, beta_2=0.99)": (
            Adam(beta_1=0.8, beta_2=0.99, epsilon=1e-7),
            0.01,
        ),
        "RMSprop(centered, momentum)": (RMSprop(centered=True, momentum=0.5), 0.005),
        "SGD(weight_decay)": (SGD(momentum=0.5, weight_decay=1e-3), 0.05),
        "Adam(weight_decay)": (Adam(weight_decay=1e-3), 0.01),
        "AdamW(weight_decay=0.05)": (AdamW(weight_decay=0.05), 0.01),
        "RMSprop(weight_decay)": (
            RMSprop(centered=True, momentum=0.5, weight_decay=1e-3),
            0.005,
        ),
        # numpy scalars as hyper-parameters must not promote float32 to float64
        "RMSprop(numpy scalars)": (
            RMSprop(rho=np.float64(0.9), momentum=np.float64(0.3)),
            0.005,
        ),
    },
}

ACTIVATION_IDS = list(TABLE["activation"])
LOSS_IDS = list(TABLE["loss"])
OPTIMIZER_IDS = list(TABLE["optimizer"])
DTYPES = [np.float32, np.float64]


def test_table_covers_every_registered_component():
    # A newly registered component must go through the contract tests too.
    assert set(ACTIVATIONS) <= set(TABLE["activation"])
    assert set(LOSSES) <= set(TABLE["loss"])
    assert set(OPTIMIZERS) <= set(TABLE["optimizer"])


def _activation(act_id):
    return get_activation(TABLE["activation"][act_id][0])


def _optimizer(opt_id):
    return get_optimizer(TABLE["optimizer"][opt_id][0])


def _tols(dtype):
    return (
        dict(rtol=1e-5, atol=1e-6)
        if dtype == np.float32
        else dict(rtol=1e-12, atol=1e-14)
    )


# -- activations ----------------------------------------------------------------


def _activation_input(dtype, seed=0):
    rng = np.random.RandomState(seed)
    Z = rng.normal(scale=3, size=(6, 7))
    # exact zeros (the kinks) and large magnitudes that overflow naive formulas
    Z[0, :5] = [0.0, -0.0, 1e3, -1e3, 88.0]
    Z[1, :2] = [-88.0, 40.0]
    return Z.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act_id", ACTIVATION_IDS)
def test_activation_contract(act_id, dtype):
    act = _activation(act_id)
    Z = _activation_input(dtype)
    Z0 = Z.copy()
    tols = _tols(dtype)
    with np.errstate(
        over="raise", invalid="raise", divide="raise"
    ):  # no overflow or invalid value anywhere
        A = act.forward(Z)
        A0 = A.copy()
        D = act.derivative(Z, A)

        for name, arr in [("forward", A), ("derivative", D)]:
            assert arr.shape == Z.shape, name
            assert arr.dtype == dtype, name
            assert np.all(np.isfinite(arr)), name
        np.testing.assert_array_equal(Z, Z0)
        np.testing.assert_array_equal(A, A0)

        # the in-place hooks the network calls agree with the public methods
        out = np.full_like(Z, np.nan)
        result = act._forward_into(Z, out)
        assert result.dtype == dtype
        np.testing.assert_allclose(result, A, **tols)
        np.testing.assert_array_equal(Z, Z0)

        aliased = Z.copy()  # prediction computes in place: out is Z itself
        result = act._forward_into(aliased, aliased)
        np.testing.assert_allclose(result, A, **tols)

        delta0 = np.random.RandomState(1).normal(size=Z.shape).astype(dtype)
        expected = delta0 * D
        # The network may hand the hook a scratch buffer holding garbage.
        scratches = [None]
        if "scratch" in inspect.signature(act._backprop_into).parameters:
            scratches.append(np.full_like(Z, np.nan))
        for scratch in scratches:
            kwargs = {} if scratch is None else {"scratch": scratch}
            result = act._backprop_into(Z, A, delta0.copy(), **kwargs)
            assert result.dtype == dtype and result.shape == Z.shape
            np.testing.assert_allclose(result, expected, **tols)
            np.testing.assert_array_equal(Z, Z0)
            np.testing.assert_array_equal(A, A0)


@pytest.mark.parametrize("act_id", ACTIVATION_IDS)
def test_activation_derivative_matches_finite_differences(act_id):
    act = _activation(act_id)
    Z = np.linspace(-4, 4, 81).reshape(9, 9)
    Z = Z[np.abs(Z) > 1e-3].reshape(1, -1)  # the kink at 0 has no derivative
    h = 1e-6
    numeric = (act.forward(Z + h) - act.forward(Z - h)) / (2 * h)
    np.testing.assert_allclose(
        act.derivative(Z, act.forward(Z)), numeric, rtol=1e-7, atol=1e-9
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act_id", ACTIVATION_IDS)
def test_activation_matches_torch(act_id, dtype):
    # Forward values and derivatives (torch autograd, including its choice at
    # z = 0) equal torch.nn.functional's, also for |z| = 1000.
    act = _activation(act_id)
    torch_fn = TABLE["activation"][act_id][1]
    Z = _activation_input(dtype)
    Zt = torch.tensor(Z, requires_grad=True)
    At = torch_fn(Zt)
    At.sum().backward()
    A = act.forward(Z)
    np.testing.assert_allclose(A, At.detach().numpy(), **_tols(dtype))
    np.testing.assert_allclose(act.derivative(Z, A), Zt.grad.numpy(), **_tols(dtype))


# -- losses -----------------------------------------------------------------------

# (loss id, target type for LogLoss._for_target, n_outputs)
LOSS_CASES = [
    (loss_id, target_type, k)
    for loss_id in LOSS_IDS
    for target_type, k in (
        [("binary", 1), ("multiclass", 3), ("multilabel-indicator", 3)]
        if isinstance(get_loss(TABLE["loss"][loss_id]), LogLoss)
        else [(None, 1), (None, 3)]
    )
]
LOSS_CASE_IDS = [f"{a}-{b or k}" for a, b, k in LOSS_CASES]


def _loss(loss_id, target_type):
    loss = get_loss(TABLE["loss"][loss_id])
    if target_type is not None:
        loss = loss._for_target(target_type)
    return loss


def _target(loss, target_type, raw, rng):
    n, k = raw.shape
    if isinstance(loss, LogLoss):
        if target_type == "multiclass":
            return np.eye(k)[rng.randint(k, size=n)]
        return rng.randint(2, size=(n, k)).astype(float)
    if isinstance(loss, Poisson):
        return rng.poisson(2.0, size=(n, k)).astype(float)
    # away from every kink: |raw - y| not near 0, 0.3 (Huber(0.3)) or 1 (huber)
    magnitude = rng.choice([0.15, 0.6, 1.6], size=(n, k)) + rng.uniform(
        -0.05, 0.05, (n, k)
    )
    return raw - magnitude * rng.choice([-1.0, 1.0], size=(n, k))


def _loss_problem(loss_id, target_type, k, dtype, seed=0):
    rng = np.random.RandomState(seed)
    loss = _loss(loss_id, target_type)
    raw = rng.normal(scale=2, size=(8, k))
    y = _target(loss, target_type, raw, rng)
    sample_weight = rng.uniform(0.1, 2, size=8)
    sample_weight[0] = 0.0
    return loss, y.astype(dtype), raw.astype(dtype), sample_weight.astype(dtype)


@pytest.mark.parametrize("weighted", [False, True], ids=["nosw", "sw"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("loss_id", "target_type", "k"), LOSS_CASES, ids=LOSS_CASE_IDS)
def test_loss_contract(loss_id, target_type, k, dtype, weighted):
    loss, y, raw, sw = _loss_problem(loss_id, target_type, k, dtype)
    sw = sw if weighted else None
    inputs = [a.copy() for a in (y, raw) + ((sw,) if weighted else ())]
    tols = _tols(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        pred = loss.link(raw)
        value = loss.loss(y, raw, sw)
        grad = loss.gradient(y, raw)
    for name, arr in [("link", pred), ("gradient", grad)]:
        assert arr.shape == raw.shape, name
        assert arr.dtype == dtype, name
        assert np.all(np.isfinite(arr)), name
    assert isinstance(value, float) and np.isfinite(value)
    for a, a0 in zip((y, raw) + ((sw,) if weighted else ()), inputs, strict=True):
        np.testing.assert_array_equal(a, a0)

    # The fast path the network calls: the same value, and the delta
    # w_i * grad_i / sum(w) written into `out` -- also when `out` is `raw`.
    weight_sum = raw.shape[0] if sw is None else float(np.sum(sw))
    scale = np.full(raw.shape[0], 1.0 / raw.shape[0]) if sw is None else sw / weight_sum
    expected_delta = grad * scale[:, None].astype(dtype)
    for aliased in (False, True):
        raw_copy = raw.copy()
        out = raw_copy if aliased else np.full_like(raw, np.nan)
        fast_value = loss._loss_and_delta(y, raw_copy, sw, weight_sum, out)
        assert out.dtype == dtype
        assert fast_value == pytest.approx(value, rel=tols["rtol"], abs=tols["atol"])
        np.testing.assert_allclose(out, expected_delta, **tols)
        if not aliased:
            np.testing.assert_array_equal(raw_copy, raw)
        np.testing.assert_array_equal(y, inputs[0])

    # log_link is log(link) wherever the latter is a positive number
    positive = pred > 0
    log_pred = loss.log_link(raw)
    assert log_pred.shape == raw.shape and log_pred.dtype == dtype
    np.testing.assert_allclose(
        log_pred[positive],
        np.log(pred[positive]),
        rtol=1e-5 if dtype == np.float32 else 1e-10,
    )


@pytest.mark.parametrize(("loss_id", "target_type", "k"), LOSS_CASES, ids=LOSS_CASE_IDS)
def test_loss_gradient_matches_finite_differences(loss_id, target_type, k):
    # gradient() is per sample: d loss / d raw_ij == gradient_ij / n_samples
    loss, y, raw, _ = _loss_problem(loss_id, target_type, k, np.float64, seed=1)
    h = 1e-6
    numeric = np.empty_like(raw)
    for idx in np.ndindex(raw.shape):
        plus, minus = raw.copy(), raw.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (loss.loss(y, plus) - loss.loss(y, minus)) / (2 * h)
    np.testing.assert_allclose(
        loss.gradient(y, raw) / raw.shape[0], numeric, rtol=1e-6, atol=1e-10
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("loss_id", "target_type", "k"), LOSS_CASES, ids=LOSS_CASE_IDS)
def test_loss_finite_for_extreme_raw_outputs(loss_id, target_type, k, dtype):
    loss, y, raw, sw = _loss_problem(loss_id, target_type, k, dtype, seed=2)
    # Poisson's exp link is meant to overflow far out (predict then raises);
    # within float range its value and gradient must stay finite.
    big = 40.0 if isinstance(loss, Poisson) else 1e3
    raw = np.where(np.arange(raw.size).reshape(raw.shape) % 2, big, -big).astype(dtype)
    value = loss.loss(y, raw, sw)
    out = np.empty_like(raw)
    fast_value = loss._loss_and_delta(y, raw, sw, float(np.sum(sw)), out)
    assert np.isfinite(value) and np.isfinite(fast_value)
    assert np.all(np.isfinite(loss.gradient(y, raw))) and np.all(np.isfinite(out))
    if isinstance(loss, LogLoss):
        assert np.all(np.isfinite(loss.log_link(raw)))  # never log of a rounded 0


# -- optimizers ------------------------------------------------------------------


def _spec_snapshot(spec):
    return copy.deepcopy(vars(spec))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_id", OPTIMIZER_IDS)
def test_optimizer_contract(opt_id, dtype):
    opt = _optimizer(opt_id)
    snapshot = _spec_snapshot(opt)
    rng = np.random.RandomState(0)
    params = [rng.normal(size=(4, 3)).astype(dtype), rng.normal(size=3).astype(dtype)]
    start = [p.copy() for p in params]
    ids = [id(p) for p in params]
    state = opt.init_state(params)
    pickle.loads(pickle.dumps(state))  # the state is picklable (documented)
    for _ in range(3):
        grads = [rng.normal(size=p.shape).astype(dtype) for p in params]
        opt.step(params, grads, state, np.float64(0.01))  # numpy lr must not upcast
    assert [id(p) for p in params] == ids  # updated in place: they are coefs_
    for p, p0 in zip(params, start, strict=True):
        assert p.dtype == dtype and p.shape == p0.shape
        assert np.all(np.isfinite(p))
        assert not np.array_equal(p, p0)
    # every buffer in the state has the parameters' dtype and shapes
    buffers = [v for v in state.values() if isinstance(v, list)]
    for group in buffers:
        assert [b.shape for b in group] == [p.shape for p in params]
        assert all(b.dtype == dtype for b in group)
    # the spec holds hyper-parameters only, before and after
    assert _spec_snapshot(opt) == snapshot
    assert set(vars(opt)) == set(opt.get_params())


@pytest.mark.parametrize("opt_id", OPTIMIZER_IDS)
def test_optimizer_minimises_a_quadratic(opt_id):
    opt = _optimizer(opt_id)
    if "weight_decay" in opt.get_params():
        # weight decay moves the minimum away from the target
        opt.set_params(weight_decay=0.0)
    target = [np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([-1.0, 0.25])]
    params = [np.zeros_like(t) for t in target]
    state = opt.init_state(params)
    lr = TABLE["optimizer"][opt_id][1]
    for _ in range(2000):
        grads = [p - t for p, t in zip(params, target, strict=True)]
        opt.step(params, grads, state, lr)
    for p, t in zip(params, target, strict=True):
        np.testing.assert_allclose(p, t, atol=1e-2)


# -- a toy problem learned inside an estimator ----------------------------------


def _regression_data(dtype, n=200):
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    return X.astype(dtype), y.astype(dtype)


def _check_dtype_kept(est, X, dtype):
    assert all(W.dtype == dtype for W in est.coefs_ + est.intercepts_)
    assert est.predict(X).dtype == (
        dtype if isinstance(est, BackpropRegressor) else int
    )
    for v in est._optimizer_state.values():
        for b in v if isinstance(v, list) else []:
            assert b.dtype == dtype


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act_id", ACTIVATION_IDS)
def test_toy_problem_learned_with_each_activation(act_id, dtype):
    X, y = _regression_data(dtype)
    reg = BackpropRegressor(
        hidden_layer_sizes=(16,),
        activation=TABLE["activation"][act_id][0],
        learning_rate_init=0.02,
        max_iter=200,
        random_state=0,
    )
    _fit(reg, X, y)
    assert reg.score(X, y) > 0.95
    _check_dtype_kept(reg, X, dtype)


_TOY = dict(
    hidden_layer_sizes=(16,), learning_rate_init=0.02, max_iter=200, random_state=0
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss_id", LOSS_IDS)
def test_toy_problem_learned_with_each_loss(loss_id, dtype):
    spec = TABLE["loss"][loss_id]
    loss = get_loss(spec)
    X, y = _regression_data(dtype)
    if isinstance(loss, LogLoss):
        Xb, yb = make_blobs(200, centers=2, n_features=3, random_state=0)
        Xm, ym = make_blobs(
            200, centers=4, n_features=3, cluster_std=0.5, random_state=0
        )
        Y_multilabel = (X + 0.2 * X[:, [1, 2, 0]] > 0).astype(int)
        for X_, y_ in [(Xb, yb), (Xm, ym), (X, Y_multilabel)]:
            X_ = X_.astype(dtype)
            clf = _fit(BackpropClassifier(loss=spec, **_TOY), X_, y_)
            assert clf.score(X_, y_) > 0.95  # subset accuracy for multilabel
            assert clf.predict_proba(X_).dtype == dtype
            _check_dtype_kept(clf, X_, dtype)
        return
    if isinstance(loss, Poisson):
        mean = np.exp(1 + X @ np.array([1.0, -0.5, 0.5]))
        y = np.random.RandomState(0).poisson(mean).astype(dtype)
        reg = _fit(BackpropRegressor(loss=spec, **_TOY), X, y)
        # the predicted means are close to the true ones
        assert d2_tweedie_score(mean, reg.predict(X), power=1) > 0.9
    else:
        reg = _fit(BackpropRegressor(loss=spec, **_TOY), X, y)
        assert reg.score(X, y) > 0.95
    assert np.isfinite(reg.loss_) and reg.loss_curve_[-1] < reg.loss_curve_[0]
    _check_dtype_kept(reg, X, dtype)


@pytest.mark.parametrize("loss_id", ["absolute_error", "huber", "Huber(delta=0.3)"])
def test_robust_losses_resist_outliers(loss_id):
    # What the robust losses are for: 10% gross outliers barely move them,
    # while they pull the squared error well away from the clean function.
    X, y_clean = _regression_data(np.float64)
    y = y_clean.copy()
    y[::10] += 5 * np.random.RandomState(0).standard_normal(20)
    robust = _fit(BackpropRegressor(loss=TABLE["loss"][loss_id], **_TOY), X, y)
    squared = _fit(BackpropRegressor(loss="squared_error", **_TOY), X, y)
    assert robust.score(X, y_clean) > 0.98
    assert robust.score(X, y_clean) > squared.score(X, y_clean) + 0.05


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opt_id", OPTIMIZER_IDS)
def test_toy_problem_learned_with_each_optimizer(opt_id, dtype):
    spec, lr = TABLE["optimizer"][opt_id]
    X, y = make_blobs(200, centers=3, n_features=4, random_state=0)
    X = X.astype(dtype)
    clf = BackpropClassifier(
        hidden_layer_sizes=(16,),
        optimizer=spec,
        learning_rate_init=lr,
        batch_size=50,
        max_iter=100,
        random_state=0,
    )
    _fit(clf, X, y)
    assert clf.score(X, y) > 0.95
    assert clf.loss_ < 0.3
    _check_dtype_kept(clf, X, dtype)
    Xr, yr = _regression_data(dtype)
    reg = _fit(
        BackpropRegressor(
            hidden_layer_sizes=(16,),
            optimizer=spec,
            learning_rate_init=lr,
            batch_size=50,
            max_iter=100,
            random_state=0,
        ),
        Xr,
        yr,
    )
    assert reg.score(Xr, yr) > 0.95


# -- settled details of API.md ----------------------------------------------------


def test_leaky_relu_default_slope_is_torchs():
    act = get_activation("leaky_relu")
    assert act.negative_slope == 0.01 == LeakyReLU().negative_slope
    Z = np.array([[-3.0, -0.5, 0.0, 2.0]])
    np.testing.assert_array_equal(act.forward(Z), [[-0.03, -0.005, 0.0, 2.0]])
    np.testing.assert_array_equal(
        act.derivative(Z, act.forward(Z)), [[0.01, 0.01, 0.01, 1.0]]
    )
    np.testing.assert_allclose(
        act.forward(Z), torch.nn.LeakyReLU()(torch.from_numpy(Z)).numpy(), rtol=0
    )


def test_elu_default_alpha_is_one():
    act = get_activation("elu")
    assert act.alpha == 1.0 == ELU().alpha
    Z = np.array([[-30.0, -1.0, 0.0, 2.0]])
    np.testing.assert_allclose(
        act.forward(Z), [[np.expm1(-30.0), np.expm1(-1.0), 0.0, 2.0]], rtol=1e-15
    )
    np.testing.assert_allclose(
        act.forward(Z), torch.nn.ELU()(torch.from_numpy(Z)).numpy(), rtol=1e-15
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_softplus_is_stable(dtype):
    Z = np.array([[-1e4, -800.0, -50.0, 0.0, 50.0, 800.0, 1e4]], dtype=dtype)
    act = get_activation("softplus")
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        A = act.forward(Z)
        D = act.derivative(Z, A)
    assert A.dtype == dtype and np.all(np.isfinite(A)) and np.all(A >= 0)
    np.testing.assert_allclose(
        A,
        torch.nn.Softplus()(torch.from_numpy(Z)).numpy(),
        rtol=1e-6 if dtype == np.float32 else 1e-12,
    )
    np.testing.assert_allclose(A[0, 4:], Z[0, 4:], rtol=1e-6)  # ~z for large z, not inf
    np.testing.assert_allclose(
        D[0], [0, 0, np.exp(-50.0), 0.5, 1, 1, 1], rtol=1e-6, atol=0
    )


def test_huber_default_delta_is_one():
    loss = get_loss("huber")
    assert loss.delta == 1.0 == Huber().delta
    rng = np.random.RandomState(0)
    y = rng.normal(size=(50, 2))
    raw = y + rng.uniform(-3, 3, size=(50, 2))  # both sides of |r| = 1
    expected = F.huber_loss(torch.from_numpy(raw), torch.from_numpy(y)).item()
    assert loss.loss(y, raw) == pytest.approx(expected, rel=1e-13)
    expected_03 = F.huber_loss(
        torch.from_numpy(raw), torch.from_numpy(y), delta=0.3
    ).item()
    assert Huber(delta=0.3).loss(y, raw) == pytest.approx(expected_03, rel=1e-13)


def test_absolute_error_subgradient_is_zero_at_equality():
    loss = get_loss("absolute_error")
    y = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    raw = np.array([[1.0, 3.0], [3.0, -2.0], [0.5, 0.5]])
    np.testing.assert_array_equal(loss.gradient(y, raw), [[0, 0.5], [0, -0.5], [0, 0]])
    out = np.empty_like(raw)
    loss._loss_and_delta(y, raw, None, 3, out)
    np.testing.assert_array_equal(out, [[0, 0.5 / 3], [0, -0.5 / 3], [0, 0]])
    assert isinstance(loss, AbsoluteError)


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
def test_poisson_negative_target_raises(method):
    X = np.random.RandomState(0).normal(size=(20, 2))
    y = np.abs(X[:, 0])
    y[3] = -0.5
    reg = BackpropRegressor(loss="poisson", hidden_layer_sizes=(3,), max_iter=2)
    with pytest.raises(ValueError, match="non-negative"):
        getattr(reg, method)(X, y)
    with pytest.raises(ValueError, match="non-negative"):
        BackpropRegressor(loss=Poisson(), max_iter=2).fit(X, y)


def _manual_raw(est, X):
    """Raw network output computed from the public coefs_/intercepts_ (ReLU)."""
    A = X
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_, strict=True)):
        A = A @ W + b
        if i < len(est.coefs_) - 1:
            A = np.maximum(A, 0)
    return A


def test_poisson_predicts_exp_of_raw_output():
    rng = np.random.RandomState(0)
    X = rng.uniform(-1, 1, size=(100, 2))
    y = rng.poisson(np.exp(X[:, 0])).astype(float)
    reg = _fit(
        BackpropRegressor(
            loss="poisson", hidden_layer_sizes=(5,), max_iter=20, random_state=0
        ),
        X,
        y,
    )
    assert reg.out_activation_ == "exp"
    np.testing.assert_allclose(
        reg.predict(X), np.exp(_manual_raw(reg, X)).ravel(), rtol=1e-12
    )
    assert np.all(reg.predict(X) > 0)


def test_nested_parameters():
    est = BackpropClassifier(
        activation=LeakyReLU(negative_slope=0.1),
        optimizer=Adam(beta_1=0.8),
    )
    params = est.get_params()
    assert params["optimizer__beta_1"] == 0.8
    assert params["optimizer__beta_2"] == 0.999
    assert params["activation__negative_slope"] == 0.1
    assert "optimizer__beta_1" not in est.get_params(deep=False)

    est.set_params(optimizer__beta_1=0.5, activation__negative_slope=0.2)
    assert est.optimizer.beta_1 == 0.5 and est.activation.negative_slope == 0.2
    # an instance and its nested parameter in one call, in either order
    est.set_params(optimizer__epsilon=1e-6, optimizer=RMSprop())
    assert est.optimizer == RMSprop(epsilon=1e-6)
    reg = BackpropRegressor(loss=Huber()).set_params(loss__delta=0.3)
    assert reg.get_params()["loss__delta"] == 0.3


def test_nested_parameter_is_used_by_fit():
    X, y = make_blobs(60, centers=2, random_state=0)
    common = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    a = _fit(
        BackpropClassifier(optimizer=Adam(), **common).set_params(
            optimizer__beta_1=0.5
        ),
        X,
        y,
    )
    b = _fit(BackpropClassifier(optimizer=Adam(beta_1=0.5), **common), X, y)
    c = _fit(BackpropClassifier(optimizer=Adam(), **common), X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])


@pytest.mark.parametrize(
    ("param", "value", "nested"),
    [
        ("optimizer", "adam", "optimizer__beta_1"),
        ("optimizer", "sgd", "optimizer__momentum"),
        ("activation", "leaky_relu", "activation__negative_slope"),
        ("loss", "huber", "loss__delta"),
    ],
)
def test_nested_parameter_of_a_name_raises(param, value, nested):
    Estimator = BackpropClassifier if param != "loss" else BackpropRegressor
    est = Estimator(**{param: value})
    with pytest.raises(ValueError, match=rf"(?s){nested}.*instance"):
        est.set_params(**{nested: 0.5})
    assert getattr(est, param) == value  # nothing was half-set


def test_search_over_nested_parameters_never_touches_the_users_spec():
    spec = Adam(beta_1=0.9)
    X, y = make_blobs(60, centers=2, random_state=0)
    est = BackpropClassifier(
        hidden_layer_sizes=(4,), optimizer=spec, max_iter=3, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(est, {"optimizer__beta_1": [0.5, 0.7]}, cv=2).fit(X, y)
    assert search.best_estimator_.optimizer.beta_1 in (0.5, 0.7)
    assert spec.beta_1 == 0.9 and est.optimizer is spec


def test_clone_does_not_carry_optimizer_state():
    X, y = make_blobs(60, centers=2, random_state=0)
    spec = RMSprop(momentum=0.5)
    est = _fit(
        BackpropClassifier(hidden_layer_sizes=(4,), optimizer=spec, max_iter=3), X, y
    )
    assert est._optimizer_state["step"] > 0
    cloned = clone(est)
    assert cloned.optimizer == spec and cloned.optimizer is not spec
    assert set(vars(cloned.optimizer)) == set(spec.get_params())
    assert not any(k.endswith("_") or k.startswith("_optimizer") for k in vars(cloned))
    assert joblib.hash(cloned.get_params()) == joblib.hash(est.get_params())


# -- initial weights --------------------------------------------------------------

_RECORDED = []


def _recording(spec):
    """The same optimizer, recording the parameters it is initialised with."""
    base = type(get_optimizer(spec))

    class Recording(base):
        def init_state(self, params):
            _RECORDED.append([p.copy() for p in params])
            return super().init_state(params)

    return Recording(**get_optimizer(spec).get_params())


def _initial_weights(est, X, y):
    _RECORDED.clear()
    est = clone(est).set_params(optimizer=_recording(est.optimizer), max_iter=1)
    _fit(est, X, y)
    assert len(_RECORDED) == 1
    return _RECORDED[0]


@pytest.mark.parametrize("activation", ["relu", "logistic", "softplus"])
def test_initial_weights_depend_only_on_seed_architecture_activation(activation):
    X, y = make_blobs(50, centers=3, n_features=4, random_state=0)
    base = BackpropClassifier(
        hidden_layer_sizes=(6, 5), activation=activation, random_state=3
    )
    reference = _initial_weights(base, X, y)
    variants = [
        dict(optimizer=opt, learning_rate_init=lr, alpha=alpha, batch_size=bs)
        for opt, lr, alpha, bs in [
            ("sgd", 0.5, 0.0, 10),
            (Adam(beta_1=0.5), 1e-5, 1.0, "auto"),
            (RMSprop(centered=True, momentum=0.9), 0.1, 1e-4, 7),
        ]
    ]
    for params in variants:
        weights = _initial_weights(clone(base).set_params(**params), X, y)
        for w, r in zip(weights, reference, strict=True):
            np.testing.assert_array_equal(w, r)
    # ... and they do depend on the seed and on the activation
    other_seed = _initial_weights(clone(base).set_params(random_state=4), X, y)
    assert not np.array_equal(other_seed[0], reference[0])


def _mlp_initial_weights(mlp, X, y):
    # A learning rate of 1e-300 moves no weight by even one ulp, so MLP's
    # weights after one plain-SGD epoch are its initial weights.
    mlp = clone(mlp).set_params(
        solver="sgd", momentum=0.0, learning_rate_init=1e-300, max_iter=1
    )
    _fit(mlp, X, y)
    return mlp.coefs_ + mlp.intercepts_


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_initial_weights_equal_mlp(task, activation, dtype):
    X, y = make_blobs(
        40, centers=2 if task == "binary" else 3, n_features=3, random_state=0
    )
    X = X.astype(dtype)
    common = dict(hidden_layer_sizes=(5, 4), activation=activation, random_state=7)
    if task == "regression":
        y = np.column_stack([X[:, 0], X[:, 1]])
        ours, mlp = BackpropRegressor(**common), MLPRegressor(**common)
    else:
        ours, mlp = BackpropClassifier(**common), MLPClassifier(**common)
    ours_w = _initial_weights(ours, X, y)
    mlp_w = _mlp_initial_weights(mlp, X, y)
    assert [w.shape for w in ours_w] == [w.shape for w in mlp_w]
    for w, m in zip(ours_w, mlp_w, strict=True):
        assert w.dtype == dtype
        np.testing.assert_array_equal(w, m)


def test_activation_instance_and_name_give_the_same_network():
    X, y = make_blobs(60, centers=2, random_state=0)
    common = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    a = _fit(BackpropClassifier(activation="elu", **common), X, y)
    b = _fit(BackpropClassifier(activation=ELU(), **common), X, y)
    for Wa, Wb in zip(a.coefs_, b.coefs_, strict=True):
        np.testing.assert_array_equal(Wa, Wb)
    assert isinstance(get_activation("sigmoid"), type(get_activation("logistic")))
    assert isinstance(get_activation(ELU()), Activation)
    assert isinstance(get_optimizer("adam"), Optimizer)


# -- subclasses of the built-ins --------------------------------------------------

_ACTIVATION_CLASSES = sorted(
    {type(get_activation(name)) for name in ACTIVATIONS}, key=lambda c: c.__name__
)
_LOSS_CLASSES = sorted(
    {type(get_loss(name)) for name in LOSSES}, key=lambda c: c.__name__
)


@pytest.mark.parametrize("base", _ACTIVATION_CLASSES, ids=lambda c: c.__name__)
def test_subclass_of_a_builtin_activation_trains_with_its_own_methods(base):
    # forward/derivative are the documented extension points: a subclass that
    # redefines them must not be trained through the parent's fast hooks.
    class Doubled(base):
        def forward(self, Z):
            return 2 * super().forward(Z)

        def derivative(self, Z, A):
            return 2 * super().derivative(Z, super().forward(Z))

    act = Doubled()
    Z = np.random.RandomState(0).normal(scale=3, size=(6, 7))
    A = act.forward(Z)
    np.testing.assert_allclose(act._forward_into(Z, np.empty_like(Z)), A, rtol=1e-15)
    delta = np.random.RandomState(1).normal(size=Z.shape)
    np.testing.assert_allclose(
        act._backprop_into(Z, A, delta.copy()), delta * act.derivative(Z, A), rtol=1e-15
    )


@pytest.mark.parametrize("base", _LOSS_CLASSES, ids=lambda c: c.__name__)
def test_subclass_of_a_builtin_loss_trains_with_its_own_methods(base):
    class Doubled(base):
        def loss(self, y, raw, sample_weight=None):
            return 2 * super().loss(y, raw, sample_weight)

        def gradient(self, y, raw):
            return 2 * super().gradient(y, raw)

    loss = Doubled()
    target_type = "multiclass" if isinstance(loss, LogLoss) else None
    loss = loss._for_target(target_type)
    rng = np.random.RandomState(0)
    raw = rng.normal(size=(8, 3))
    y = _target(loss, target_type, raw, rng)
    sw = rng.uniform(0.5, 2, size=8)
    out = np.empty_like(raw)
    value = loss._loss_and_delta(y, raw, sw, sw.sum(), out)
    assert value == pytest.approx(loss.loss(y, raw, sw), rel=1e-12)
    np.testing.assert_allclose(
        out, loss.gradient(y, raw) * (sw / sw.sum())[:, None], rtol=1e-12
    )


class _ReLU6(get_activation("relu").__class__):
    """ReLU clipped at 6, as a user would derive it from the built-in."""

    def forward(self, Z):
        return np.clip(Z, 0, 6)

    def derivative(self, Z, A):
        return ((Z > 0) & (Z < 6)).astype(Z.dtype)


def test_subclass_of_a_builtin_activation_in_an_estimator():
    rng = np.random.RandomState(0)
    X = rng.uniform(-20, 20, size=(100, 2))
    y = np.abs(X[:, 0]) - X[:, 1]
    reg = _fit(
        BackpropRegressor(
            hidden_layer_sizes=(8,), activation=_ReLU6(), max_iter=5, random_state=0
        ),
        X,
        y,
    )
    # predictions go through the subclass's forward (the clip at 6 matters here)
    W, b = reg.coefs_, reg.intercepts_
    hidden = X @ W[0] + b[0]
    assert hidden.max() > 6
    expected = np.clip(hidden, 0, 6) @ W[1] + b[1]
    np.testing.assert_allclose(reg.predict(X), expected.ravel(), rtol=1e-12)
