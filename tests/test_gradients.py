"""Gradient and loss-value checks of the whole network against independent references.

Every activation x every loss (single and multi-output), dense and CSR input,
with and without the L2 term and sample weights: the gradients returned by
``loss_and_gradients`` must equal central finite differences of the value it
returns (relative error <= 1e-6 in float64), and that value must equal the
loss computed by ``sklearn.metrics`` (or ``torch.nn.functional`` where
scikit-learn has no such metric) on a forward pass done by ``torch``.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import sparse
from scipy.special import expit, softmax
from sklearn.metrics import log_loss, mean_absolute_error, mean_squared_error

from sklearn_bp._network import init_params, loss_and_gradients
from sklearn_bp.activations import get_activation
from sklearn_bp.losses import get_loss

ACTIVATIONS = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus"]

# name -> (loss name, target type given to LogLoss._for_target, n_outputs)
LOSS_CASES = {
    "log_loss-multiclass": ("log_loss", "multiclass", 3),
    "log_loss-binary": ("log_loss", "binary", 1),
    "log_loss-multilabel": ("log_loss", "multilabel-indicator", 3),
    **{
        f"{name}-{k}out": (name, None, k)
        for name in ("squared_error", "absolute_error", "huber", "poisson")
        for k in (1, 3)
    },
}

# id -> (sparse X, alpha, sample weights)
VARIANTS = {
    "-".join(
        ["csr" if sp else "dense", "l2" if alpha else "nol2", "sw" if sw else "nosw"]
    ): (sp, alpha, sw)
    for sp in (False, True)
    for alpha in (0.0, 0.3)
    for sw in (False, True)
}

N_SAMPLES, N_FEATURES, HIDDEN = 7, 4, (5, 3)
HUBER_DELTA = 1.0  # the "huber" loss's default, promised by API.md
# Central-difference step. Every kink (ReLU/leaky ReLU at Z = 0, |raw - y| = 0
# for the absolute error, |raw - y| = delta for Huber) is kept at least KINK_MARGIN
# away from the evaluation point, far more than a step of H can move any Z.
H = 1e-5
KINK_MARGIN = 1e-2
RTOL = 1e-6


def _hidden_pre_activations(coefs, intercepts, X, activation):
    """Plain numpy forward pass returning the hidden Z's and the raw output."""
    A = X.toarray() if sparse.issparse(X) else X
    Zs = []
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        Z = A @ W + b
        Zs.append(Z)
        if i < len(coefs) - 1:
            A = activation.forward(Z)
    return Zs[:-1], Zs[-1]


def _make_target(loss_name, target_type, raw, rng):
    """A target for ``raw`` of the right kind, with no sample near a loss kink."""
    n, k = raw.shape
    if loss_name == "log_loss":
        if target_type == "multiclass":
            return np.eye(k)[rng.randint(k, size=n)]
        return rng.randint(2, size=(n, k)).astype(float)
    if loss_name == "poisson":
        return rng.poisson(np.exp(raw)).astype(float)
    if loss_name in ("absolute_error", "huber"):
        # |raw - y| in [0.2, 0.8] or [1.3, 2]: away from 0 and from delta = 1,
        # and both Huber regions are exercised.
        magnitude = np.where(
            rng.rand(n, k) < 0.5,
            rng.uniform(0.2, 0.8, (n, k)),
            rng.uniform(1.3, 2, (n, k)),
        )
        return raw - magnitude * rng.choice([-1.0, 1.0], size=(n, k))
    return raw + rng.normal(size=(n, k))


def make_problem(activation_name, loss_case, variant, seed=0, hidden=HIDDEN):
    """Parameters, data and components of a small 2-hidden-layer network.

    The seed is advanced until no hidden pre-activation sits within KINK_MARGIN
    of 0, so that ReLU-type kinks never fall inside the finite-difference step.
    """
    loss_name, target_type, n_outputs = LOSS_CASES[loss_case]
    use_sparse, alpha, weighted = VARIANTS[variant]
    activation = get_activation(activation_name)
    loss = get_loss(loss_name)
    if target_type is not None:
        loss = loss._for_target(target_type)
    for attempt in range(seed, seed + 100):
        rng = np.random.RandomState(attempt)
        X = rng.normal(size=(N_SAMPLES, N_FEATURES))
        if use_sparse:
            X[rng.rand(*X.shape) < 0.4] = 0.0
            X = sparse.csr_matrix(X)
        coefs, intercepts = init_params(
            [N_FEATURES, *hidden, n_outputs], activation, rng
        )
        hidden_Z, raw = _hidden_pre_activations(coefs, intercepts, X, activation)
        if all(np.min(np.abs(Z)) > KINK_MARGIN for Z in hidden_Z):
            break
    else:  # pragma: no cover - would mean the data generator is broken
        raise RuntimeError("no kink-free problem found")
    Y = _make_target(loss_name, target_type, raw, rng)
    sample_weight = None
    if weighted:
        sample_weight = rng.uniform(0.1, 2.0, N_SAMPLES)
        sample_weight[1] = 0.0  # zero weights are allowed and must drop out
    return dict(
        coefs=coefs,
        intercepts=intercepts,
        X=X,
        Y=Y,
        sample_weight=sample_weight,
        layers=activation,
        loss=loss,
        alpha=alpha,
    )


