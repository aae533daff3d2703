"""``LogLoss(label_smoothing=eps)`` against torch, finite differences and fits.

Multiclass (softmax) smoothing equals ``torch.nn.functional.cross_entropy(...,
label_smoothing=eps)``; binary and multilabel (one logistic unit per output)
smooth each 0/1 target toward 1/2, ``(1 - eps) * y + eps / 2``, and equal
``binary_cross_entropy_with_logits`` on those targets. The value and the
gradient (the public ``loss``/``gradient`` and the training loop's fused
``_loss_and_delta``) must agree with torch's autograd, with sample weights.
"""

import warnings

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.utils import gen_batches
from threadpoolctl import threadpool_limits

from sklearn_bp import BackpropClassifier, _fused
from sklearn_bp._network import init_params, loss_and_gradients
from sklearn_bp.activations import get_activation
from sklearn_bp.losses import LogLoss
from sklearn_bp.optimizers import SGD
from sklearn_bp.utils import check_gradients

RTOL = 1e-12  # one loss evaluation: only rounding separates the two sides
FIT_RTOL = 1e-7  # the torch.optim suite's tolerance, after a whole fit

# target type -> number of outputs
TARGETS = {"multiclass": 4, "binary": 1, "multilabel-indicator": 3}


def _problem(target_type, seed=0, n=13):
    rng = np.random.RandomState(seed)
    k = TARGETS[target_type]
    raw = rng.normal(scale=2.0, size=(n, k))
    if target_type == "multiclass":
        labels = rng.randint(k, size=n)
        Y = np.eye(k)[labels]
    else:
        labels = None
        Y = rng.randint(2, size=(n, k)).astype(float)
    sample_weight = rng.uniform(0.2, 2.0, size=n)
    sample_weight[3] = 0.0
    return raw, Y, labels, sample_weight


def _torch_value(target_type, raw, Y, labels, sample_weight, eps):
    """torch's weighted mean loss, as a tensor with a gradient w.r.t. raw."""
    n = raw.shape[0]
    sw = (
        torch.ones(n, dtype=torch.float64)
        if sample_weight is None
        else (torch.from_numpy(sample_weight))
    )
    if target_type == "multiclass":
        per_sample = F.cross_entropy(
            raw, torch.from_numpy(labels), reduction="none", label_smoothing=eps
        )
    else:
        smoothed = torch.from_numpy((1 - eps) * Y + eps / 2)
        per_sample = F.binary_cross_entropy_with_logits(
            raw, smoothed, reduction="none"
        ).sum(dim=1)
    return (sw * per_sample).sum() / sw.sum()


def _gap(ours, theirs):
    """Worst relative gap, element-wise."""
    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    return float(np.max(np.abs(ours - theirs) / np.abs(theirs)))


