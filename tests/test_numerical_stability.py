"""Activations, output links and losses at extreme raw values, against mpmath.

Every built-in component is evaluated at raw values of +-1e4 and far beyond
(up to +-1e300 in float64, +-3e38 in float32), in both float dtypes, and
compared with a 60-digit mpmath reference: the result must be finite (where the
true value is representable) and accurate to a few units in the last place,
relative to the true value. Absolute accuracy (a few eps of the function's
scale) is asked only of the derivatives that are computed from the activation's
output (logistic, tanh), where the relative error of a tiny slope is not
recoverable from ``A`` and does not matter to backpropagation.
"""

import warnings

import mpmath as mp
import numpy as np
import pytest

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.activations import (
    ELU,
    Identity,
    LeakyReLU,
    Logistic,
    ReLU,
    Softplus,
    Tanh,
)
from sklearn_bp.losses import AbsoluteError, Huber, LogLoss, Poisson, SquaredError

mp.mp.dps = 60

RAW = {
    np.float64: [-1e300, -1e10, -1e5, -1e4, -745.0, -710.0, -40.0, -20.0, -1.0, -1e-10,
                 0.0, 1e-10, 1.0, 20.0, 40.0, 710.0, 1e4, 1e5, 1e10, 1e300],
    np.float32: [-3e38, -1e10, -1e5, -1e4, -104.0, -88.0, -20.0, -1.0, -1e-10,
                 0.0, 1e-10, 1.0, 20.0, 88.0, 89.0, 1e4, 1e5, 1e10, 3e38],
}
DTYPES = [np.float64, np.float32]
ULPS = 8  # relative tolerance, in units of the dtype's eps


def _mp(x):
    return mp.mpf(float(x))


def assert_accurate(got, refs, dtype, *, ulps=ULPS, scale=None, what=""):
    """``|got - ref| <= ulps * eps * (|ref| or scale) + tiny`` for every entry.

    The error is computed in mpmath, so a huge reference cannot overflow it.
    ``scale`` switches to absolute accuracy relative to that scale.
    """
    got = np.asarray(got)
    assert got.dtype == dtype, f"{what}: dtype {got.dtype}, expected {dtype}"
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    for g, r in zip(got.ravel(), refs, strict=True):
        assert np.isfinite(g), f"{what}: {g} for reference {mp.nstr(r, 8)}"
        bound = ulps * eps * (abs(r) if scale is None else scale) + tiny
        err = abs(_mp(g) - r)
        assert err <= bound, (
            f"{what}: got {g!r}, reference {mp.nstr(r, 17)}, error {mp.nstr(err, 3)}"
        )


@pytest.fixture(autouse=True)
def _no_floating_point_warnings():
    # Stable formulations do not overflow on the way to a finite result.
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# -- activations ----------------------------------------------------------------

def _sigmoid(z):
    return 1 / (1 + mp.exp(-z))


