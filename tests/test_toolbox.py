"""The layer seam and its per-layer options: activations per layer, dropout,
weight initializers, gradient clipping.

References are independent of the code under test: explicit numpy forward
passes, central finite differences, ``torch.nn.init`` for the initializers'
scales and a plain torch loop with ``torch.nn.utils.clip_grad_norm_`` for
clipping.
"""


import numpy as np
import pytest
from _helpers import central_differences, quiet_fit
from scipy.special import softmax
from sklearn.datasets import load_digits, make_regression
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from sklearn_bp import BackpropClassifier, BackpropRegressor, _fused
from sklearn_bp._network import (
    Layer,
    Workspace,
    draw_masks,
    init_params,
    loss_and_gradients,
)
from sklearn_bp.activations import LeakyReLU, get_activation
from sklearn_bp.losses import SquaredError
from sklearn_bp.optimizers import SGD, Adam, Optimizer

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


_quiet_fit = quiet_fit


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(120, 6, n_targets=2, noise=1.0, random_state=0)
    return X, y / np.abs(y).max()


def _same(a, b):
    for p, q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(p, q)


# -- per-layer activations ----------------------------------------------------------


def test_per_layer_activations_forward_equals_explicit_numpy(digits):
    X, y = digits
    clf = _quiet_fit(BackpropClassifier(
        hidden_layer_sizes=(12, 10, 8),
        activation=("relu", LeakyReLU(negative_slope=0.2), "tanh"),
        max_iter=3, random_state=0), X, y)
    W, b = clf.coefs_, clf.intercepts_
    A = np.maximum(X @ W[0] + b[0], 0)
    Z = A @ W[1] + b[1]
    A = np.where(Z > 0, Z, 0.2 * Z)
    A = np.tanh(A @ W[2] + b[2])
    np.testing.assert_allclose(clf.transform(X), A, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X), softmax(A @ W[3] + b[3], axis=1),
                               rtol=1e-10)


def test_a_sequence_of_one_activation_is_that_activation_bit_for_bit(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(12, 8), max_iter=3, random_state=0)
    for name in ("logistic", "tanh", "relu"):
        _same(_quiet_fit(BackpropClassifier(activation=name, **params), X, y),
              _quiet_fit(BackpropClassifier(activation=[name, name], **params), X, y))


def test_each_layer_takes_its_own_glorot_bound():
    # Weights feeding a logistic layer use factor 2, those feeding a relu
    # layer 6; the output layer takes the last hidden layer's (MLP's rule).
    units = [300, 200, 100, 50]
    layers = [Layer(get_activation("logistic")), Layer(get_activation("relu"))]
    coefs, _ = init_params(units, layers, 0)
    for W, factor in zip(coefs, (2, 6, 6), strict=True):
        bound = np.sqrt(factor / (W.shape[0] + W.shape[1]))
        assert 0.99 * bound < np.abs(W).max() <= bound


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_activation_sequence_errors(Estimator, digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"activation has 1 entries.*2 hidden"):
        Estimator(hidden_layer_sizes=(4, 3), activation=("relu",)).fit(X, y)
    with pytest.raises(ValueError, match=r"activation\[1\].*swish.*relu"):
        Estimator(hidden_layer_sizes=(4, 3), activation=("relu", "swish")).fit(X, y)


# -- dropout ----------------------------------------------------------------------


def _dropout_problem(seed=0, n=7, rates=(0.3, 0.5), activations=("tanh", "softplus")):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    Y = rng.normal(size=(n, 2))
    layers = [Layer(get_activation(activations[0]), rates[0]),
              Layer(get_activation(activations[1]), rates[1])]
    units = [4, 6, 5, 2]
    coefs, intercepts = init_params(units, layers, rng)
    workspace = Workspace(units, n, np.float64, layers)
    draw_masks(workspace.rows(n), layers, np.random.default_rng(seed))
    return X, Y, layers, coefs, intercepts, workspace


def _value(X, Y, layers, coefs, intercepts, workspace):
    return loss_and_gradients(coefs, intercepts, X, Y, None, layers, SquaredError(),
                              0.01, workspace, dropout=True)