@pytest.mark.parametrize("weighted", [False, True], ids=["nosw", "sw"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("target_type", TARGETS)
def test_value_and_gradient_equal_torch(target_type, eps, weighted):
    raw, Y, labels, sw = _problem(target_type)
    sw = sw if weighted else None
    loss = LogLoss(label_smoothing=eps)._for_target(target_type)
    raw_t = torch.tensor(raw, requires_grad=True)
    expected = _torch_value(target_type, raw_t, Y, labels, sw, eps)
    expected.backward()
    expected_delta = raw_t.grad.numpy()  # d(weighted mean) / d raw

    # the public methods: the value, and the per-sample gradient that
    # w_i / sum(w) turns into the gradient of the weighted mean
    value = loss.loss(Y, raw, sw)
    assert value == pytest.approx(expected.item(), rel=RTOL)
    scale = np.full(len(raw), 1 / len(raw)) if sw is None else sw / sw.sum()
    np.testing.assert_allclose(
        loss.gradient(Y, raw) * scale[:, None], expected_delta, rtol=RTOL, atol=1e-17
    )
    # the training loop's fused version, also writing over raw itself
    weight_sum = len(raw) if sw is None else float(sw.sum())
    for aliased in (False, True):
        raw_copy = raw.copy()
        out = raw_copy if aliased else np.empty_like(raw)
        fast = loss._loss_and_delta(Y, raw_copy, sw, weight_sum, out)
        assert fast == pytest.approx(expected.item(), rel=RTOL)
        np.testing.assert_allclose(out, expected_delta, rtol=RTOL, atol=1e-17)


@pytest.mark.parametrize("target_type", TARGETS)
def test_smoothed_targets_are_documented_ones(target_type):
    # (1 - eps) * onehot + eps / K for softmax; toward 1/2 for logistic units:
    # the gradient at raw = 0 is link(0) - smoothed target.
    eps = 0.2
    k = TARGETS[target_type]
    Y = np.eye(k)[[0, k - 1]] if k > 1 else np.array([[1.0], [0.0]])
    raw = np.zeros_like(Y)
    loss = LogLoss(label_smoothing=eps)._for_target(target_type)
    if target_type == "multiclass":
        smoothed = (1 - eps) * Y + eps / k
    else:
        smoothed = np.where(Y == 1, 1 - eps / 2, eps / 2)
    np.testing.assert_allclose(loss.link(raw) - loss.gradient(Y, raw), smoothed)


@pytest.mark.parametrize("target_type", TARGETS)
def test_gradient_matches_central_differences(target_type):
    # d loss / d raw by central differences, for the weighted mean loss
    raw, Y, _, sw = _problem(target_type, seed=1)
    loss = LogLoss(label_smoothing=0.15)._for_target(target_type)
    h = 1e-6
    numeric = np.empty_like(raw)
    for idx in np.ndindex(raw.shape):
        plus, minus = raw.copy(), raw.copy()
        plus[idx] += h
        minus[idx] -= h
        numeric[idx] = (loss.loss(Y, plus, sw) - loss.loss(Y, minus, sw)) / (2 * h)
    out = np.empty_like(raw)
    loss._loss_and_delta(Y, raw, sw, float(sw.sum()), out)
    np.testing.assert_allclose(out, numeric, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("target_type", ["multiclass", "multilabel-indicator"])
def test_network_gradients_match_central_differences(target_type):
    # Through a whole network (hidden tanh layers, L2 term, sample weights).
    rng = np.random.RandomState(2)
    X = rng.normal(size=(11, 3))
    _, Y, _, sw = _problem(target_type, seed=2, n=11)
    activation = get_activation("tanh")
    coefs, intercepts = init_params([3, 5, 4, Y.shape[1]], activation, rng)
    loss = LogLoss(label_smoothing=0.1)._for_target(target_type)

    def evaluate():
        return loss_and_gradients(coefs, intercepts, X, Y, sw, activation, loss, 0.1)

    _, coef_grads, intercept_grads = evaluate()
    analytic = np.concatenate([g.ravel().copy() for g in coef_grads + intercept_grads])
    numeric = []
    h = 1e-6
    for p in coefs + intercepts:
        flat = p.reshape(-1)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + h
            plus = evaluate()[0]
            flat[i] = original - h
            minus = evaluate()[0]
            flat[i] = original
            numeric.append((plus - minus) / (2 * h))
    numeric = np.array(numeric)
    error = np.linalg.norm(analytic - numeric) / np.linalg.norm(numeric)
    assert error < 1e-7


def test_check_gradients_accepts_a_smoothed_loss():
    # The public helper (one logistic unit per output), with sample weights.
    sw = np.random.RandomState(0).uniform(0.5, 2.0, size=20)
    assert (
        check_gradients("tanh", LogLoss(label_smoothing=0.2), sample_weight=sw) < 1e-7
    )


# -- fits -------------------------------------------------------------------------


@pytest.fixture
def fused_step(monkeypatch):
    """Make any network take the fused step; count the steps it took."""
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", 0)
    monkeypatch.setattr(_fused, "_MIN_SPLIT", 0)
    monkeypatch.setattr(_fused, "_MIN_PART", 1)
    calls = {"fused": 0}
    run = _fused.FusedStep.run

    def counting_run(self, *args):
        result = run(self, *args)
        calls["fused"] += result is not None
        return result

    monkeypatch.setattr(_fused.FusedStep, "run", counting_run)
    with threadpool_limits(limits=2, user_api="blas"):
        yield calls


@pytest.fixture
def generic_step(monkeypatch):
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)


def _classification(target_type, n=30, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    if target_type == "multiclass":
        y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])  # 0, 1, 2
    elif target_type == "binary":
        y = (X[:, 0] - X[:, 2] > 0).astype(int)
    else:
        y = (X[:, :2] + 0.3 * X[:, [2, 0]] > 0).astype(int)
    sw = rng.uniform(0.2, 2.0, size=n)
    return X, y, sw


@pytest.mark.parametrize("path", ["generic", "fused"])
@pytest.mark.parametrize("target_type", TARGETS)
def test_fit_equals_torch_training_with_label_smoothing(target_type, path, request):
    # BackpropClassifier (no shuffling) against a torch loop with
    # cross_entropy(label_smoothing) / BCE-with-logits on smoothed targets,
    # MLP's L2 term and SGD with momentum: epoch by epoch, step by step.
    calls = request.getfixturevalue(f"{path}_step")
    eps, alpha, lr, n_epochs, batch_size = 0.2, 0.01, 0.05, 15, 8
    X, y, sw = _classification(target_type)
    clf = BackpropClassifier(
        hidden_layer_sizes=(5, 4),
        activation="tanh",
        loss=LogLoss(label_smoothing=eps),
        optimizer=SGD(momentum=0.9),
        learning_rate_init=lr,
        alpha=alpha,
        batch_size=batch_size,
        max_iter=n_epochs,
        shuffle=False,
        tol=0.0,
        n_iter_no_change=n_epochs,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y, sample_weight=sw)
    if path == "fused":
        assert calls["fused"] == n_epochs * 4

    Y = y.reshape(len(y), -1).astype(float)  # (unused for multiclass)
    k = 3 if target_type == "multiclass" else Y.shape[1]
    coefs, intercepts = init_params([3, 5, 4, k], get_activation("tanh"), 0)
    params = [torch.tensor(p, requires_grad=True) for p in coefs + intercepts]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    Xt, swt = torch.from_numpy(X), torch.from_numpy(sw)
    for _ in range(n_epochs):
        for rows in gen_batches(len(X), batch_size):
            A = Xt[rows]
            for i in range(3):
                A = A @ params[i] + params[3 + i]
                if i < 2:
                    A = torch.tanh(A)
            w = swt[rows]
            value = _torch_value(
                target_type,
                A,
                Y[rows],
                y[rows] if target_type == "multiclass" else None,
                sw[rows],
                eps,
            ) + alpha / (2 * w.sum()) * sum((W**2).sum() for W in params[:3])
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
    for p, tp in zip(clf.coefs_ + clf.intercepts_, params, strict=True):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=FIT_RTOL, atol=0)