ACTIVATION_REFS = {
    # name: (instance, f, f', derivative tolerance scale: None = relative)
    "logistic": (Logistic(), _sigmoid, lambda z: _sigmoid(z) * _sigmoid(-z), 0.25),
    "tanh": (Tanh(), mp.tanh, lambda z: 1 / mp.cosh(z) ** 2, 1.0),
    "softplus": (Softplus(), lambda z: mp.log1p(mp.exp(z)), _sigmoid, None),
    "elu": (ELU(), lambda z: z if z > 0 else mp.expm1(z),
            lambda z: mp.mpf(1) if z > 0 else mp.exp(z), None),
    "relu": (ReLU(), lambda z: max(z, mp.mpf(0)),
             lambda z: mp.mpf(1) if z > 0 else mp.mpf(0), None),
    "leaky_relu": (LeakyReLU(), lambda z: z if z > 0 else mp.mpf("0.01") * z,
                   lambda z: mp.mpf(1) if z > 0 else mp.mpf("0.01"), None),
    "identity": (Identity(), lambda z: z, lambda z: mp.mpf(1), None),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("name", sorted(ACTIVATION_REFS))
def test_activation_and_derivative_at_extreme_inputs(name, dtype):
    activation, f, df, df_scale = ACTIVATION_REFS[name]
    raw = RAW[dtype]
    Z = np.array([raw], dtype=dtype)
    Z_before = Z.copy()
    A = activation.forward(Z)
    # leaky_relu's 0.01 is not a binary fraction: its products round once more
    assert_accurate(A, [f(_mp(z)) for z in Z.ravel()], dtype, what=f"{name} forward")
    dA = activation.derivative(Z, A)
    refs = [df(_mp(z)) for z in Z.ravel()]
    assert_accurate(dA, refs, dtype, scale=df_scale, what=f"{name} derivative")
    np.testing.assert_array_equal(Z, Z_before)


# -- losses ---------------------------------------------------------------------

def _logsumexp(row):
    return mp.log(mp.fsum(mp.exp(_mp(r)) for r in row))


def _log_softmax_ref(row, dtype):
    """The log-probabilities of ``row``; below -max, -max (promised finite)."""
    lowest = -_mp(np.finfo(dtype).max)
    return [max(_mp(r) - _logsumexp(row), lowest) for r in row]


def _check_loss(loss, y, raw, per_sample_ref, grad_ref, dtype, *, grad_scale=None):
    """``loss``, ``gradient`` and the fused training path against references.

    ``per_sample_ref[i]`` is sample i's loss; ``grad_ref[i][j]`` its gradient.
    """
    y = np.asarray(y, dtype=dtype)
    raw = np.asarray(raw, dtype=dtype)
    raw_before = raw.copy()
    n = raw.shape[0]
    for i in range(n):
        # The value is a Python float, computed in the input's dtype.
        value = loss.loss(y[i:i + 1], raw[i:i + 1])
        assert_accurate(np.array([value], dtype=dtype), [per_sample_ref[i]], dtype,
                        what=f"{type(loss).__name__} loss row {i} {raw[i]}")
    grad = loss.gradient(y, raw)
    flat_ref = [g for row in grad_ref for g in row]
    assert_accurate(grad, flat_ref, dtype, scale=grad_scale,
                    what=f"{type(loss).__name__} gradient")
    # The training loop's fused path: same value, gradient / n in `out`.
    out = np.empty_like(raw)
    value = loss._loss_and_delta(y, raw, None, float(n), out)
    mean_ref = mp.fsum(per_sample_ref) / n
    assert_accurate(np.array([value], dtype=dtype), [mean_ref], dtype,
                    what=f"{type(loss).__name__} fused loss")
    assert_accurate(out, [g / n for g in flat_ref], dtype,
                    scale=None if grad_scale is None else grad_scale / n,
                    what=f"{type(loss).__name__} fused delta")
    np.testing.assert_array_equal(raw, raw_before)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_binary_log_loss_at_extreme_raw_outputs(dtype):
    raw = np.array(RAW[dtype], dtype=dtype)
    loss = LogLoss()
    loss = loss._for_target("binary")
    for target in (0.0, 1.0):
        y = np.full((raw.size, 1), target)
        # -y log s(r) - (1 - y) log(1 - s(r))
        refs = [(1 - target) * mp.log1p(mp.exp(_mp(r)))
                + target * mp.log1p(mp.exp(-_mp(r))) for r in raw]
        grads = [[_sigmoid(_mp(r)) - target] for r in raw]
        _check_loss(loss, y, raw[:, None], refs, grads, dtype, grad_scale=1.0)


MULTICLASS_ROWS = {
    np.float64: [[1e4, -1e4, 0.0], [30.0, 0.0, -5.0], [-1e300, 1e300, 0.0],
                 [1e5, 1e5, -1e5], [0.1, 0.2, 0.3], [-745.0, 0.0, 745.0],
                 [1e308, -1e308, 0.0]],
    np.float32: [[1e4, -1e4, 0.0], [20.0, 0.0, -5.0], [-3e38, 3e38, 0.0],
                 [1e5, 1e5, -1e5], [0.1, 0.2, 0.3], [-104.0, 0.0, 104.0]],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_softmax_log_loss_at_extreme_raw_outputs(dtype):
    rows = np.array(MULTICLASS_ROWS[dtype], dtype=dtype)
    loss = LogLoss()
    loss = loss._for_target("multiclass")
    for k in range(3):
        # Rows whose raw outputs are >1.8e308 apart have an infinite loss for
        # their smallest class: the true value is not representable.
        usable = [i for i, row in enumerate(rows)
                  if mp.mpf(float(max(row))) - _mp(row[k]) < np.finfo(dtype).max]
        raw = rows[usable]
        y = np.zeros_like(raw)
        y[:, k] = 1
        refs = [_logsumexp(row) - _mp(row[k]) for row in raw]
        grads = [[mp.exp(_mp(r) - _logsumexp(row)) - (j == k)
                  for j, r in enumerate(row)] for row in raw]
        _check_loss(loss, y, raw, refs, grads, dtype, grad_scale=1.0)
    # log_link: the log-probabilities, finite and accurate
    log_ref = [v for row in rows for v in _log_softmax_ref(row, dtype)]
    assert_accurate(loss.log_link(rows), log_ref, dtype, what="log_softmax")


def test_softmax_loss_is_inf_not_nan_when_the_true_value_overflows():
    loss = LogLoss()
    loss = loss._for_target("multiclass")
    raw = np.array([[1e308, -1e308, 0.0]])
    y = np.array([[0.0, 1.0, 0.0]])
    assert loss.loss(y, raw) == np.inf  # 2e308 is not a float64
    out = np.empty_like(raw)
    assert loss._loss_and_delta(y, raw, None, 1.0, out) == np.inf
    np.testing.assert_allclose(out, [[1.0, -1.0, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_regression_losses_at_extreme_raw_outputs(dtype):
    big = 1e150 if dtype is np.float64 else 1e18  # squares stay representable
    raw = np.array([-big, -1e5, -1e4, -1.0, 0.0, 2.5, 1e4, 1e5, big], dtype=dtype)
    target = np.array([0.0, 3.0, -2.0, 1.0, 0.0, 2.5, 7.0, -1.0, 1.0], dtype=dtype)
    r, t = raw[:, None], target[:, None]
    diff = [_mp(a) - _mp(b) for a, b in zip(raw, target, strict=True)]
    _check_loss(SquaredError(), t, r, [d * d / 2 for d in diff], [[d] for d in diff],
                dtype)
    _check_loss(AbsoluteError(), t, r, [abs(d) for d in diff],
                [[mp.sign(d)] for d in diff], dtype)
    huber = Huber(delta=1.0)
    _check_loss(huber, t, r,
                [d * d / 2 if abs(d) <= 1 else abs(d) - mp.mpf(1) / 2 for d in diff],
                [[max(min(d, mp.mpf(1)), mp.mpf(-1))] for d in diff], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_huber_is_finite_far_beyond_where_squares_overflow(dtype):
    huge = np.finfo(dtype).max / 4
    raw = np.array([[-huge], [huge], [1e4], [-1e4]], dtype=dtype)
    y = np.zeros_like(raw)
    diff = [_mp(v) for v in raw.ravel()]
    _check_loss(Huber(delta=1.0), y, raw, [abs(d) - mp.mpf(1) / 2 for d in diff],
                [[mp.sign(d)] for d in diff], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_poisson_link_and_loss_where_exp_is_representable(dtype):
    top = 700.0 if dtype is np.float64 else 88.0
    raw = np.array([-1e300 if dtype is np.float64 else -1e38, -1e5, -1e4, -745.0,
                    -40.0, -1e-10, 0.0, 1.0, 40.0, top], dtype=dtype)
    loss = Poisson()
    for target in (0.0, 2.5):
        y = np.full((raw.size, 1), target, dtype=dtype)
        refs = [mp.exp(_mp(r)) - target * _mp(r) for r in raw]
        grads = [[mp.exp(_mp(r)) - target] for r in raw]
        # exp(raw) - y raw cancels near its minimum raw = log y: judge the value
        # relative to its larger term there.
        _check_loss(loss, y, raw[:, None], refs, grads, dtype)
    pred = loss.link(raw[:, None])
    assert_accurate(pred, [mp.exp(_mp(r)) for r in raw], dtype, what="exp link")
    assert_accurate(loss.log_link(raw[:, None]), [_mp(r) for r in raw], dtype,
                    what="Poisson log link")


# -- through the estimators -----------------------------------------------------

def _set_output_layer(est, raw_per_row, X):
    """Make the last layer output ``raw_per_row`` for the rows of ``X``.

    A network without hidden layer and X = identity: raw = W[row] + b.
    """
    W = est.coefs_[-1]
    W[...] = np.asarray(raw_per_row, dtype=W.dtype)[: W.shape[0]]
    est.intercepts_[-1][...] = 0


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_classifier_probabilities_at_extreme_raw_outputs(dtype, n_classes):
    big = 1e300 if dtype is np.float64 else 3e38
    if n_classes == 2:
        raw = np.array([[1e4], [-1e4], [big], [-big], [40.0], [-40.0]])
    else:
        raw = np.array([[1e4, -1e4, 0], [-big, big, 0], [30, 0, -5], [0, 0, 0],
                        [-1e5, -1e5, 1e5], [1, 2, 3]], dtype=float)
    X = np.eye(len(raw), dtype=dtype)
    y = np.arange(len(raw)) % n_classes
    clf = BackpropClassifier(hidden_layer_sizes=(), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.filterwarnings("ignore", category=Warning, message=".*converged.*")
        clf.fit(X, y)
    _set_output_layer(clf, raw, X)
    proba = clf.predict_proba(X)
    log_proba = clf.predict_log_proba(X)
    assert proba.dtype == dtype and log_proba.dtype == dtype
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=4 * np.finfo(dtype).eps)
    raw = raw.astype(dtype)
    if n_classes == 2:
        log_ref = [[-mp.log1p(mp.exp(_mp(r))), -mp.log1p(mp.exp(-_mp(r)))]
                   for (r,) in raw]
    else:
        log_ref = [_log_softmax_ref(row, dtype) for row in raw]
    # Both are floored where a probability leaves the normal range (below it
    # a probability cannot order the classes, and predict_log_proba orders
    # them as predict_proba does); above it they are accurate to a few ulps.
    floor = mp.log(_mp(np.finfo(dtype).tiny))
    flat = [max(v, floor) for row in log_ref for v in row]
    assert_accurate(log_proba, flat, dtype, what="predict_log_proba")
    assert_accurate(proba, [mp.exp(v) for v in flat], dtype, what="predict_proba")
    best = np.argmax(np.asarray(log_ref, dtype=float), axis=1)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[best])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
def test_poisson_predict_is_finite_or_a_clear_error(dtype):
    X = np.eye(3, dtype=dtype)
    reg = BackpropRegressor(hidden_layer_sizes=(), loss="poisson", max_iter=1,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.fit(X, [1.0, 2.0, 3.0])
    _set_output_layer(reg, [[-1e4], [0.0], [20.0]], X)
    assert_accurate(reg.predict(X), [mp.exp(-10000), mp.mpf(1), mp.exp(20)], dtype,
                    what="Poisson predict")
    _set_output_layer(reg, [[-1e4], [1e4], [0.0]], X)
    with pytest.raises(ValueError, match="not finite.*overflow"):
        reg.predict(X)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("activation", sorted(ACTIVATION_REFS))
def test_hidden_activations_at_extreme_pre_activations(activation, dtype):
    """Hidden pre-activations of +-1e4 and beyond give finite, exact features."""
    X = np.array([[1.0], [-1.0], [0.0]], dtype=dtype)
    y = [0, 1, 0]
    clf = BackpropClassifier(hidden_layer_sizes=(4,), activation=activation,
                             max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    big = 1e300 if dtype is np.float64 else 3e38
    clf.coefs_[0][...] = np.array([[1e4, -1e4, big, 40.0]], dtype=dtype)
    clf.intercepts_[0][...] = 0
    clf.coefs_[1][...] = 1e-300 if dtype is np.float64 else 1e-38  # raw stays finite
    f = ACTIVATION_REFS[activation][1]
    features = clf.transform(X)
    refs = [f(_mp(x) * _mp(w)) for x in X.ravel() for w in clf.coefs_[0].ravel()]
    assert_accurate(features, refs, dtype, what=f"{activation} hidden features")
    proba = clf.predict_proba(X)
    assert np.all(np.isfinite(proba))
    assert np.all(np.isfinite(clf.predict_log_proba(X)))