# numpy's own formulas for the activations the dropout problems use
_NUMPY = {"tanh": np.tanh, "softplus": lambda z: np.logaddexp(0, z),
          "relu": lambda z: np.maximum(z, 0)}
# (a ReLU layer takes its mask in place: see the test after these two)
_ACTIVATION_PAIRS = [("tanh", "softplus"), ("relu", "tanh")]


@pytest.mark.parametrize("activations", _ACTIVATION_PAIRS)
def test_dropout_forward_equals_explicit_numpy_with_the_same_masks(activations):
    X, Y, layers, coefs, intercepts, workspace = _dropout_problem(
        activations=activations)
    masks = [m.copy() for m in workspace.rows(X.shape[0]).mask]
    value = _value(X, Y, layers, coefs, intercepts, workspace)[0]
    A = X
    for i, name in enumerate(activations):
        A = _NUMPY[name](A @ coefs[i] + intercepts[i]) * masks[i]
    raw = A @ coefs[2] + intercepts[2]
    penalty = 0.01 / (2 * X.shape[0]) * sum(np.sum(W**2) for W in coefs)
    assert value == pytest.approx(0.5 * np.mean((raw - Y) ** 2) + penalty, rel=1e-12)


@pytest.mark.parametrize("activations", _ACTIVATION_PAIRS)
def test_dropout_gradients_with_a_fixed_mask_match_finite_differences(activations):
    X, Y, layers, coefs, intercepts, workspace = _dropout_problem(
        seed=5, n=9, activations=activations)
    _, cg, ig = _value(X, Y, layers, coefs, intercepts, workspace)
    analytic = [g.copy() for g in cg + ig]
    numeric = central_differences(
        lambda: _value(X, Y, layers, coefs, intercepts, workspace)[0],
        coefs + intercepts,
    )
    for g, expected in zip(analytic, numeric, strict=True):
        np.testing.assert_allclose(g, expected, rtol=1e-6, atol=1e-9)


def test_relu_layers_take_their_dropout_mask_in_place():
    # ReLU's backward hook reads only the sign of A, which the mask keeps
    # (and where the mask is 0 the delta is 0 anyway): its dropout writes
    # into A itself, no separate output buffer; tanh's needs A unmasked. (The
    # two tests above check the values and gradients of this configuration.)
    X, _, _, _, _, workspace = _dropout_problem(activations=("relu", "tanh"))
    buffers = workspace.rows(X.shape[0])
    assert buffers.out[0] is buffers.A[0]
    assert buffers.out[1] is not buffers.A[1]


def test_dropout_masks_keep_one_minus_rate_scaled():
    layers = [Layer(get_activation("relu"), 0.3)]
    workspace = Workspace([2, 400, 1], 500, np.float32, layers)
    buffers = workspace.rows(500)
    draw_masks(buffers, layers, np.random.default_rng(0))
    mask = buffers.mask[0]
    assert mask.dtype == np.float32
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
    assert abs(np.mean(mask > 0) - 0.7) < 0.01


@pytest.mark.parametrize("Estimator,data", [(BackpropClassifier, "digits"),
                                            (BackpropRegressor, "regression")])
