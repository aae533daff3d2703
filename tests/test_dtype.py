"""float32 input is computed in float32: no silent upcast anywhere in the loop.

Two kinds of checks:

* after a float32 ``fit``, every array the estimator keeps (parameters,
  optimizer state, the training workspace) and every output is float32;
* one training epoch run on instrumented arrays (an ndarray subclass whose
  ``__array_ufunc__`` records every float64 operand or result) sees no float64
  at all: this catches what the first check cannot, a float64 intermediate, or
  an in-place update by a float64 scalar that numpy silently casts back.
"""


import numpy as np
import pytest
from _helpers import quiet_fit as _fit
from scipy import sparse

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp._network import Layer, Workspace, init_params
from sklearn_bp._solvers import StochasticSolver
from sklearn_bp.activations import get_activation
from sklearn_bp.losses import get_loss
from sklearn_bp.optimizers import SGD, Adam, RMSprop, get_optimizer

OPTIMIZERS = {
    "sgd": SGD(),
    "sgd-plain": SGD(momentum=0.0, nesterov=False),
    "sgd-momentum": SGD(nesterov=False),
    "adam": Adam(),
    "rmsprop": RMSprop(),
    "rmsprop-centered-momentum": RMSprop(centered=True, momentum=0.5),
}
ACTIVATIONS = ["relu", "tanh", "logistic", "identity", "leaky_relu", "elu", "softplus"]


def _data(n=97, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features)).astype(np.float32)
    y_class = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
    y_reg = (X[:, 0] - 2 * X[:, 1]).astype(np.float32)
    sample_weight = rng.uniform(0.5, 2.0, size=n).astype(np.float32)
    return X, y_class, y_reg, sample_weight


def _float_arrays(obj, path="state"):
    """Every ndarray inside nested dicts/lists/tuples, with where it was found."""
    if isinstance(obj, np.ndarray):
        yield path, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _float_arrays(v, f"{path}[{k!r}]")
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            yield from _float_arrays(v, f"{path}[{i}]")


@pytest.mark.parametrize("opt_id", list(OPTIMIZERS))
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("sparse_X", [False, True], ids=["dense", "csr"])
def test_float32_fit_keeps_float32_everywhere(opt_id, kind, sparse_X):
    X, y_class, y_reg, sw = _data()
    Xin = sparse.csr_matrix(X) if sparse_X else X
    Estimator, y = (
        (BackpropClassifier, y_class)
        if kind == "classifier"
        else (BackpropRegressor, y_reg)
    )
    est = Estimator(
        hidden_layer_sizes=(7, 4),
        optimizer=OPTIMIZERS[opt_id],
        alpha=1e-3,
        batch_size=16,
        max_iter=3,
        random_state=0,
    )
    _fit(est, Xin, y, sample_weight=sw)
    for p in est.coefs_ + est.intercepts_:
        assert p.dtype == np.float32
    arrays = list(_float_arrays(est._optimizer_state))
    if opt_id != "sgd-plain":
        assert arrays, "the optimizer keeps buffers"
    for where, a in arrays:
        assert a.dtype == np.float32, where
    # (the training buffers' dtypes: test_float32_training_computes_in_float32)
    assert np.all(np.isfinite(est.loss_curve_))
    assert est.transform(Xin).dtype == np.float32
    if kind == "classifier":
        assert est.predict_proba(Xin).dtype == np.float32
    else:
        assert est.predict(Xin).dtype == np.float32
    # partial_fit continues in float32, also from float64 input
    est.partial_fit(X.astype(np.float64), y)
    assert all(p.dtype == np.float32 for p in est.coefs_ + est.intercepts_)


# -- instrumented arrays ------------------------------------------------------------


class Float64Spy(np.ndarray):
    """An ndarray that records every ufunc call involving a float64 array or scalar.

    Any ufunc (including ``a *= b``, reductions and ``matmul``) with one of these
    as an operand or output goes through ``__array_ufunc__``.
    """

    seen = []

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        def wide(x):
            dtype = getattr(x, "dtype", None)
            return (
                dtype is not None
                and dtype.kind in "fc"
                and dtype.itemsize > 4 + 4 * (dtype.kind == "c")
            )

        for x in (*inputs, *(out or ())):
            if wide(x):
                Float64Spy.seen.append(f"{ufunc.__name__}.{method}: operand {x.dtype}")

        def plain(x):
            return x.view(np.ndarray) if isinstance(x, Float64Spy) else x

        if out is not None:
            kwargs["out"] = tuple(plain(o) for o in out)
        result = getattr(ufunc, method)(*(plain(x) for x in inputs), **kwargs)
        for r in result if isinstance(result, tuple) else (result,):
            if wide(r):
                Float64Spy.seen.append(f"{ufunc.__name__}.{method}: result {r.dtype}")
        if out is not None:
            return out[0] if len(out) == 1 else out
        return result


