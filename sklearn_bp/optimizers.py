"""Optimizers: stateless specs whose updates equal ``torch.optim``'s.

An :class:`Optimizer` holds only hyper-parameters. Its state (moments, its own
step count) is created by :meth:`Optimizer.init_state` and kept by the fitted
estimator, then passed back to :meth:`Optimizer.step` with the parameters, their
gradients and the current learning rate. The learning rate is applied at step
time, as in ``torch.optim``, so a learning-rate schedule never changes the
buffers.
"""

import functools
import math
import weakref
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval

from ._flat import flat_base, packed_zeros_like
from ._spec import Spec, resolve

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "LBFGS",
    "OPTIMIZERS",
    "SOLVERS",
    "get_optimizer",
]


class Optimizer(Spec):
    """Base class of optimizers.

    Subclass it and implement :meth:`init_state` and :meth:`step`; pass an
    instance as the ``optimizer`` parameter of an estimator. The optimizer must
    not store anything on itself during training: the estimator owns the state.

    See Also
    --------
    SGD, Adam, AdamW, RMSprop : The built-in optimizers.

    Examples
    --------
    Plain gradient descent:

    >>> import numpy as np
    >>> from sklearn_bp.optimizers import Optimizer
    >>> class PlainGD(Optimizer):
    ...     def init_state(self, params):
    ...         return {}
    ...     def step(self, params, grads, state, lr):
    ...         for p, g in zip(params, grads):
    ...             p -= lr * g
    >>> w = np.ones(2)
    >>> PlainGD().step([w], [np.array([1.0, -1.0])], {}, 0.5)
    >>> w
    array([0.5, 1.5])
    """

    def init_state(self, params):
        """Create the optimizer state for a list of parameter arrays.

        Parameters
        ----------
        params : list of ndarray
            The parameters, in the order later passed to :meth:`step`.

        Returns
        -------
        state : dict
            Any buffers the update needs, e.g. moving averages shaped like the
            parameters. Must be picklable.
        """
        raise NotImplementedError

    def step(self, params, grads, state, lr):
        """Update ``params`` in place from ``grads``.

        Parameters
        ----------
        params : list of ndarray
            Parameters, updated in place.
        grads : list of ndarray
            Gradients of the loss with respect to ``params``. May be used as
            scratch space: the caller does not read them afterwards.
        state : dict
            The state returned by :meth:`init_state`, updated in place.
        lr : float
            Learning rate for this step.
        """
        raise NotImplementedError


def _zeros_like(params):
    # packed like the parameters when they are (see sklearn_bp._flat)
    if flat_base(params) is not None:
        return packed_zeros_like(params)
    return [np.zeros_like(p) for p in params]


# The built-in steps below are fused by hand: every operation is an in-place
# ufunc on buffers the caller or the state owns (no temporary as large as a
# parameter), and large parameters are processed in blocks that stay in the
# cache across the update's passes instead of streaming each pass through main
# memory. Element-wise BLAS (axpy, scal) is avoided on purpose: OpenBLAS
# threads it, and on a busy machine every such call waits for a descheduled
# thread (a 20x slowdown measured on two shared cores).
# 2**16 elements: the update's four arrays (2 MiB in float64) stay in cache;
# measured fastest on 60 thousand and 1.9 million parameters alike.
_BLOCK = 1 << 16


def _blocks(*arrays):
    """Matching pieces of same-shaped arrays, to update piece by piece.

    Flat views in blocks of at most ``_BLOCK`` elements when every array is
    C-contiguous; otherwise the arrays themselves, whole.
    """
    if all(a.flags.c_contiguous for a in arrays):
        flats = [a.reshape(-1) for a in arrays]
        n = flats[0].shape[0]
        if n <= _BLOCK:
            yield flats
        else:
            for start in range(0, n, _BLOCK):
                yield [f[start : start + _BLOCK] for f in flats]
    else:
        yield arrays


# id(params' flat buffer) -> (weak reference to it, ids of the arrays last
# found packed alike with it); an entry goes when its buffer does
_PACKED = {}