def test_dropout_fits_are_reproducible_and_masks_matter(Estimator, data, request):
    X, y = request.getfixturevalue(data)
    params = dict(hidden_layer_sizes=(16, 12), dropout=(0.3, 0.1), max_iter=4)
    a = _quiet_fit(Estimator(**params, random_state=0), X, y)
    b = _quiet_fit(Estimator(**params, random_state=0), X, y)
    _same(a, b)
    c = _quiet_fit(Estimator(**params, random_state=1), X, y)
    d = _quiet_fit(Estimator(**{**params, "dropout": 0.0}, random_state=0), X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    assert not np.array_equal(a.coefs_[0], d.coefs_[0])


def test_dropout_partial_fit_calls_equal_fit_epochs(digits):
    X, y = digits
    params = dict(hidden_layer_sizes=(16,), dropout=0.4, shuffle=False, max_iter=3,
                  batch_size=64, random_state=0)
    fitted = _quiet_fit(BackpropClassifier(**params), X, y)
    incremental = BackpropClassifier(**params)
    for _ in range(3):
        incremental.partial_fit(X, y, classes=np.unique(y))
    _same(fitted, incremental)
    assert fitted.loss_curve_ == incremental.loss_curve_


def test_dropout_is_off_in_prediction_and_transform(digits):
    X, y = digits
    clf = _quiet_fit(BackpropClassifier(hidden_layer_sizes=(16,), dropout=0.5,
                                        max_iter=3, random_state=0), X, y)
    W, b = clf.coefs_, clf.intercepts_
    A = np.maximum(X @ W[0] + b[0], 0)
    np.testing.assert_allclose(clf.transform(X), A, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_proba(X), softmax(A @ W[1] + b[1], axis=1),
                               rtol=1e-10)
    np.testing.assert_array_equal(clf.predict_proba(X), clf.predict_proba(X))


def test_dropout_early_stopping_scores_the_whole_network(digits, monkeypatch):
    # The held-out forward pass goes through predict_raw, which has no masks:
    # a held-out score under dropout would differ between two evaluations.
    X, y = digits
    from sklearn_bp import _network

    seen = []
    real = _network.predict_raw

    def recording(coefs, intercepts, X_val, layers, *args, **kwargs):
        first = real(coefs, intercepts, X_val, layers, *args, **kwargs)
        second = real(coefs, intercepts, X_val, layers, *args, **kwargs)
        seen.append(np.array_equal(first, second))
        return first

    monkeypatch.setattr(_network, "predict_raw", recording)
    _quiet_fit(BackpropClassifier(hidden_layer_sizes=(16,), dropout=0.5,
                                  early_stopping=True, max_iter=3, random_state=0),
               X, y)
    assert seen and all(seen)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_under_the_fused_step_equals_the_generic_step(digits, dtype,
                                                             monkeypatch):
    X, y = digits
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(64, 48), dropout=(0.2, 0.3),
                  activation=("relu", "tanh"), max_iter=3, random_state=0)
    generic = _quiet_fit(BackpropClassifier(**params), X, y)
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", 1)
    monkeypatch.setattr(_fused, "_MIN_SPLIT", 1)
    with threadpool_limits(limits=2, user_api="blas"):
        fused = _quiet_fit(BackpropClassifier(**params), X, y)
    rtol = 1e-9 if dtype == np.float64 else 2e-4
    for p, q in zip(generic.coefs_ + generic.intercepts_,
                    fused.coefs_ + fused.intercepts_, strict=True):
        np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol * 1e-2)


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_dropout_errors(Estimator, digits):
    X, y = digits
    two = dict(hidden_layer_sizes=(4, 3))
    with pytest.raises(ValueError, match="'dropout'"):
        Estimator(dropout=1.0).fit(X, y)
    with pytest.raises(ValueError, match="'dropout'"):
        Estimator(dropout=-0.1).fit(X, y)
    with pytest.raises(ValueError, match=r"dropout has 1 entries.*2 hidden"):
        Estimator(**two, dropout=[0.1]).fit(X, y)
    with pytest.raises(ValueError, match=r"dropout\[1\] must be a float in the range"):
        Estimator(**two, dropout=(0.1, 1.5)).fit(X, y)
    with pytest.raises(ValueError, match=r"dropout.*optimizer='lbfgs'.*line search"):
        Estimator(dropout=0.1, optimizer="lbfgs").fit(X, y)


# -- weight initializers -----------------------------------------------------------


_TORCH_INIT = {
    "glorot_normal": lambda t: torch.nn.init.xavier_normal_(t),
    "he_uniform": lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu"),
    "he_normal": lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu"),
    "lecun_uniform": lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="linear"),
    "lecun_normal": lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="linear"),
}


def _initial(weight_init, units=(500, 300, 2), dtype=np.float64, activation="relu"):
    X = np.zeros((4, units[0]), dtype=dtype)
    reg = BackpropRegressor(hidden_layer_sizes=units[1:-1], weight_init=weight_init,
                            activation=activation, max_iter=1, random_state=0,
                            learning_rate_init=1e-300)
    # (a vanishing learning rate: the fit leaves the initial weights as drawn)
    return _quiet_fit(reg, X, np.zeros((4, units[-1]), dtype=dtype))