def _spied(obj, owners):
    """``obj`` with every ndarray replaced by a spy view of the same memory.

    Views of one buffer stay views of one (spy) buffer, at the same offsets, so
    the packing of parameters and buffers (sklearn_bp._flat) and the aliasing of
    workspace buffers are kept.
    """
    if isinstance(obj, np.ndarray):
        owner = obj if obj.base is None else obj.base
        spy = owners.get(id(owner))
        if spy is None:
            spy = owners[id(owner)] = owner.view(Float64Spy)
        offset = (
            obj.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
        )
        return np.ndarray.__new__(
            Float64Spy,
            obj.shape,
            obj.dtype,
            buffer=spy,
            offset=offset,
            strides=obj.strides,
        )
    if isinstance(obj, dict):
        return {k: _spied(v, owners) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_spied(v, owners) for v in obj]
    return obj


def _spied_workspace(ws, owners):
    for name, value in list(vars(ws).items()):
        setattr(ws, name, _spied(value, owners))
    return ws


CASES = (
    [
        ("relu", loss, "adam")
        for loss in ["log_loss", "squared_error", "huber", "absolute_error", "poisson"]
    ]
    + [(act, "log_loss", "adam") for act in ACTIVATIONS if act != "relu"]
    + [("relu", "log_loss", opt) for opt in OPTIMIZERS if opt != "adam"]
)


@pytest.mark.parametrize("sample_weight", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("act_id,loss_id,opt_id", CASES)
def test_float32_training_computes_in_float32(act_id, loss_id, opt_id, sample_weight):
    X, y_class, y_reg, sw = _data(n=45)
    activation, loss = get_activation(act_id), get_loss(loss_id)
    optimizer = get_optimizer(OPTIMIZERS[opt_id])
    if loss_id == "log_loss":
        Y = np.eye(3, dtype=np.float32)[y_class]
        loss = loss._for_target("multiclass")
    else:
        Y = np.abs(y_reg[:, None]) if loss_id == "poisson" else y_reg[:, None]
    units = [X.shape[1], 6, 4, Y.shape[1]]
    coefs, intercepts = init_params(units, activation, 0, np.float32)
    state = optimizer.init_state(coefs + intercepts)
    layers = [Layer(activation)] * (len(units) - 2)
    workspace = Workspace(units, 8, np.float32, layers)
    owners = {}
    coefs, intercepts = _spied(coefs, owners), _spied(intercepts, owners)
    state = _spied(state, owners)
    workspace = _spied_workspace(workspace, owners)
    solver = StochasticSolver(
        coefs,
        intercepts,
        layers=layers,
        loss=loss,
        optimizer=optimizer,
        optimizer_state=state,
        alpha=1e-3,
        batch_size=8,
        shuffle=True,
        rng=np.random.RandomState(0),
    ).prepare(X.shape[0], workspace)
    assert solver.step.workspace is workspace
    buffers = workspace.Z + workspace.A + workspace.delta
    for b in buffers + workspace.coef_grads + workspace.intercept_grads:
        assert b.dtype == np.float32
    for b in workspace.rows(8).scratch:  # the ReLU's scratch is a boolean mask
        assert b.dtype in (np.float32, np.bool_)
    X, Y = X.view(Float64Spy), np.asarray(Y, dtype=np.float32).view(Float64Spy)
    weights = sw.view(Float64Spy) if sample_weight else None
    Float64Spy.seen = []
    for epoch in (1, 2):
        # a numpy float64 learning rate must not upcast the update either
        order = np.random.RandomState(epoch).permutation(X.shape[0])
        loss_value, _ = solver.run_epoch(X, Y, weights, np.float64(1e-3), epoch, order)
        assert np.isfinite(loss_value)
    assert Float64Spy.seen == []
    for p in coefs + intercepts:
        assert isinstance(p, Float64Spy) and p.dtype == np.float32


def test_the_spy_sees_a_float64_upcast():
    # the instrument itself: an in-place update by a float64 scalar is caught
    a = np.ones(3, dtype=np.float32).view(Float64Spy)
    Float64Spy.seen = []
    a *= np.float64(0.5)
    assert Float64Spy.seen and a.dtype == np.float32
    Float64Spy.seen = []
    a *= 0.5  # a Python float is weak (NEP 50): computed in float32
    _ = a @ np.ones((3, 2), dtype=np.float32)
    assert Float64Spy.seen == []
    _ = a + np.ones(3)
    assert Float64Spy.seen