def _value(problem):
    return loss_and_gradients(**problem)[0]


def _relative_error(a, b):
    scale = max(np.linalg.norm(a), np.linalg.norm(b))
    return 0.0 if scale == 0 else np.linalg.norm(a - b) / scale


def _assert_matches_central_differences(problem, coefs, intercepts, analytic):
    for name, param, grad in zip(
        [f"coefs_[{i}]" for i in range(len(coefs))]
        + [f"intercepts_[{i}]" for i in range(len(intercepts))],
        coefs + intercepts,
        analytic,
        strict=True,
    ):
        numeric = np.empty_like(param)
        for idx in np.ndindex(param.shape):
            orig = param[idx]
            param[idx] = orig + H
            plus = _value(problem)
            param[idx] = orig - H
            minus = _value(problem)
            param[idx] = orig
            numeric[idx] = (plus - minus) / (2 * H)
        assert np.linalg.norm(numeric) > 0, f"{name}: degenerate all-zero gradient"
        err = _relative_error(grad, numeric)
        assert err <= RTOL, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("loss_case", LOSS_CASES)
@pytest.mark.parametrize("activation_name", ACTIVATIONS)
def test_gradients_match_central_differences(activation_name, loss_case, variant):
    problem = make_problem(activation_name, loss_case, variant)
    coefs, intercepts = problem["coefs"], problem["intercepts"]
    before = [p.copy() for p in coefs + intercepts]
    _, coef_grads, intercept_grads = loss_and_gradients(**problem)
    analytic = [g.copy() for g in coef_grads + intercept_grads]
    # the parameters are inputs only
    for p, p0 in zip(coefs + intercepts, before, strict=True):
        np.testing.assert_array_equal(p, p0)

    _assert_matches_central_differences(problem, coefs, intercepts, analytic)


def test_problems_stay_away_from_loss_kinks():
    # The kink-free construction of the targets is what makes the absolute and
    # Huber checks meaningful; check it rather than trust it.
    for act in ACTIVATIONS:
        for case in ("absolute_error-3out", "huber-3out"):
            p = make_problem(act, case, "dense-nol2-nosw")
            _, raw = _hidden_pre_activations(
                p["coefs"], p["intercepts"], p["X"], p["layers"]
            )
            gap = np.abs(raw - p["Y"])
            assert gap.min() > KINK_MARGIN
            assert np.abs(gap - HUBER_DELTA).min() > KINK_MARGIN
            if case.startswith("huber"):
                # both the quadratic and the linear regime are exercised
                assert (gap < HUBER_DELTA).any() and (gap > HUBER_DELTA).any()


# -- forward value against independent references ----------------------------

TORCH_ACTIVATIONS = {
    "identity": lambda z: z,
    "logistic": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,  # default negative_slope=0.01, as API.md promises
    "elu": F.elu,  # default alpha=1
    "softplus": F.softplus,  # default beta=1
}


def _torch_raw(problem, activation_name):
    X = problem["X"]
    A = torch.from_numpy(X.toarray() if sparse.issparse(X) else X)
    n_layers = len(problem["coefs"])
    for i, (W, b) in enumerate(
        zip(problem["coefs"], problem["intercepts"], strict=True)
    ):
        A = A @ torch.from_numpy(W) + torch.from_numpy(b)
        if i < n_layers - 1:
            A = TORCH_ACTIVATIONS[activation_name](A)
    return A.numpy()


def _weighted_average_over_samples(per_element, sample_weight):
    return np.average(per_element.mean(axis=1), weights=sample_weight)


def reference_loss(loss_case, Y, raw, sample_weight):
    """The data term of the loss, from scikit-learn metrics or torch."""
    loss_name, target_type, n_outputs = LOSS_CASES[loss_case]
    sw = sample_weight
    if loss_name == "log_loss":
        if target_type == "multiclass":
            return log_loss(
                Y.argmax(axis=1),
                softmax(raw, axis=1),
                sample_weight=sw,
                labels=[0, 1, 2],
            )
        proba = expit(raw)
        # binary and multilabel: one logistic unit per label, per-sample values
        # summed over the labels (MLPClassifier's convention)
        return sum(
            log_loss(Y[:, j], proba[:, j], sample_weight=sw, labels=[0, 1])
            for j in range(n_outputs)
        )
    if loss_name == "squared_error":
        return mean_squared_error(Y, raw, sample_weight=sw) / 2
    if loss_name == "absolute_error":
        return mean_absolute_error(Y, raw, sample_weight=sw)
    raw_t, Y_t = torch.from_numpy(raw), torch.from_numpy(Y)
    if loss_name == "huber":
        per_element = F.huber_loss(raw_t, Y_t, reduction="none", delta=HUBER_DELTA)
    else:
        per_element = F.poisson_nll_loss(
            raw_t, Y_t, log_input=True, full=False, reduction="none"
        )
    return _weighted_average_over_samples(per_element.numpy(), sw)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("loss_case", LOSS_CASES)