@pytest.mark.parametrize("scheme", sorted(_TORCH_INIT))
def test_initializer_scale_equals_torch_nn_init(scheme):
    reg = _initial(scheme)
    W = reg.coefs_[0]
    torch.manual_seed(0)
    reference = _TORCH_INIT[scheme](torch.empty(W.shape[1], W.shape[0],
                                                dtype=torch.float64)).numpy()
    if scheme.endswith("uniform"):
        assert np.abs(W).max() == pytest.approx(np.abs(reference).max(), rel=0.01)
    else:
        assert W.std() == pytest.approx(reference.std(), rel=0.03)
    assert abs(W.mean()) < 0.05 * W.std()
    for b in reg.intercepts_:
        np.testing.assert_array_equal(b, 0.0)


@pytest.mark.parametrize("units", [(300, 200, 2), (100, 250, 2)])
def test_orthogonal_initializer_has_orthonormal_rows_or_columns(units):
    reg = _initial("orthogonal", units)
    W = reg.coefs_[0]  # (fan_in, fan_out); torch's weight is W.T
    small = min(W.shape)
    gram = W.T @ W if W.shape[0] >= W.shape[1] else W @ W.T
    np.testing.assert_allclose(gram, np.eye(small), atol=1e-10)
    torch.manual_seed(0)
    reference = torch.nn.init.orthogonal_(torch.empty(W.shape[1], W.shape[0],
                                                      dtype=torch.float64)).numpy()
    assert np.linalg.norm(W) == pytest.approx(np.linalg.norm(reference), rel=1e-10)


def test_default_initializer_is_glorot_uniform_bit_for_bit(digits):
    X, y = digits
    _same(_initial("glorot_uniform", activation="logistic"),
          _initial("glorot_uniform", activation="logistic"))
    a = _quiet_fit(BackpropClassifier(max_iter=2, random_state=0), X, y)
    b = _quiet_fit(BackpropClassifier(max_iter=2, random_state=0,
                                      weight_init="glorot_uniform"), X, y)
    _same(a, b)


def test_initializers_keep_float32():
    for scheme in ("he_normal", "orthogonal"):
        reg = _initial(scheme, dtype=np.float32)
        assert all(p.dtype == np.float32 for p in reg.coefs_ + reg.intercepts_)


def test_user_initializer_is_called_per_layer_and_checked(digits):
    X, y = digits
    calls = []

    def constant(fan_in, fan_out, rng, dtype):
        calls.append((fan_in, fan_out, type(rng).__name__, np.dtype(dtype)))
        return np.full((fan_in, fan_out), 0.01)

    clf = BackpropClassifier(hidden_layer_sizes=(7,), weight_init=constant,
                             max_iter=1, learning_rate_init=1e-300, random_state=0)
    _quiet_fit(clf, X, y)
    assert calls == [(64, 7, "RandomState", np.dtype(np.float64)),
                     (7, 10, "RandomState", np.dtype(np.float64))]
    np.testing.assert_array_equal(clf.coefs_[0], 0.01)
    with pytest.raises(ValueError, match=r"shape \(7, 64\).*\(64, 7\)"):
        BackpropClassifier(hidden_layer_sizes=(7,),
                           weight_init=lambda i, o, r, d: np.zeros((o, i))).fit(X, y)
    with pytest.raises(ValueError, match="finite"):
        BackpropClassifier(weight_init=lambda i, o, r, d: np.full((i, o), np.nan)).fit(
            X, y)
    with pytest.raises(ValueError, match=r"'weight_init'.*he_normal"):
        BackpropClassifier(weight_init="kaiming").fit(X, y)


# -- gradient clipping ---------------------------------------------------------------

_ACT = {"tanh": torch.tanh, "relu": torch.relu}


def _torch_clipped_run(X, Y, units, activation, make_optimizer, max_norm, alpha,
                       epochs):
    """Full-batch training in plain torch: squared error 0.5 * mean, MLP's L2
    term, clip_grad_norm_ before each step."""
    coefs, intercepts = init_params(units, get_activation(activation),
                                    check_random_state(0))
    params = [torch.tensor(p, requires_grad=True) for p in coefs + intercepts]
    optimizer = make_optimizer(params)
    Xt, Yt = torch.tensor(X), torch.tensor(Y)
    n = len(coefs)
    for _ in range(epochs):
        optimizer.zero_grad()
        A = Xt
        for i in range(n):
            A = A @ params[i] + params[n + i]
            if i < n - 1:
                A = _ACT[activation](A)
        loss = 0.5 * ((A - Yt) ** 2).mean()
        loss = loss + alpha / (2 * X.shape[0]) * sum((W**2).sum() for W in params[:n])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        optimizer.step()
    return [p.detach().numpy() for p in params]