def _forget(ref, *, key):
    if _PACKED.get(key, (None,))[0] is ref:
        del _PACKED[key]


def _flat_lists(*lists):
    """The lists to update: one flat array each when all are packed alike.

    Parameters, gradients and buffers packed the same way (see
    :mod:`sklearn_bp._flat`) are updated as one flat array each: a dozen numpy
    calls per step instead of a dozen per layer. The layout check is
    remembered (weakly, by the parameters' buffer) under the arrays' ids.
    """
    key = tuple(id(a) for lst in lists for a in lst)
    owner = lists[0][0].base
    entry = _PACKED.get(id(owner))
    if entry is not None and entry[0]() is owner and entry[1] == key:
        bases = [lst[0].base for lst in lists]
        if all(a.base is b for lst, b in zip(lists, bases, strict=True) for a in lst):
            return [[b] for b in bases]
    bases = [flat_base(lst) for lst in lists]
    shapes = [a.shape for a in lists[0]]
    if all(b is not None for b in bases) and all(
        [a.shape for a in lst] == shapes for lst in lists
    ):
        ref = weakref.ref(owner, functools.partial(_forget, key=id(owner)))
        _PACKED[id(owner)] = (ref, key)
        return [[b] for b in bases]
    return lists


def _scratch(lists):
    """A block-sized buffer for the step (small: at most ``_BLOCK`` elements)."""
    size = min(_BLOCK, max(p.size for p in lists[0]))
    return np.empty(size, dtype=lists[0][0].dtype)


def _run(kernel, lists, backup=None, scratch=False):
    """Apply ``kernel`` to matching blocks of ``lists`` (params first).

    With ``scratch``, the kernel also receives a scratch buffer shaped like
    the block (one block-sized buffer for the whole step).

    With ``backup`` (a list shaped like the parameters), each parameter block
    is first copied into it, while it is in cache, and the updated block's sum
    is accumulated: returns whether every updated parameter is finite. This is
    the training loop's "keep the previous parameters, check the new ones"
    done in the update's own pass instead of two more passes over memory. If
    the update is interrupted, the backup is completed before re-raising, so
    it always holds the parameters from before the step.
    """
    buffer = _scratch(lists) if scratch else None
    if backup is None:
        for arrays in zip(*_flat_lists(*lists), strict=True):
            for block in _blocks(*arrays):
                if buffer is None:
                    kernel(*block)
                else:
                    kernel(*block, _like(buffer, block[0]))
        return None
    flat = _flat_lists(*lists, backup)
    blocks = [b for arrays in zip(*flat, strict=True) for b in _blocks(*arrays)]
    total, done = 0.0, 0
    try:
        for block in blocks:
            np.copyto(block[-1], block[0])
            done += 1
            if buffer is None:
                kernel(*block[:-1])
            else:
                kernel(*block[:-1], _like(buffer, block[0]))
            total += float(block[0].sum())
    except BaseException:
        for block in blocks[done:]:
            np.copyto(block[-1], block[0])
        raise
    return math.isfinite(total)


def _like(scratch, a):
    """``scratch`` viewed with ``a``'s shape, or a new buffer if ``a`` is larger."""
    if a.size <= scratch.size:
        return scratch[: a.size].reshape(a.shape)
    return np.empty_like(a)  # a non-contiguous parameter is updated whole


