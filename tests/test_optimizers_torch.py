"""Every optimizer against ``torch.optim``, step by step, on the same network.

The network, its initial weights, the batch and the loss are the same on both
sides (float64). At every step the gradients of our backward pass must equal
torch autograd's, and after every step the parameters (and, when the learning
rate changes between steps, the optimizer buffers) must equal torch's to
``rtol=1e-7``. API.md promises equality with ``torch.optim``, with and
without ``weight_decay`` (coupled on SGD, Adam and RMSprop, decoupled on
AdamW); any drift that accumulates over the steps would show here.
"""

import warnings

import joblib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import force_fused_step
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import gen_batches
from threadpoolctl import threadpool_limits

from sklearn_bp import BackpropClassifier, BackpropRegressor, _fused
from sklearn_bp._network import init_params, loss_and_gradients
from sklearn_bp.activations import get_activation
from sklearn_bp.losses import get_loss
from sklearn_bp.optimizers import SGD, Adam, AdamW, RMSprop, get_optimizer

N_STEPS = 25
RTOL = 1e-7

# id -> (our optimizer, torch optimizer class, its keyword arguments, learning rate)
OPTIMIZER_CASES = {
    "sgd-plain": (
        SGD(momentum=0.0, nesterov=False),
        torch.optim.SGD,
        dict(momentum=0.0),
        0.1,
    ),
    "sgd-momentum": (
        SGD(momentum=0.9, nesterov=False),
        torch.optim.SGD,
        dict(momentum=0.9, dampening=0, nesterov=False),
        0.05,
    ),
    "sgd-nesterov": (
        SGD(momentum=0.8, nesterov=True),
        torch.optim.SGD,
        dict(momentum=0.8, dampening=0, nesterov=True),
        0.05,
    ),
    "sgd-by-name": ("sgd", torch.optim.SGD, dict(momentum=0.9, nesterov=True), 0.05),
    "adam": (
        Adam(beta_1=0.8, beta_2=0.99, epsilon=1e-6),
        torch.optim.Adam,
        dict(betas=(0.8, 0.99), eps=1e-6),
        0.01,
    ),
    "adam-by-name": (
        "adam",
        torch.optim.Adam,
        dict(betas=(0.9, 0.999), eps=1e-8),
        0.01,
    ),
    "rmsprop": (
        RMSprop(rho=0.95, epsilon=1e-6),
        torch.optim.RMSprop,
        dict(alpha=0.95, eps=1e-6),
        0.01,
    ),
    "rmsprop-by-name": (
        "rmsprop",
        torch.optim.RMSprop,
        dict(alpha=0.9, eps=1e-8),
        0.01,
    ),
    "rmsprop-centered": (
        RMSprop(centered=True),
        torch.optim.RMSprop,
        dict(alpha=0.9, eps=1e-8, centered=True),
        0.01,
    ),
    "rmsprop-momentum": (
        RMSprop(momentum=0.7),
        torch.optim.RMSprop,
        dict(alpha=0.9, eps=1e-8, momentum=0.7),
        0.005,
    ),
    "rmsprop-centered-momentum": (
        RMSprop(rho=0.8, epsilon=1e-7, momentum=0.5, centered=True),
        torch.optim.RMSprop,
        dict(alpha=0.8, eps=1e-7, momentum=0.5, centered=True),
        0.005,
    ),
    # weight decay: coupled (torch's ``weight_decay``) on SGD, Adam, RMSprop
    "sgd-plain-wd": (
        SGD(momentum=0.0, nesterov=False, weight_decay=0.2),
        torch.optim.SGD,
        dict(momentum=0.0, weight_decay=0.2),
        0.1,
    ),
    "sgd-momentum-wd": (
        SGD(momentum=0.9, nesterov=False, weight_decay=0.1),
        torch.optim.SGD,
        dict(momentum=0.9, dampening=0, nesterov=False, weight_decay=0.1),
        0.05,
    ),
    "sgd-nesterov-wd": (
        SGD(momentum=0.8, nesterov=True, weight_decay=0.1),
        torch.optim.SGD,
        dict(momentum=0.8, dampening=0, nesterov=True, weight_decay=0.1),
        0.05,
    ),
    "adam-wd": (
        Adam(beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=0.5),
        torch.optim.Adam,
        dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=0.5),
        0.01,
    ),
    "rmsprop-wd": (
        RMSprop(rho=0.95, epsilon=1e-6, weight_decay=0.5),
        torch.optim.RMSprop,
        dict(alpha=0.95, eps=1e-6, weight_decay=0.5),
        0.01,
    ),
    "rmsprop-centered-wd": (
        RMSprop(centered=True, weight_decay=0.3),
        torch.optim.RMSprop,
        dict(alpha=0.9, eps=1e-8, centered=True, weight_decay=0.3),
        0.01,
    ),
    "rmsprop-momentum-wd": (
        RMSprop(momentum=0.7, weight_decay=0.3),
        torch.optim.RMSprop,
        dict(alpha=0.9, eps=1e-8, momentum=0.7, weight_decay=0.3),
        0.005,
    ),
    "rmsprop-centered-momentum-wd": (
        RMSprop(rho=0.8, epsilon=1e-7, momentum=0.5, centered=True, weight_decay=0.3),
        torch.optim.RMSprop,
        dict(alpha=0.8, eps=1e-7, momentum=0.5, centered=True, weight_decay=0.3),
        0.005,
    ),
    # decoupled weight decay
    "adamw": (
        AdamW(beta_1=0.8, beta_2=0.99, epsilon=1e-6, weight_decay=2.0),
        torch.optim.AdamW,
        dict(betas=(0.8, 0.99), eps=1e-6, weight_decay=2.0),
        0.01,
    ),
    "adamw-by-name": ("adamw", torch.optim.AdamW, dict(), 0.01),
}