class _PlainSGD(Optimizer):
    """A user-written optimizer: ``p -= lr * g``."""

    def init_state(self, params):
        return {}

    def step(self, params, grads, state, lr):
        for p, g in zip(params, grads, strict=True):
            p -= lr * g


_CLIP_CASES = {
    "sgd-nesterov": (
        SGD(momentum=0.9, nesterov=True), 0.05,
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    ),
    "adam": (Adam(), 0.01, lambda p: torch.optim.Adam(p, lr=0.01)),
    "user-sgd": (_PlainSGD(), 0.05, lambda p: torch.optim.SGD(p, lr=0.05)),
}


@pytest.mark.parametrize("fused", [False, True], ids=["generic", "fused"])
@pytest.mark.parametrize("case", sorted(_CLIP_CASES))
def test_clip_grad_norm_equals_torch(case, fused, regression, monkeypatch):
    X, Y = regression
    spec, lr, make_torch = _CLIP_CASES[case]
    if fused:
        if case == "user-sgd":
            pytest.skip("the fused step applies to the built-in optimizers only")
        monkeypatch.setattr(_fused, "_MIN_WEIGHTS", 1)
        monkeypatch.setattr(_fused, "_CHUNK_BYTES", 256)  # several chunks per layer
    max_norm, alpha, epochs = 0.05, 1e-2, 25
    params = dict(hidden_layer_sizes=(8, 6), activation="tanh", optimizer=spec,
                  learning_rate_init=lr, alpha=alpha, batch_size=X.shape[0],
                  shuffle=False, max_iter=epochs, tol=0.0, n_iter_no_change=np.inf,
                  random_state=0)
    with threadpool_limits(limits=2, user_api="blas"):
        ours = _quiet_fit(BackpropRegressor(**params, clip_grad_norm=max_norm), X, Y)
        unclipped = _quiet_fit(BackpropRegressor(**params), X, Y)
    reference = _torch_clipped_run(X, Y, [6, 8, 6, 2], "tanh", make_torch, max_norm,
                                   alpha, epochs)
    worst = max(np.max(np.abs(p - r) / (np.abs(r) + 1e-12))
                for p, r in zip(ours.coefs_ + ours.intercepts_, reference, strict=True))
    assert worst < 1e-7, worst
    # (and clipping was in force: the unclipped run ends elsewhere)
    assert not np.allclose(unclipped.coefs_[0], ours.coefs_[0], rtol=1e-3)


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_clip_grad_norm_errors(Estimator, digits):
    X, y = digits
    for bad in (0, -1.0, "1"):
        with pytest.raises(ValueError, match="'clip_grad_norm'"):
            Estimator(clip_grad_norm=bad).fit(X, y)
    with pytest.raises(ValueError, match=r"clip_grad_norm.*optimizer='lbfgs'"):
        Estimator(clip_grad_norm=1.0, optimizer="lbfgs").fit(X, y)


def test_large_clip_grad_norm_changes_nothing(regression):
    X, Y = regression
    params = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0)
    _same(_quiet_fit(BackpropRegressor(**params), X, Y),
          _quiet_fit(BackpropRegressor(**params, clip_grad_norm=1e30), X, Y))


def test_the_issue_example_runs_in_a_grid_search(digits):
    from sklearn.model_selection import GridSearchCV

    X, y = digits
    clf = BackpropClassifier(hidden_layer_sizes=(32, 16, 8),
                             activation=("relu", "relu", "tanh"),
                             dropout=(0.3, 0.2, 0.0), weight_init="he_uniform",
                             clip_grad_norm=1.0, learning_rate_init=3e-3, max_iter=3,
                             random_state=0)
    search = GridSearchCV(clf, {"dropout": [0.0, 0.2],
                                "weight_init": ["he_uniform", "orthogonal"]}, cv=2)
    _quiet_fit(search, X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.score(X, y) > 0.2