def _add_weight_decay(g, p, weight_decay, scratch):
    """``g += weight_decay * p`` in place: torch's coupled weight decay.

    ``scratch`` (shaped like ``p``) takes the product; the ``_step`` methods
    always pass one when ``weight_decay`` is not 0.
    """
    g += np.multiply(p, weight_decay, out=scratch)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and optional Nesterov momentum.

    The update equals ``torch.optim.SGD(lr, momentum=momentum, dampening=0,
    nesterov=nesterov, weight_decay=weight_decay)`` with one parameter group:
    the gradient first becomes ``g = g + weight_decay * p`` (when
    ``weight_decay`` is not 0), the first step fills the momentum buffer with
    it, later ones compute ``buf = momentum * buf + g``; the step is
    ``lr * buf`` (or ``lr * (g + momentum * buf)`` with Nesterov).
    :class:`~sklearn.neural_network.MLPClassifier` instead folds the learning
    rate into its velocity, which drifts when the learning rate changes.

    ``weight_decay`` is not the estimator's ``alpha``. ``alpha`` is MLP's L2
    term inside the loss, ``alpha / (2 * sum of the batch's sample weights) *
    sum ||W||**2``: on the weights only, and scaled by the batch's sample
    weights. ``weight_decay`` acts in the optimizer, on every parameter
    (weights and biases, as torch with one parameter group), whatever the
    sample weights. The two combine: the ``alpha`` term's gradient is part of
    the gradient the optimizer receives.

    Parameters
    ----------
    momentum : float, default=0.9
        Momentum factor, in [0, 1). 0 gives plain SGD.
    nesterov : bool, default=True
        Whether to use Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float, default=0.0
        Coupled weight decay (an L2 penalty ``weight_decay / 2 * ||p||**2``
        on every parameter, added to the gradient), non-negative.

    See Also
    --------
    Adam : Per-parameter step sizes from moment estimates.
    RMSprop : Per-parameter step sizes from a squared-gradient average.

    Examples
    --------
    >>> from sklearn_bp import BackpropRegressor
    >>> from sklearn_bp.optimizers import SGD
    >>> reg = BackpropRegressor(optimizer=SGD(momentum=0.5, nesterov=False))
    >>> reg.get_params()["optimizer__momentum"]
    0.5
    """

    _parameter_constraints = {
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "nesterov": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, momentum=0.9, nesterov=True, weight_decay=0.0):
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay

    def _validate_params(self):
        super()._validate_params()
        if self.nesterov and self.momentum <= 0:
            raise ValueError(
                "SGD(nesterov=True) needs momentum > 0; got momentum="
                f"{self.momentum!r}. Use nesterov=False for plain SGD."
            )

    def init_state(self, params):
        return {"momentum_buffer": None}

    def step(self, params, grads, state, lr):
        self._step(params, grads, state, lr)

    def _step(self, params, grads, state, lr, backup=None):
        kernel, buffers = self._kernel(params, state, lr)
        return _run(
            kernel, [params, grads, *buffers], backup, scratch=self.weight_decay != 0
        )

    def _kernel(self, params, state, lr):
        """The step as a block kernel ``kernel(p, g, *buffers, scratch)``.

        Returns the kernel and the state lists whose matching blocks it takes.
        ``g`` may be overwritten; ``scratch`` (same shape) is needed only with
        ``weight_decay``. Counts one step: call once per step, then apply the
        kernel to every block of the parameters.
        """
        lr = float(lr)
        momentum = float(self.momentum)
        weight_decay = float(self.weight_decay)
        if momentum == 0:

            def plain(p_, g_, scratch=None):
                if weight_decay:
                    _add_weight_decay(g_, p_, weight_decay, scratch)
                g_ *= lr
                p_ -= g_

            return plain, []
        bufs = state["momentum_buffer"]
        first = bufs is None
        if first:  # torch fills the buffer with the first gradient
            bufs = state["momentum_buffer"] = _zeros_like(params)
        nesterov = self.nesterov

        def kernel(p_, g_, b_, scratch=None):
            if weight_decay:
                _add_weight_decay(g_, p_, weight_decay, scratch)
            if first:
                np.copyto(b_, g_)
            else:
                b_ *= momentum
                b_ += g_  # buf = momentum * buf + g
            if nesterov:
                # lr * (g + momentum * buf) == (lr * momentum) *
                # (g / momentum + buf): in g's buffer, with no temporary
                g_ *= 1.0 / momentum
                g_ += b_
                g_ *= lr * momentum
                p_ -= g_
            else:
                p_ -= np.multiply(b_, lr, out=g_)  # g is free: it takes lr * buf

        return kernel, [bufs]


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015).

    The update equals ``torch.optim.Adam(lr, betas=(beta_1, beta_2),
    eps=epsilon, weight_decay=weight_decay, amsgrad=False)`` with one
    parameter group::

        g = g + weight_decay * p                   (when weight_decay is not 0)
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        p -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)

    :class:`~sklearn.neural_network.MLPClassifier` adds ``epsilon`` to
    ``sqrt(v)`` before the bias correction instead, which makes it a little
    larger; with the default ``epsilon`` the two differ only while ``v`` is tiny.

    This ``weight_decay`` is coupled: it goes through the moment estimates,
    so parameters with large past gradients are decayed less.
    :class:`AdamW` decouples it, which is usually what is wanted.
    ``weight_decay`` is not the estimator's ``alpha``. ``alpha`` is MLP's L2
    term inside the loss, ``alpha / (2 * sum of the batch's sample weights) *
    sum ||W||**2``: on the weights only, and scaled by the batch's sample
    weights. ``weight_decay`` acts in the optimizer, on every parameter
    (weights and biases, as torch with one parameter group), whatever the
    sample weights. The two combine: the ``alpha`` term's gradient is part of
    the gradient the optimizer receives.

    Parameters
    ----------
    beta_1 : float, default=0.9
        Decay of the first-moment estimate, in [0, 1).
    beta_2 : float, default=0.999
        Decay of the second-moment estimate, in [0, 1).
    epsilon : float, default=1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default=0.0
        Coupled weight decay (``weight_decay * p`` added to the gradient of
        every parameter), non-negative.

    See Also
    --------
    AdamW : Adam with decoupled weight decay.
    RMSprop : The same denominator without the first moment and bias
        correction.
    SGD : Stochastic gradient descent with momentum.

    References
    ----------
    .. [1] Kingma, D. P. and Ba, J. "Adam: A method for stochastic optimization."
       ICLR 2015. https://arxiv.org/abs/1412.6980

    Examples
    --------
    >>> from sklearn_bp.optimizers import Adam
    >>> Adam(beta_1=0.8)
    Adam(beta_1=0.8)
    """

    _parameter_constraints = {
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }
    # AdamW sets it: weight decay applied to the parameters, not the gradient
    _decoupled = False

    def __init__(self, *, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.0):
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.weight_decay = weight_decay

    def init_state(self, params):
        return {
            "step": 0,
            "exp_avg": _zeros_like(params),
            "exp_avg_sq": _zeros_like(params),
        }

    def step(self, params, grads, state, lr):
        self._step(params, grads, state, lr)

    def _step(self, params, grads, state, lr, backup=None):
        kernel, buffers = self._kernel(params, state, lr)
        # Large parameters: g**2 and the denominator go to a block-sized
        # scratch buffer that stays in cache, so that the gradient is only
        # read, not written back to memory; small ones use g's own buffer
        # (one array fewer in cache). Coupled weight decay needs the scratch.
        large = sum(p.size for p in params) > 2 * _BLOCK
        coupled = self.weight_decay != 0 and not self._decoupled
        return _run(kernel, [params, grads, *buffers], backup, scratch=large or coupled)

    def _kernel(self, params, state, lr):
        """The step as a block kernel ``kernel(p, g, m, v, scratch=None)``.

        See :meth:`SGD._kernel`; ``scratch`` is a block-sized buffer shaped
        like ``g`` (``None``: ``g``'s own buffer is used; coupled weight decay
        needs it).
        """
        beta_1, beta_2 = float(self.beta_1), float(self.beta_2)
        eps = float(self.epsilon)
        weight_decay = float(self.weight_decay)
        # torch.optim.AdamW: p *= 1 - lr * weight_decay, before the moments
        decay = 1.0 - float(lr) * weight_decay if self._decoupled else 1.0
        coupled = 0.0 if self._decoupled else weight_decay
        state["step"] += 1
        t = state["step"]
        step_size = float(lr) / (1.0 - beta_1**t)
        bias_correction2_sqrt = (1.0 - beta_2**t) ** 0.5
        # step_size * m / (sqrt(v) / bc2 + eps)
        #   == (step_size * bc2) * m / (sqrt(v) + eps * bc2): one pass fewer.
        scaled_eps = eps * bias_correction2_sqrt
        scaled_step = step_size * bias_correction2_sqrt

        def kernel(p_, g_, m_, v_, scratch=None):
            if decay != 1.0:
                p_ *= decay
            if coupled:
                _add_weight_decay(g_, p_, coupled, scratch)
            # beta_1 * m + (1 - beta_1) * g
            #   == (1 - beta_1) * (m * beta_1 / (1 - beta_1) + g):
            # in m's buffer, with no temporary (g is still needed)
            m_ *= beta_1 / (1.0 - beta_1)
            m_ += g_
            m_ *= 1.0 - beta_1
            s = g_ if scratch is None else scratch  # g is not needed below
            np.multiply(g_, g_, out=s)
            s *= 1.0 - beta_2
            v_ *= beta_2
            v_ += s
            denom = np.sqrt(v_, out=s)
            denom += scaled_eps
            np.divide(m_, denom, out=denom)
            denom *= scaled_step
            p_ -= denom

        return kernel, [state["exp_avg"], state["exp_avg_sq"]]


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    The update equals ``torch.optim.AdamW(lr, betas=(beta_1, beta_2),
    eps=epsilon, weight_decay=weight_decay, amsgrad=False)`` with one
    parameter group: every parameter first shrinks by the factor
    ``1 - lr * weight_decay``, then takes :class:`Adam`'s step computed from
    the gradient alone::

        p *= 1 - lr * weight_decay
        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        p -= lr / (1 - beta_1**t) * m / (sqrt(v) / sqrt(1 - beta_2**t) + epsilon)

    ``lr`` is the step's learning rate, so a learning-rate schedule scales the
    decay too, as in torch. Unlike ``Adam(weight_decay=...)``, the decay never
    enters the moment estimates: every parameter shrinks by the same factor,
    whatever its gradients' history. ``weight_decay=0`` is :class:`Adam`, bit
    for bit.

    ``weight_decay`` is not the estimator's ``alpha``. ``alpha`` is MLP's L2
    term inside the loss, ``alpha / (2 * sum of the batch's sample weights) *
    sum ||W||**2``: on the weights only, scaled by the batch's sample weights,
    and normalised by Adam's denominator like the rest of the gradient.
    ``weight_decay`` shrinks every parameter (weights and biases, as torch
    with one parameter group), whatever the sample weights. The two combine:
    the ``alpha`` term's gradient is part of the gradient Adam receives.

    Parameters
    ----------
    beta_1 : float, default=0.9
        Decay of the first-moment estimate, in [0, 1).
    beta_2 : float, default=0.999
        Decay of the second-moment estimate, in [0, 1).
    epsilon : float, default=1e-8
        Added to the denominator for numerical stability.
    weight_decay : float, default=0.01
        Decoupled weight decay, non-negative (torch's default, 0.01).

    See Also
    --------
    Adam : Adam with coupled (L2-style) weight decay, off by default.
    SGD : Stochastic gradient descent with momentum.

    References
    ----------
    .. [1] Loshchilov, I. and Hutter, F. "Decoupled weight decay
       regularization." ICLR 2019. https://arxiv.org/abs/1711.05101

    Examples
    --------
    >>> from sklearn_bp import BackpropClassifier
    >>> from sklearn_bp.optimizers import AdamW
    >>> clf = BackpropClassifier(optimizer=AdamW(weight_decay=1e-3))
    >>> clf.get_params()["optimizer__weight_decay"]
    0.001
    """

    _decoupled = True

    def __init__(self, *, beta_1=0.9, beta_2=0.999, epsilon=1e-8, weight_decay=0.01):
        super().__init__(
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, weight_decay=weight_decay
        )


class RMSprop(Optimizer):
    """RMSprop (Hinton), optionally centered and with momentum.

    The update equals ``torch.optim.RMSprop(lr, alpha=rho, eps=epsilon,
    momentum=momentum, centered=centered, weight_decay=weight_decay)`` with one
    parameter group::

        g = g + weight_decay * p                 (when weight_decay is not 0)
        v = rho * v + (1 - rho) * g**2
        avg = sqrt(v - gbar**2) + epsilon   (centered; gbar = rho*gbar + (1-rho)*g)
        avg = sqrt(v) + epsilon             (otherwise)
        buf = momentum * buf + g / avg;  p -= lr * buf   (momentum > 0)
        p -= lr * g / avg                                (momentum == 0)

    ``weight_decay`` is not the estimator's ``alpha``. ``alpha`` is MLP's L2
    term inside the loss, ``alpha / (2 * sum of the batch's sample weights) *
    sum ||W||**2``: on the weights only, and scaled by the batch's sample
    weights. ``weight_decay`` acts in the optimizer, on every parameter
    (weights and biases, as torch with one parameter group), whatever the
    sample weights. The two combine: the ``alpha`` term's gradient is part of
    the gradient the optimizer receives.

    Parameters
    ----------
    rho : float, default=0.9
        Decay of the squared-gradient average (``alpha`` in PyTorch), in [0, 1).
    epsilon : float, default=1e-8
        Added to the denominator for numerical stability.
    momentum : float, default=0.0
        Momentum factor, in [0, 1).
    centered : bool, default=False
        Normalise by an estimate of the gradient's variance instead of its
        second moment.
    weight_decay : float, default=0.0
        Coupled weight decay (``weight_decay * p`` added to the gradient of
        every parameter), non-negative.

    See Also
    --------
    Adam : Adds a bias-corrected moving average of the gradient.
    SGD : Stochastic gradient descent with momentum.

    Examples
    --------
    >>> from sklearn_bp.optimizers import RMSprop
    >>> RMSprop(rho=0.95, centered=True)
    RMSprop(centered=True, rho=0.95)
    """

    _parameter_constraints = {
        "rho": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "centered": ["boolean"],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self, *, rho=0.9, epsilon=1e-8, momentum=0.0, centered=False, weight_decay=0.0
    ):
        self.rho = rho
        self.epsilon = epsilon
        self.momentum = momentum
        self.centered = centered
        self.weight_decay = weight_decay

    def init_state(self, params):
        state = {"step": 0, "square_avg": _zeros_like(params)}
        if self.centered:
            state["grad_avg"] = _zeros_like(params)
        if self.momentum > 0:
            state["momentum_buffer"] = _zeros_like(params)
        return state

    def step(self, params, grads, state, lr):
        self._step(params, grads, state, lr)

    def _step(self, params, grads, state, lr, backup=None):
        kernel, buffers = self._kernel(params, state, lr)
        return _run(kernel, [params, grads, *buffers], backup, scratch=True)

    def _kernel(self, params, state, lr):
        """The step as a block kernel ``kernel(p, g, v, [gbar,] [buf,] scratch)``.

        See :meth:`SGD._kernel`; ``g`` is needed after ``g**2``, so the kernel
        needs ``scratch``, a buffer shaped like ``g``.
        """
        rho, eps = float(self.rho), float(self.epsilon)
        momentum, lr = float(self.momentum), float(lr)
        weight_decay = float(self.weight_decay)
        # ``centered`` or ``momentum`` may have been switched on since
        # init_state (set_params between partial_fit calls): the buffer the
        # option needs starts at zero, as init_state would have made it.
        if self.centered and "grad_avg" not in state:
            state["grad_avg"] = _zeros_like(params)
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = _zeros_like(params)
        state["step"] += 1
        centered = self.centered
        buffers = [state["square_avg"]]
        if centered:
            buffers.append(state["grad_avg"])
        if momentum > 0:
            buffers.append(state["momentum_buffer"])

        def kernel(p_, g_, v_, *rest):
            *rest, s = rest
            if weight_decay:
                _add_weight_decay(g_, p_, weight_decay, s)
            avg = _rms_denominator(g_, v_, rest[0] if centered else None, s, rho)
            avg += eps
            np.divide(g_, avg, out=g_)  # g / avg, in g's buffer
            if momentum > 0:
                buf = rest[-1]
                buf *= momentum
                buf += g_
                p_ -= np.multiply(buf, lr, out=g_)
            else:
                g_ *= lr
                p_ -= g_

        return kernel, buffers


def _rms_denominator(g, v, gbar, scratch, rho):
    """RMSprop's ``sqrt(v)`` (``sqrt(v - gbar**2)`` when centered, ``gbar``
    given) after updating ``v`` (and ``gbar``) in place with ``g``; written in
    ``scratch``, which it returns."""
    np.multiply(g, g, out=scratch)
    scratch *= 1.0 - rho
    v *= rho
    v += scratch
    if gbar is None:
        return np.sqrt(v, out=scratch)
    gbar *= rho
    gbar += np.multiply(g, 1.0 - rho, out=scratch)
    avg = np.multiply(gbar, gbar, out=scratch)
    np.subtract(v, avg, out=avg)
    return np.sqrt(avg, out=avg)


class LBFGS(Spec):
    """Full-batch L-BFGS, the quasi-Newton solver of MLP's ``solver="lbfgs"``.

    Not a step rule like the other optimizers: each iteration uses the whole
    training set, and :func:`scipy.optimize.minimize` (``method="L-BFGS-B"``)
    runs the iterations over the packed parameter vector. The estimator's
    ``max_iter`` counts iterations, ``max_fun`` limits loss evaluations and
    ``tol`` is scipy's ``gtol``, exactly as in
    :class:`~sklearn.neural_network.MLPClassifier`; ``learning_rate``,
    ``learning_rate_init``, ``batch_size`` and ``shuffle`` do not apply, and
    there is no ``partial_fit``. The vector scipy works on is float64; each
    evaluation casts it to the parameters' dtype (float32 input trains and
    predicts in float32).

    Parameters
    ----------
    history_size : int, default=10
        Number of past updates kept to approximate the inverse Hessian
        (scipy's ``maxcor``; MLP uses scipy's default, 10).
    max_linesearch : int, default=20
        Most loss evaluations per line search (scipy's ``maxls``).

    See Also
    --------
    Adam : The default stochastic optimizer, for large data or ``partial_fit``.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_bp import BackpropClassifier
    >>> from sklearn_bp.optimizers import LBFGS
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = BackpropClassifier(hidden_layer_sizes=(8,), optimizer=LBFGS(),
    ...                          max_iter=500, random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True
    >>> len(clf.loss_curve_) == clf.n_iter_
    True
    """

    _parameter_constraints = {
        "history_size": [Interval(Integral, 1, None, closed="left")],
        "max_linesearch": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, history_size=10, max_linesearch=20):
        self.history_size = history_size
        self.max_linesearch = max_linesearch


# The optimizers whose update kernels (``_step``, ``_kernel``) the training step
# and the fused step call directly; a subclass may redefine ``step``, so the
# check is on the exact type.
BUILTIN_OPTIMIZERS = (SGD, Adam, AdamW, RMSprop)

OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}

#: Full-batch solvers, accepted by the ``optimizer`` parameter too.
SOLVERS = {"lbfgs": LBFGS}


def get_optimizer(optimizer):
    """Return a private optimizer instance from a name or an instance.

    Parameters
    ----------
    optimizer : str, Optimizer or LBFGS
        ``"sgd"``, ``"adam"``, ``"adamw"``, ``"rmsprop"``, ``"lbfgs"``, an
        :class:`Optimizer` or an :class:`LBFGS`.

    Returns
    -------
    optimizer : Optimizer or LBFGS
        A new instance: a copy when an instance was given.

    See Also
    --------
    Optimizer : Base class of optimizers, to write your own.

    Examples
    --------
    >>> from sklearn_bp.optimizers import get_optimizer
    >>> get_optimizer("sgd")
    SGD()
    >>> get_optimizer("lbfgs")
    LBFGS()
    """
    if isinstance(optimizer, LBFGS) or optimizer in SOLVERS:
        return resolve(optimizer, registry=SOLVERS, base=LBFGS, param_name="optimizer")
    return resolve(
        optimizer, registry=OPTIMIZERS, base=Optimizer, param_name="optimizer"
    )