@pytest.mark.parametrize("target_type", TARGETS)
def test_zero_smoothing_is_bit_identical_to_plain_log_loss(target_type):
    X, y, sw = _classification(target_type, n=60)
    params = dict(hidden_layer_sizes=(6,), max_iter=5, batch_size=16, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = BackpropClassifier(**params).fit(X, y, sample_weight=sw)
        zero = BackpropClassifier(loss=LogLoss(label_smoothing=0.0), **params)
        zero.fit(X, y, sample_weight=sw)
        smoothed = BackpropClassifier(loss=LogLoss(label_smoothing=0.1), **params)
        smoothed.fit(X, y, sample_weight=sw)
    for a, b in zip(
        plain.coefs_ + plain.intercepts_, zero.coefs_ + zero.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert plain.loss_curve_ == zero.loss_curve_
    assert smoothed.loss_curve_ != plain.loss_curve_


def test_smoothing_bounds_the_confidence():
    # The optimum of the smoothed loss predicts (1 - eps) + eps / K for the
    # true class, never ~1: on separable data the probabilities stay near it.
    rng = np.random.RandomState(0)
    centers = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    labels = rng.randint(3, size=150)
    X = centers[labels] + rng.normal(scale=0.3, size=(150, 2))
    eps = 0.3
    params = dict(
        hidden_layer_sizes=(16,), learning_rate_init=0.01, max_iter=300, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = BackpropClassifier(**params).fit(X, labels)
        smoothed = BackpropClassifier(loss=LogLoss(label_smoothing=eps), **params)
        smoothed.fit(X, labels)
    assert plain.predict_proba(X).max() > 0.99
    top = smoothed.predict_proba(X).max(axis=1)
    assert top.max() < 0.9  # (1 - eps) + eps / 3 = 0.8
    assert np.median(top) == pytest.approx(1 - eps + eps / 3, abs=0.03)
    assert smoothed.score(X, labels) == 1.0


def test_label_smoothing_survives_for_target_and_fit_leaves_the_spec_alone():
    spec = LogLoss(label_smoothing=0.25)
    for target_type in TARGETS:
        fitted = spec._for_target(target_type)
        assert fitted is not spec and fitted.label_smoothing == 0.25
    X, y, _ = _classification("multiclass")
    clf = BackpropClassifier(hidden_layer_sizes=(4,), loss=spec, max_iter=2)
    before = joblib.hash(clf.get_params())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert joblib.hash(clf.get_params()) == before
    assert clf._loss.label_smoothing == 0.25
    assert set(vars(spec)) == {"label_smoothing"}


def test_set_params_and_grid_search_over_label_smoothing():
    X, y, _ = _classification("multiclass", n=90)
    clf = BackpropClassifier(
        hidden_layer_sizes=(6,), loss=LogLoss(), max_iter=20, random_state=0
    )
    assert clf.set_params(loss__label_smoothing=0.2).loss.label_smoothing == 0.2
    search = GridSearchCV(
        clf, {"loss__label_smoothing": [0.0, 0.1, 0.3]}, cv=2, scoring="neg_log_loss"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert list(search.cv_results_["param_loss__label_smoothing"]) == [0.0, 0.1, 0.3]
    assert len(set(search.cv_results_["mean_test_score"])) == 3
    assert (
        search.best_estimator_.loss.label_smoothing
        == (search.best_params_["loss__label_smoothing"])
    )


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, np.nan, "0.1", None])
def test_bad_label_smoothing_raises_naming_it(value):
    X, y, _ = _classification("binary")
    clf = BackpropClassifier(loss=LogLoss(label_smoothing=value), max_iter=2)
    with pytest.raises(ValueError, match="label_smoothing"):
        clf.fit(X, y)