LAYER_UNITS = [5, 6, 4, 3]
ALPHA = 0.05


def _problem(seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(16, LAYER_UNITS[0]))
    labels = rng.randint(LAYER_UNITS[-1], size=16)
    Y = np.eye(LAYER_UNITS[-1])[labels]
    sample_weight = rng.uniform(0.5, 1.5, size=16)
    activation = get_activation("tanh")
    coefs, intercepts = init_params(LAYER_UNITS, activation, rng)
    loss = get_loss("log_loss")
    loss = loss._for_target("multiclass")
    return X, Y, labels, sample_weight, activation, loss, coefs, intercepts


def _torch_loss(params, X, labels, sample_weight):
    """Weighted softmax cross-entropy of a tanh network, plus MLP's L2 term."""
    n_layers = len(params) // 2
    coefs, intercepts = params[:n_layers], params[n_layers:]
    A = torch.from_numpy(X)
    for i, (W, b) in enumerate(zip(coefs, intercepts, strict=True)):
        A = A @ W + b
        if i < n_layers - 1:
            A = torch.tanh(A)
    sw = torch.from_numpy(sample_weight)
    per_sample = F.cross_entropy(A, torch.from_numpy(labels), reduction="none")
    penalty = ALPHA / (2 * sw.sum()) * sum((W**2).sum() for W in coefs)
    return (sw * per_sample).sum() / sw.sum() + penalty


class _Pair:
    """Our optimizer and torch's, driven in lock step on the same network."""

    def __init__(self, case):
        spec, torch_cls, torch_kwargs, self.lr = OPTIMIZER_CASES[case]
        (
            self.X,
            self.Y,
            self.labels,
            self.sw,
            self.activation,
            self.loss,
            coefs,
            intercepts,
        ) = _problem()
        self.params = coefs + intercepts
        self.n_layers = len(coefs)
        self.optimizer = get_optimizer(spec)
        self.state = self.optimizer.init_state(self.params)
        self.torch_params = [
            torch.tensor(p, dtype=torch.float64, requires_grad=True)
            for p in self.params
        ]
        self.torch_optimizer = torch_cls(self.torch_params, lr=self.lr, **torch_kwargs)

    def step(self, lr):
        value, coef_grads, intercept_grads = loss_and_gradients(
            self.params[: self.n_layers],
            self.params[self.n_layers :],
            self.X,
            self.Y,
            self.sw,
            self.activation,
            self.loss,
            ALPHA,
        )
        grads = [g.copy() for g in coef_grads + intercept_grads]

        self.torch_optimizer.zero_grad()
        torch_value = _torch_loss(self.torch_params, self.X, self.labels, self.sw)
        torch_value.backward()
        assert value == pytest.approx(torch_value.item(), rel=1e-12)
        for g, tp in zip(grads, self.torch_params, strict=True):
            np.testing.assert_allclose(g, tp.grad.numpy(), rtol=1e-9, atol=1e-15)

        for group in self.torch_optimizer.param_groups:
            group["lr"] = lr
        self.torch_optimizer.step()
        self.optimizer.step(self.params, grads, self.state, lr)

    def assert_params_equal(self, step):
        for i, (p, tp) in enumerate(zip(self.params, self.torch_params, strict=True)):
            np.testing.assert_allclose(
                p,
                tp.detach().numpy(),
                rtol=RTOL,
                atol=0,
                err_msg=f"step {step}, param {i}",
            )