@pytest.mark.parametrize("activation_name", ACTIVATIONS)
def test_loss_value_matches_independent_reference(activation_name, loss_case, variant):
    problem = make_problem(activation_name, loss_case, variant, seed=1)
    value = loss_and_gradients(**problem)[0]
    raw = _torch_raw(problem, activation_name)
    sw = problem["sample_weight"]
    weight_sum = N_SAMPLES if sw is None else sw.sum()
    penalty = (
        problem["alpha"]
        / (2 * weight_sum)
        * sum(np.sum(W**2) for W in problem["coefs"])
    )
    expected = reference_loss(loss_case, problem["Y"], raw, sw) + penalty
    assert value == pytest.approx(expected, rel=1e-12, abs=1e-14)
    # the public Loss.loss agrees with the fast path the network uses
    assert problem["loss"].loss(problem["Y"], raw, sw) == pytest.approx(
        expected - penalty, rel=1e-12, abs=1e-14
    )


@pytest.mark.parametrize("loss_case", LOSS_CASES)
def test_sample_weights_equal_repeated_rows(loss_case):
    # Integer weights must give the same value and gradients as repeating rows:
    # a reference for the weighted mean that needs no formula at all.
    problem = make_problem("tanh", loss_case, "dense-l2-nosw", seed=2)
    counts = np.array([1, 0, 2, 3, 1, 1, 2])
    weighted = dict(problem, sample_weight=counts.astype(float))
    repeated = dict(
        problem,
        X=np.repeat(problem["X"], counts, axis=0),
        Y=np.repeat(problem["Y"], counts, axis=0),
    )
    value_w, cg_w, ig_w = loss_and_gradients(**weighted)
    value_w, grads_w = value_w, [g.copy() for g in cg_w + ig_w]
    value_r, cg_r, ig_r = loss_and_gradients(**repeated)
    assert value_w == pytest.approx(value_r, rel=1e-12)
    for g_w, g_r in zip(grads_w, cg_r + ig_r, strict=True):
        np.testing.assert_allclose(g_w, g_r, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("loss_case", ["log_loss-multiclass", "squared_error-3out"])
def test_sparse_and_dense_input_agree(loss_case):
    problem = make_problem("relu", loss_case, "csr-l2-sw", seed=3)
    value_s, cg, ig = loss_and_gradients(**problem)
    grads_s = [g.copy() for g in cg + ig]
    dense = dict(problem, X=problem["X"].toarray())
    value_d, cg, ig = loss_and_gradients(**dense)
    assert value_s == pytest.approx(value_d, rel=1e-13)
    for g_s, g_d in zip(grads_s, cg + ig, strict=True):
        np.testing.assert_allclose(g_s, g_d, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("variant", ["dense-l2-sw", "csr-l2-nosw"])
@pytest.mark.parametrize("loss_case", LOSS_CASES)
@pytest.mark.parametrize("hidden", [(), (4,)], ids=["no-hidden", "one-hidden"])
def test_gradients_of_shallower_networks(hidden, loss_case, variant):
    # No hidden layer: the first layer is the output layer (and takes the
    # sparse product); one hidden layer: the recursion runs exactly once.
    problem = make_problem("tanh", loss_case, variant, seed=4, hidden=hidden)
    _, coef_grads, intercept_grads = loss_and_gradients(**problem)
    assert len(coef_grads) == len(hidden) + 1
    analytic = [g.copy() for g in coef_grads + intercept_grads]
    _assert_matches_central_differences(
        problem, problem["coefs"], problem["intercepts"], analytic
    )


def _as_dtype(problem, dtype):
    def cast(a):
        return None if a is None else a.astype(dtype)

    return dict(
        problem,
        coefs=[cast(W) for W in problem["coefs"]],
        intercepts=[cast(b) for b in problem["intercepts"]],
        X=cast(problem["X"]),
        Y=cast(problem["Y"]),
        sample_weight=cast(problem["sample_weight"]),
    )


@pytest.mark.parametrize("variant", ["dense-l2-sw", "csr-nol2-nosw"])
@pytest.mark.parametrize("loss_case", LOSS_CASES)
@pytest.mark.parametrize("activation_name", ACTIVATIONS)
def test_float32_network_agrees_with_float64(activation_name, loss_case, variant):
    # float32 in, float32 gradients out, computed in float32 arithmetic (the
    # difference from float64 at the same rounded point is float32 rounding,
    # amplified only by the cancellation in sums of deltas).
    problem32 = _as_dtype(make_problem(activation_name, loss_case, variant), np.float32)
    problem64 = _as_dtype(problem32, np.float64)
    value64, cg, ig = loss_and_gradients(**problem64)
    grads64 = [g.copy() for g in cg + ig]
    value32, cg, ig = loss_and_gradients(**problem32)
    assert value32 == pytest.approx(value64, rel=1e-5)
    for g32, g64 in zip(cg + ig, grads64, strict=True):
        assert g32.dtype == np.float32
        assert _relative_error(g32.astype(np.float64), g64) <= 1e-4
