"""The optimizers' fast paths give the same numbers as the plain ones.

Parameters, gradients and optimizer buffers packed into one flat buffer
(``sklearn_bp._flat``) are updated as one array, in cache-sized blocks; the
training loop's backup copy and finiteness check can run inside that pass.
None of this may change a single bit of the result.
"""

import numpy as np
import pytest

from sklearn_bp import _flat
from sklearn_bp import optimizers as opt_module
from sklearn_bp.optimizers import SGD, Adam, RMSprop

SPECS = {
    "sgd": SGD(),
    "sgd-plain": SGD(momentum=0.0, nesterov=False),
    "sgd-momentum": SGD(nesterov=False),
    "adam": Adam(),
    "rmsprop": RMSprop(),
    "rmsprop-centered-momentum": RMSprop(centered=True, momentum=0.5),
}
SHAPES = [(7, 5), (5, 3), (5,), (3,)]


def _problem(dtype, seed=0):
    rng = np.random.RandomState(seed)
    params = _flat.packed_empty(SHAPES, dtype)
    for p in params:
        p[...] = rng.normal(size=p.shape)
    grads = [[rng.normal(size=s).astype(dtype) for s in SHAPES] for _ in range(4)]
    return params, grads


@pytest.fixture(params=[None, 8], ids=["one-block", "blocks-of-8"])
def block(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(opt_module, "_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spec_id", list(SPECS))
def test_packed_and_unpacked_updates_are_identical(spec_id, dtype, block):
    spec = SPECS[spec_id]
    packed, grad_steps = _problem(dtype)
    loose = [p.copy() for p in packed]  # separate arrays: the per-array path
    assert _flat.flat_base(packed) is not None and _flat.flat_base(loose) is None
    state_packed, state_loose = spec.init_state(packed), spec.init_state(loose)
    for grads in grad_steps:
        g_packed = _flat.packed_copy(grads)
        spec.step(packed, g_packed, state_packed, 0.05)
        spec.step(loose, [g.copy() for g in grads], state_loose, 0.05)
        for a, b in zip(packed, loose, strict=True):
            np.testing.assert_array_equal(a, b)
    assert _flat.flat_base(packed) is not None  # still the same live arrays


@pytest.mark.parametrize("spec_id", list(SPECS))
def test_step_with_backup_equals_step_and_keeps_the_previous_parameters(spec_id, block):
    spec = SPECS[spec_id]
    params, grad_steps = _problem(np.float64)
    plain = [p.copy() for p in params]
    backup = _flat.packed_copy(params)
    state, plain_state = spec.init_state(params), spec.init_state(plain)
    for grads in grad_steps:
        before = [p.copy() for p in params]
        finite = spec._step(
            params, _flat.packed_copy(grads), state, 0.05, backup=backup
        )
        spec.step(plain, [g.copy() for g in grads], plain_state, 0.05)
        assert finite is True
        for a, b, saved, b0 in zip(params, plain, backup, before, strict=True):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(saved, b0)


def test_step_with_backup_reports_non_finite_parameters():
    params, grad_steps = _problem(np.float64)
    backup = _flat.packed_copy(params)
    spec = SGD(momentum=0.0, nesterov=False)
    grads = _flat.packed_copy(grad_steps[0])
    grads[0][0, 0] = np.inf
    assert (
        spec._step(params, grads, spec.init_state(params), 0.1, backup=backup) is False
    )


def test_interrupted_update_still_completes_the_backup(monkeypatch):
    monkeypatch.setattr(opt_module, "_BLOCK", 8)
    params, grad_steps = _problem(np.float64)
    before = [p.copy() for p in params]
    backup = _flat.packed_zeros_like(params)
    calls = []

    def kernel(p_, g_):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        p_ -= g_

    with pytest.raises(KeyboardInterrupt):
        opt_module._run(kernel, [params, _flat.packed_copy(grad_steps[0])], backup)
    for saved, b0 in zip(backup, before, strict=True):
        np.testing.assert_array_equal(saved, b0)
    assert any(not np.array_equal(p, b0) for p, b0 in zip(params, before, strict=True))