@pytest.mark.parametrize("case", OPTIMIZER_CASES)
def test_steps_equal_torch_optim(case):
    pair = _Pair(case)
    start = [p.copy() for p in pair.params]
    for step in range(1, N_STEPS + 1):
        pair.step(pair.lr)
        pair.assert_params_equal(step)
    # the comparison means something only if the parameters actually moved
    moved = max(
        np.max(np.abs(p - p0)) for p, p0 in zip(pair.params, start, strict=True)
    )
    assert moved > 1e-2


# our state key -> torch's state key, per optimizer
_BUFFERS = {
    SGD: {"momentum_buffer": "momentum_buffer"},
    Adam: {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"},
    AdamW: {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"},
    RMSprop: {
        "square_avg": "square_avg",
        "grad_avg": "grad_avg",
        "momentum_buffer": "momentum_buffer",
    },
}


@pytest.mark.parametrize("case", OPTIMIZER_CASES)
def test_changing_learning_rate_keeps_buffers_equal_to_torch(case):
    # The learning rate is applied at step time (as in torch), so a schedule
    # must change neither the update's history nor the buffers' meaning.
    pair = _Pair(case)
    rng = np.random.RandomState(1)
    for step in range(1, N_STEPS + 1):
        lr = pair.lr * rng.choice([0.1, 0.5, 1.0, 2.0])
        pair.step(lr)
        pair.assert_params_equal(step)
        compared = 0
        for ours, theirs in _BUFFERS[type(pair.optimizer)].items():
            torch_buffers = [
                pair.torch_optimizer.state[tp].get(theirs) for tp in pair.torch_params
            ]
            if torch_buffers[0] is None:  # e.g. no momentum buffer without momentum
                continue
            for b, tb in zip(pair.state[ours], torch_buffers, strict=True):
                np.testing.assert_allclose(
                    b, tb.numpy(), rtol=RTOL, atol=0, err_msg=f"{ours}, step {step}"
                )
            compared += 1
        if "step" in pair.state:
            torch_step = pair.torch_optimizer.state[pair.torch_params[0]]["step"]
            assert pair.state["step"] == int(torch_step) == step
        plain_sgd = isinstance(pair.optimizer, SGD) and pair.optimizer.momentum == 0
        assert compared > 0 or plain_sgd


# -- the estimators' training loop against torch ------------------------------


@pytest.fixture
def generic_step(monkeypatch):
    monkeypatch.setattr(_fused, "_MIN_WEIGHTS", np.inf)


@pytest.fixture
def fused_step(monkeypatch):
    """Make any network take the fused step (sklearn_bp._fused), split across
    two threads however small; count the steps it took."""
    calls = force_fused_step(monkeypatch)
    with threadpool_limits(limits=2, user_api="blas"):
        yield calls


@pytest.mark.parametrize(
    ("batch_size", "fmt", "weighted", "path"),
    [
        (24, "dense", False, "generic"),
        (10, "dense", False, "generic"),
        (10, "csr", True, "generic"),
        (10, "dense", True, "fused"),
        (10, "dense", True, "generic+clip"),
        (10, "dense", True, "fused+clip"),
    ],
)
@pytest.mark.parametrize("case", OPTIMIZER_CASES)
def test_estimator_epochs_equal_torch_training(
    case, batch_size, fmt, weighted, path, request
):
    # BackpropRegressor (no shuffling) must do exactly what a torch loop does:
    # the same batches in order, MLP's L2 term per batch (scaled by the batch's
    # sum of sample weights), one optimizer step each; by the generic step
    # and by the fused one (which calls the optimizers' block kernels on
    # chunks of the parameters, from two threads). With clipping, torch's
    # order: the gradient (L2 term included) is clipped, then the optimizer
    # adds its coupled weight decay.
    spec, torch_cls, torch_kwargs, lr = OPTIMIZER_CASES[case]
    path, _, clip = path.partition("+")
    max_norm = 0.05 if clip else None
    if path == "generic":
        request.getfixturevalue("generic_step")
    else:
        fused_calls = request.getfixturevalue("fused_step")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(24, 3))
    y = np.column_stack([np.sin(X[:, 0]) + X[:, 1], X[:, 2] ** 2])
    sw = rng.uniform(0.2, 2.0, size=24) if weighted else np.ones(24)
    n_epochs = 20
    reg = BackpropRegressor(
        hidden_layer_sizes=(5, 4),
        activation="tanh",
        optimizer=spec,
        learning_rate_init=lr,
        alpha=ALPHA,
        batch_size=batch_size,
        max_iter=n_epochs,
        shuffle=False,
        tol=0.0,
        n_iter_no_change=n_epochs,
        clip_grad_norm=max_norm,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg.fit(
            sparse.csr_matrix(X) if fmt == "csr" else X,
            y,
            sample_weight=sw if weighted else None,
        )

    coefs, intercepts = init_params([3, 5, 4, 2], get_activation("tanh"), 0)
    torch_params = [torch.tensor(p, requires_grad=True) for p in coefs + intercepts]
    optimizer = torch_cls(torch_params, lr=lr, **torch_kwargs)
    Xt, yt, swt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(sw)
    n_clipped = 0
    for _ in range(n_epochs):
        for rows in gen_batches(len(X), batch_size):
            A = Xt[rows]
            for i in range(3):
                A = A @ torch_params[i] + torch_params[3 + i]
                if i < 2:
                    A = torch.tanh(A)
            w = swt[rows]
            penalty = (
                ALPHA / (2 * w.sum()) * sum((W**2).sum() for W in torch_params[:3])
            )
            per_sample = F.mse_loss(A, yt[rows], reduction="none").mean(dim=1)
            value = 0.5 * (w * per_sample).sum() / w.sum() + penalty
            optimizer.zero_grad()
            value.backward()
            if max_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(torch_params, max_norm)
                n_clipped += bool(norm > max_norm)
            optimizer.step()
    assert reg.n_iter_ == n_epochs
    assert n_clipped > 0 if clip else n_clipped == 0
    if path == "fused":
        assert fused_calls == {"fused": n_epochs * 3, "fallback": 0}
    for p, tp in zip(reg.coefs_ + reg.intercepts_, torch_params, strict=True):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=RTOL, atol=0)


# -- the spec is never mutated; the state lives on the estimator ---------------

SPECS = {
    "sgd": SGD(momentum=0.5, nesterov=True),
    "adam": Adam(beta_1=0.8),
    "adamw": AdamW(weight_decay=0.1),
    "rmsprop": RMSprop(momentum=0.3, centered=True, weight_decay=0.01),
}


@pytest.mark.parametrize("name", SPECS)
@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_fit_never_mutates_the_optimizer_spec(Estimator, name):
    spec = SPECS[name]
    est = Estimator(hidden_layer_sizes=(4,), optimizer=spec, max_iter=3, random_state=0)
    X = np.random.RandomState(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    params_hash = joblib.hash(est.get_params())
    spec_dict = dict(vars(spec))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        est.partial_fit(X, y)
    assert joblib.hash(est.get_params()) == params_hash
    assert est.optimizer is spec
    assert vars(spec) == spec_dict
    # no buffer, step count or array of any kind was attached to the spec
    assert set(vars(spec)) == set(spec.get_params())
    assert all(not isinstance(v, (np.ndarray, list, dict)) for v in vars(spec).values())


def _n_steps(state):
    return state["step"]


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_optimizer_state_lives_on_the_estimator(Estimator):
    X = np.random.RandomState(0).normal(size=(30, 3))
    y = (X[:, 0] > 0).astype(int)
    est = Estimator(
        hidden_layer_sizes=(4,),
        optimizer=Adam(),
        batch_size=10,
        max_iter=2,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    state = est._optimizer_state
    assert _n_steps(state) == 2 * 3  # 2 epochs of 3 batches
    params = est.coefs_ + est.intercepts_
    for key in ("exp_avg", "exp_avg_sq"):
        assert [b.shape for b in state[key]] == [p.shape for p in params]
        # buffers are the estimator's own, never aliases of the parameters
        assert not any(np.shares_memory(b, p) for b in state[key] for p in params)
    exp_avg = [b.copy() for b in state["exp_avg"]]

    # partial_fit continues the same state ...
    est.partial_fit(X, y)
    assert _n_steps(est._optimizer_state) == 9
    assert any(
        not np.array_equal(b, b0)
        for b, b0 in zip(est._optimizer_state["exp_avg"], exp_avg, strict=True)
    )
    # ... a clone carries none of it ...
    assert not hasattr(clone(est), "_optimizer_state")
    # ... and fit (without warm_start) starts afresh, as does warm_start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        assert _n_steps(est._optimizer_state) == 6
        est.set_params(warm_start=True, max_iter=1).fit(X, y)
        assert _n_steps(est._optimizer_state) == 3


@pytest.mark.parametrize(
    ("spec", "change"),
    [
        (RMSprop(), dict(centered=True)),
        (RMSprop(), dict(momentum=0.5)),
        (RMSprop(centered=True, momentum=0.5), dict(centered=False, momentum=0.0)),
        (SGD(momentum=0.0, nesterov=False), dict(momentum=0.5)),
        (Adam(), dict(beta_1=0.5)),
        (SGD(), dict(weight_decay=0.1)),
        (Adam(), dict(weight_decay=0.1)),
        (AdamW(), dict(weight_decay=0.0)),
        (RMSprop(centered=True), dict(weight_decay=0.1)),
    ],
)
def test_optimizer_hyper_parameters_changed_between_partial_fits(spec, change):
    # partial_fit keeps the optimizer state across calls; switching on an
    # option that needs a buffer the state lacks must start that buffer at
    # zero (as init_state would have), not crash.
    X = np.random.RandomState(0).normal(size=(20, 3))
    y = X[:, 0] - X[:, 1]
    reg = BackpropRegressor(hidden_layer_sizes=(4,), optimizer=spec, random_state=0)
    reg.partial_fit(X, y)
    state = reg._optimizer_state
    carried = {
        k: [b.copy() for b in v] for k, v in state.items() if isinstance(v, list)
    }
    params = [p.copy() for p in reg.coefs_ + reg.intercepts_]

    reg.set_params(**{f"optimizer__{k}": v for k, v in change.items()})
    reg.partial_fit(X, y)
    assert reg.n_iter_ == 2

    # the same step by hand: the carried buffers plus fresh zero ones
    new_spec = type(spec)(**{**spec.get_params(), **change})
    expected_state = new_spec.init_state(params)
    expected_state.update(carried)
    if "step" in expected_state:
        expected_state["step"] = 1
    _, cg, ig = loss_and_gradients(
        params[:2],
        params[2:],
        X,
        y[:, None],
        None,
        get_activation("relu"),
        get_loss("squared_error"),
        reg.alpha,
    )
    new_spec.step(
        params, [g.copy() for g in cg + ig], expected_state, reg.learning_rate_init
    )
    for p, q in zip(reg.coefs_ + reg.intercepts_, params, strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-12)


# -- weight decay ----------------------------------------------------------------

WEIGHT_DECAY_CASES = [
    case for case in OPTIMIZER_CASES if "-wd" in case or "adamw" in case
]


@pytest.mark.parametrize("case", WEIGHT_DECAY_CASES)
def test_weight_decay_cases_differ_from_no_decay(case):
    # The torch comparison above could fail: over 25 steps each case's weight
    # decay moves the parameters far more than its tolerance.
    with_decay = _Pair(case)
    without = _Pair(case)
    without.optimizer.set_params(weight_decay=0.0)
    for group in without.torch_optimizer.param_groups:
        group["weight_decay"] = 0.0
    for _ in range(N_STEPS):
        with_decay.step(with_decay.lr)
        without.step(without.lr)
    gap = max(
        np.max(np.abs(p - q) / np.abs(q))
        for p, q in zip(with_decay.params, without.params, strict=True)
    )
    assert gap > 1e4 * RTOL


def _fit_regressor(optimizer, **params):
    X = np.random.RandomState(0).normal(size=(60, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.5
    reg = BackpropRegressor(
        hidden_layer_sizes=(8,), optimizer=optimizer, max_iter=20, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return reg.set_params(**params).fit(X, y)


@pytest.mark.parametrize("path", ["generic", "fused"])
def test_adamw_without_weight_decay_is_adam_bit_for_bit(path, request):
    request.getfixturevalue(f"{path}_step")
    adam = _fit_regressor(Adam())
    adamw = _fit_regressor(AdamW(weight_decay=0.0))
    for a, b in zip(
        adam.coefs_ + adam.intercepts_, adamw.coefs_ + adamw.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # ... and the default AdamW decays
    decayed = _fit_regressor(AdamW())
    assert not np.array_equal(decayed.coefs_[0], adam.coefs_[0])


@pytest.mark.parametrize("path", ["generic", "fused"])
@pytest.mark.parametrize("Optimizer", [SGD, Adam, RMSprop])
def test_zero_weight_decay_keeps_the_bits(Optimizer, path, request):
    # weight_decay=0.0 spelled out is the default, and a weight decay set and
    # then reset through set_params leaves no trace.
    request.getfixturevalue(f"{path}_step")
    default = _fit_regressor(Optimizer())
    reset = _fit_regressor(Optimizer(weight_decay=0.1), optimizer__weight_decay=0.0)
    for a, b in zip(
        default.coefs_ + default.intercepts_,
        reset.coefs_ + reset.intercepts_,
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("Optimizer", [SGD, Adam, AdamW, RMSprop])
def test_set_params_weight_decay_is_used_by_fit(Optimizer):
    small = _fit_regressor(Optimizer(), optimizer__weight_decay=0.0)
    large = _fit_regressor(Optimizer(), optimizer__weight_decay=0.5)
    assert small.get_params()["optimizer__weight_decay"] == 0.0
    assert large.get_params()["optimizer__weight_decay"] == 0.5
    assert clone(large).optimizer.weight_decay == 0.5
    # decay shrinks the weights
    norm = lambda est: sum(np.sum(W**2) for W in est.coefs_)  # noqa: E731
    assert norm(large) < norm(small)


def test_grid_search_over_weight_decay():
    from sklearn.model_selection import GridSearchCV

    X = np.random.RandomState(0).normal(size=(60, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.5
    spec = AdamW()
    search = GridSearchCV(
        BackpropRegressor(
            hidden_layer_sizes=(8,),
            optimizer=spec,
            max_iter=20,
            learning_rate_init=0.01,
            random_state=0,
        ),
        {"optimizer__weight_decay": [0.0, 1e-2, 3.0]},
        cv=2,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert list(search.cv_results_["param_optimizer__weight_decay"]) == [0.0, 1e-2, 3.0]
    scores = search.cv_results_["mean_test_score"]
    assert len(set(scores)) == 3  # each value trained a different model
    assert (
        search.best_estimator_.optimizer.weight_decay
        == (search.best_params_["optimizer__weight_decay"])
    )
    assert spec.weight_decay == 0.01  # the user's spec is never touched


@pytest.mark.parametrize("value", [-0.1, np.inf, np.nan, "0.1", None])
@pytest.mark.parametrize("Optimizer", [SGD, Adam, AdamW, RMSprop])
def test_bad_weight_decay_raises_naming_it(Optimizer, value):
    X = np.random.RandomState(0).normal(size=(20, 3))
    reg = BackpropRegressor(optimizer=Optimizer(weight_decay=value), max_iter=2)
    with pytest.raises(ValueError, match="weight_decay"):
        reg.fit(X, X[:, 0])
