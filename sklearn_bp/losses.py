"""Losses: each owns its output link, its value and its gradient.

A :class:`Loss` maps the network's raw output (the last layer's ``Z``, no
activation applied) to predictions through :meth:`Loss.link`, reports the
sample-weighted mean of its per-sample values with :meth:`Loss.loss`, and gives
the per-sample gradient with respect to the raw output with
:meth:`Loss.gradient`. The backward pass starts from that gradient; a loss whose
link is its canonical link (log-loss with softmax, squared error with the
identity) simply has the short form ``link(raw) - y`` inside its own
``gradient``, rather than hard-coded in the backward pass.
"""

import copy
import functools
import math
from numbers import Real

import numpy as np
from scipy.special import expit, log_expit
from sklearn.utils._param_validation import Interval

from ._spec import Spec, resolve

__all__ = [
    "Loss",
    "LogLoss",
    "SquaredError",
    "AbsoluteError",
    "Huber",
    "Poisson",
    "LOSSES",
    "get_loss",
]


def _weighted_mean(values, sample_weight):
    """Mean of per-sample ``values``, weighted by ``sample_weight`` if given."""
    if sample_weight is None:
        # Accumulated in float64 (float32 losses near 1e38 overflow a float32
        # sum); a float64 sum that overflows while the mean does not is redone
        # on values / n.
        # (np.mean's own arithmetic, without its Python wrapper: this runs
        # once per training step)
        with np.errstate(over="ignore"):
            mean = np.add.reduce(values, axis=None, dtype=np.float64) / values.size
        if math.isinf(mean) and np.all(np.isfinite(values)):
            mean = np.sum(values / values.size)
        return float(mean)
    # Normalise the weights before the dot product: sum(w * v) overflows for
    # huge weights, and loses every digit for subnormal ones, when the mean
    # itself is an ordinary number.
    return float(np.dot(sample_weight / np.sum(sample_weight), values))


class Loss(Spec):
    """Base class of losses.

    Subclass it and implement :meth:`link`, :meth:`loss` and :meth:`gradient`;
    pass an instance as the ``loss`` parameter of an estimator.

    The raw output ``raw`` has shape ``(n_samples, n_outputs)``; so does the
    target ``y`` given to the loss (a 1-D regression target is passed as one
    column; classification targets are passed one-hot / indicator encoded).

    Attributes
    ----------
    out_activation_name : str
        Name of the output link, reported as the estimator's ``out_activation_``.

    See Also
    --------
    get_loss : Resolve a name or an instance.

    Examples
    --------
    A quartic loss, ``mean((raw - y) ** 4)``:

    >>> import numpy as np
    >>> from sklearn_bp.losses import Loss
    >>> class Quartic(Loss):
    ...     def link(self, raw):
    ...         return raw
    ...     def loss(self, y, raw, sample_weight=None):
    ...         per_sample = np.mean((raw - y) ** 4, axis=1)
    ...         return float(np.average(per_sample, weights=sample_weight))
    ...     def gradient(self, y, raw):
    ...         return 4 * (raw - y) ** 3 / raw.shape[1]
    >>> Quartic().loss(np.zeros((2, 1)), np.ones((2, 1)))
    1.0
    """

    out_activation_name = "identity"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A built-in's fused _loss_and_delta computes the built-in's loss: a
        # subclass that redefines link, loss or gradient without its own fused
        # version gets the generic one back, which calls its methods.
        redefined = {"link", "loss", "gradient"} & set(vars(cls))
        if redefined and "_loss_and_delta" not in vars(cls):
            cls._loss_and_delta = Loss._loss_and_delta

    def link(self, raw):
        """Map raw network outputs to predictions.

        Parameters
        ----------
        raw : ndarray of shape (n_samples, n_outputs)
            Output of the last layer, before any activation.

        Returns
        -------
        prediction : ndarray of shape (n_samples, n_outputs)
            Predictions (class probabilities for classification losses).
        """
        raise NotImplementedError

    def loss(self, y, raw, sample_weight=None):
        """Sample-weighted mean loss.

        Parameters
        ----------
        y : ndarray of shape (n_samples, n_outputs)
            Encoded target.
        raw : ndarray of shape (n_samples, n_outputs)
            Raw network output.
        sample_weight : ndarray of shape (n_samples,), default=None
            Non-negative weights; ``None`` means equal weights.

        Returns
        -------
        value : float
            ``sum_i w_i * l_i / sum_i w_i`` where ``l_i`` is sample ``i``'s loss.
        """
        raise NotImplementedError

    def gradient(self, y, raw):
        """Per-sample gradient of the loss with respect to the raw output.

        Parameters
        ----------
        y : ndarray of shape (n_samples, n_outputs)
            Encoded target.
        raw : ndarray of shape (n_samples, n_outputs)
            Raw network output. Must not be modified.

        Returns
        -------
        grad : ndarray of shape (n_samples, n_outputs)
            Row ``i`` is ``d l_i / d raw_i``, so that the gradient of
            :meth:`loss` is ``w_i * grad_i / sum(w)``.
        """
        raise NotImplementedError

    def log_link(self, raw):
        """Logarithm of :meth:`link`, finite for classification losses.

        Parameters
        ----------
        raw : ndarray of shape (n_samples, n_outputs)
            Raw network output.

        Returns
        -------
        log_prediction : ndarray of shape (n_samples, n_outputs)
            ``log(link(raw))``; this default clips at the smallest normal number
            of the dtype so that it is never ``-inf``.
        """
        pred = self.link(raw)
        return np.log(np.maximum(pred, np.finfo(pred.dtype).tiny))

    def _for_target(self, target_type):
        """The loss to train with for this kind of target (default: ``self``).

        ``target_type`` is :func:`sklearn.utils.multiclass.type_of_target`'s
        answer for the classes. A loss whose link depends on it returns a
        configured copy: the spec itself is never changed by a fit.
        """
        return self

    def _check_target(self, y):
        """Raise ValueError if ``y`` is outside the loss's domain."""

    # Used by the training loop on buffers it owns: returns the weighted loss and
    # overwrites ``out`` (which may be ``raw`` itself) with the output delta
    # ``w_i * grad_i / sum(w)``. Built-ins override it to avoid temporaries.
    def _loss_and_delta(self, y, raw, sample_weight, weight_sum, out):
        value = self.loss(y, raw, sample_weight)
        grad = self.gradient(y, raw)
        np.copyto(out, grad)
        _scale_delta(out, sample_weight, weight_sum)
        return value


def _row_dot(y, v):
    """Row-wise ``sum_j y_ij * v_ij``; a zero ``y_ij`` adds 0 even to a -inf."""
    out = np.einsum("ij,ij->i", y, v)
    # (one reduction: a NaN entry makes the sum NaN; a false alarm from +inf
    # and -inf entries only takes the exact path below)
    if math.isnan(out.sum()):
        # 0 * -inf: a log-probability that underflowed for a class of zero
        # target weight (raw outputs ~1e308 apart). It contributes nothing.
        out = np.einsum("ij,ij->i", y, np.where(y == 0, 0, v))
    return out


@functools.lru_cache(maxsize=8)
def _row_indices(n):
    """``arange(n)``, read-only and cached: the same batch size recurs every step."""
    rows = np.arange(n)
    rows.flags.writeable = False
    return rows


def _softmax_shift(raw, out):
    """Write ``raw - rowmax`` into ``out`` (may alias ``raw``); return the argmax.

    Returns ``(rows, top)``, the index arrays of each row's largest entry.
    """
    rows = _row_indices(raw.shape[0])
    top = raw.argmax(axis=1)
    row_max = raw[rows, top][:, None]  # a copy: safe when out aliases raw
    with np.errstate(over="ignore"):  # -inf for entries ~1e308 below the max
        np.subtract(raw, row_max, out=out)
    return rows, top


def _softmax(raw):
    """Row-wise softmax; rows whose entries are ~1e308 apart do not overflow."""
    out = np.empty_like(raw)
    _softmax_shift(raw, out)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _log_softmax(raw):
    """Row-wise log-softmax, accurate also where the top probability is ~1.

    ``log sum exp(raw - max) = log1p(sum of the other terms)``: the top entry's
    own term is exactly 1, and ``log(1 + small)`` would round ``small`` away
    (scipy's ``log_softmax`` does), so the top class's log-probability and
    cross-entropy would lose their digits.
    """
    out = np.empty_like(raw)
    rows, top = _softmax_shift(raw, out)
    rest = np.exp(out)
    rest[rows, top] = 0.0
    out -= np.log1p(rest.sum(axis=1, keepdims=True))
    return out


def _binary_cross_entropy(y, raw):
    """``-y log s(r) - (1 - y) log(1 - s(r))`` summed over the columns, per row.

    Written as ``(1 - y) softplus(r) + y softplus(-r)``: two non-negative terms,
    so no cancellation (``softplus(r) - y r`` loses every digit of a small loss
    when ``r`` is large and ``y = 1``), and finite for any finite ``r``.
    """
    return np.einsum("ij,ij->i", 1 - y, np.logaddexp(0, raw)) + np.einsum(
        "ij,ij->i", y, np.logaddexp(0, -raw)
    )


def _scale_delta(out, sample_weight, weight_sum):
    if sample_weight is None:
        out *= 1.0 / out.shape[0]
    else:
        # w / sum(w), not w * (1 / sum(w)): the reciprocal of a subnormal sum
        # of weights is inf.
        out *= (sample_weight / weight_sum)[:, None]


class LogLoss(Loss):
    """Cross-entropy for classification.

    With one output (binary classification and each label of a multilabel
    problem) the link is the logistic function and the loss the binary
    cross-entropy; with several mutually exclusive classes the link is the
    softmax and the loss the categorical cross-entropy. For multilabel targets
    the per-sample value sums the labels' binary cross-entropies, as
    :class:`~sklearn.neural_network.MLPClassifier` does.

    With ``label_smoothing=eps`` the loss and its gradient are computed
    against smoothed targets instead of the 0/1 ones. For several exclusive
    classes (softmax), each one-hot row becomes ``(1 - eps) * y + eps / K``
    with ``K`` classes: the value equals
    ``torch.nn.functional.cross_entropy(raw, labels, label_smoothing=eps)``.
    With one logistic unit per output (binary targets, and each label of a
    multilabel target) there is no other class to spread ``eps`` over, so
    each 0/1 target moves toward 1/2: ``(1 - eps) * y + eps / 2`` (0 becomes
    ``eps / 2``, 1 becomes ``1 - eps / 2``); the value equals
    ``torch.nn.functional.binary_cross_entropy_with_logits`` on those
    targets (summed over the labels for multilabel). The losses an estimator
    reports (``loss_``, ``loss_curve_``, ``validation_loss_curve_``) are then
    the smoothed loss; predictions, probabilities and scores are unchanged
    in meaning.

    Parameters
    ----------
    label_smoothing : float, default=0.0
        Amount of smoothing, in [0, 1). 0 trains against the 0/1 targets.

    See Also
    --------
    sklearn.metrics.log_loss : The same value for binary and multiclass
        targets (without smoothing), computed from the predicted probabilities.

    References
    ----------
    .. [1] Szegedy, C. et al. "Rethinking the Inception architecture for
       computer vision." CVPR 2016, section 7. https://arxiv.org/abs/1512.00567

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.losses import LogLoss
    >>> LogLoss().loss(np.array([[1.0]]), np.array([[0.0]]))
    0.6931471805599453

    Smoothing a binary target of 1 by 0.2 trains toward 0.9:

    >>> LogLoss(label_smoothing=0.2).gradient(np.array([[1.0]]), np.array([[0.0]]))
    array([[-0.4]])
    """

    _parameter_constraints = {
        "label_smoothing": [Interval(Real, 0, 1, closed="left")],
    }
    out_activation_name = "logistic"
    # softmax or not: decided by _for_target, else by the number of outputs
    _softmax = None

    def __init__(self, *, label_smoothing=0.0):
        self.label_smoothing = label_smoothing

    def _for_target(self, target_type):
        fitted = copy.copy(self)
        fitted._softmax = target_type == "multiclass"
        fitted.out_activation_name = "softmax" if fitted._softmax else "logistic"
        return fitted

    def _use_softmax(self, raw):
        return raw.shape[1] > 1 if self._softmax is None else self._softmax

    def _smoothed(self, y, raw):
        """The targets the loss is computed against: ``y`` itself without smoothing.

        Softmax: ``(1 - eps) * y + eps / K``; logistic units: each target toward
        1/2, ``(1 - eps) * y + eps / 2``. A new array: ``y`` is the caller's.
        """
        eps = float(self.label_smoothing)
        if eps == 0:
            return y
        n_classes = raw.shape[1] if self._use_softmax(raw) else 2
        smoothed = np.multiply(y, 1.0 - eps, dtype=raw.dtype)
        smoothed += eps / n_classes
        return smoothed

    def link(self, raw):
        if self._use_softmax(raw):
            return _softmax(raw)
        return expit(raw)

    def log_link(self, raw):
        if self._use_softmax(raw):
            # Finite always: a log-probability below -max (raw outputs more than
            # the largest float apart) is given as -max rather than -inf.
            out = _log_softmax(raw)
            return np.maximum(out, -np.finfo(out.dtype).max, out=out)
        return log_expit(raw)

    def _per_sample(self, y, raw):
        if self._use_softmax(raw):
            return -_row_dot(y, _log_softmax(raw))
        return _binary_cross_entropy(y, raw)

    def loss(self, y, raw, sample_weight=None):
        y = self._smoothed(y, raw)
        return _weighted_mean(self._per_sample(y, raw), sample_weight)

    def gradient(self, y, raw):
        # Canonical link: the derivative of the link cancels against the
        # loss's, leaving prediction minus target (also for smoothed targets:
        # a softmax row's targets still sum to 1).
        return self.link(raw) - self._smoothed(y, raw)

    def _loss_and_delta(self, y, raw, sample_weight, weight_sum, out):
        y = self._smoothed(y, raw)
        # ``out`` may alias ``raw``: read everything needed from raw first.
        if self._use_softmax(raw):
            # Same formulation as _log_softmax, in the delta buffer:
            # loss = log1p(rest) - y . (raw - max), both terms non-negative.
            rows, top = _softmax_shift(raw, out)
            y_dot_shifted = _row_dot(y, out)
            np.exp(out, out=out)
            out[rows, top] = 0.0
            # (row sums by einsum: half the time of sum(axis=1) on short rows)
            rest = np.einsum("ij->i", out)
            per_sample = np.log1p(rest)
            per_sample -= y_dot_shifted
            out[rows, top] = 1.0
            rest += 1.0
            out /= rest[:, None]
        else:
            per_sample = _binary_cross_entropy(y, raw)
            expit(raw, out=out)
        out -= y
        _scale_delta(out, sample_weight, weight_sum)
        return _weighted_mean(per_sample, sample_weight)


class SquaredError(Loss):
    """Half squared error, ``0.5 * mean((raw - y) ** 2)`` over samples and outputs.

    This is the value :class:`~sklearn.neural_network.MLPRegressor` reports. Its
    gradient here is the true gradient of that value, also with several outputs
    (MLP's multi-output gradient is ``n_outputs`` times too large).

    See Also
    --------
    Huber : Quadratic near the target only, less sensitive to outliers.
    sklearn.metrics.mean_squared_error : Twice this value.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.losses import SquaredError
    >>> SquaredError().loss(np.array([[0.0]]), np.array([[2.0]]))
    2.0
    """

    def link(self, raw):
        return raw

    def loss(self, y, raw, sample_weight=None):
        diff = raw - y
        return 0.5 * _weighted_mean(np.mean(diff * diff, axis=1), sample_weight)

    def gradient(self, y, raw):
        return (raw - y) / raw.shape[1]

    def _loss_and_delta(self, y, raw, sample_weight, weight_sum, out):
        np.subtract(raw, y, out=out)
        per_sample = np.einsum("ij,ij->i", out, out)
        value = 0.5 * _weighted_mean(per_sample, sample_weight) / out.shape[1]
        if out.shape[1] > 1:
            out *= 1.0 / out.shape[1]
        _scale_delta(out, sample_weight, weight_sum)
        return value


class AbsoluteError(Loss):
    """Absolute error, ``mean(|raw - y|)`` over samples and outputs.

    The subgradient is ``sign(raw - y)``, 0 where ``raw == y``.

    See Also
    --------
    Huber : Linear far from the target, quadratic (smooth) near it.
    sklearn.metrics.mean_absolute_error : The same value.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.losses import AbsoluteError
    >>> AbsoluteError().gradient(np.array([[1.0, 1.0]]), np.array([[0.0, 1.0]]))
    array([[-0.5,  0. ]])
    """

    def link(self, raw):
        return raw

    def loss(self, y, raw, sample_weight=None):
        return _weighted_mean(np.mean(np.abs(raw - y), axis=1), sample_weight)

    def gradient(self, y, raw):
        return np.sign(raw - y) / raw.shape[1]


class Huber(Loss):
    """Huber loss, quadratic within ``delta`` of the target and linear beyond.

    Per element, ``0.5 * r ** 2`` if ``|r| <= delta`` else
    ``delta * (|r| - 0.5 * delta)`` with ``r = raw - y``, averaged over samples
    and outputs, as ``torch.nn.HuberLoss``.

    Parameters
    ----------
    delta : float, default=1.0
        Threshold between the quadratic and linear parts.

    See Also
    --------
    SquaredError : The quadratic part everywhere.
    AbsoluteError : The linear part everywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.losses import Huber
    >>> Huber(delta=1.0).loss(np.array([[0.0, 0.0]]), np.array([[0.5, 3.0]]))
    1.3125
    """

    _parameter_constraints = {"delta": [Interval(Real, 0, None, closed="neither")]}

    def __init__(self, *, delta=1.0):
        self.delta = delta

    def link(self, raw):
        return raw

    def loss(self, y, raw, sample_weight=None):
        delta = float(self.delta)
        abs_r = np.abs(raw - y)
        # q (|r| - q / 2) with q = min(|r|, delta) is both branches at once, and
        # never squares a residual beyond delta (which would overflow for
        # |r| > 1e154 although the loss is finite).
        q = np.minimum(abs_r, delta)
        values = q * (abs_r - 0.5 * q)
        return _weighted_mean(np.mean(values, axis=1), sample_weight)

    def gradient(self, y, raw):
        delta = float(self.delta)
        return np.clip(raw - y, -delta, delta) / raw.shape[1]


class Poisson(Loss):
    """Poisson deviance-style loss with log link, ``mean(exp(raw) - y * raw)``.

    Equals ``torch.nn.functional.poisson_nll_loss(raw, y, log_input=True,
    full=False)``. The target must be non-negative; predictions are
    ``exp(raw)``.

    See Also
    --------
    sklearn.metrics.mean_poisson_deviance : Twice this loss plus a term that
        does not depend on the predictions.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.losses import Poisson
    >>> Poisson().loss(np.array([[1.0]]), np.array([[0.0]]))
    1.0
    """

    out_activation_name = "exp"

    def link(self, raw):
        with np.errstate(over="ignore"):
            return np.exp(raw)

    def log_link(self, raw):
        return raw.copy()

    def loss(self, y, raw, sample_weight=None):
        with np.errstate(over="ignore"):
            values = np.mean(np.exp(raw) - y * raw, axis=1)
        return _weighted_mean(values, sample_weight)

    def gradient(self, y, raw):
        with np.errstate(over="ignore"):
            return (np.exp(raw) - y) / raw.shape[1]

    def _check_target(self, y):
        if np.any(y < 0):
            raise ValueError(
                "The 'poisson' loss needs a non-negative target y (counts or "
                f"rates); got a minimum of {np.min(y)!r}."
            )


LOSSES = {
    "log_loss": LogLoss,
    "squared_error": SquaredError,
    "absolute_error": AbsoluteError,
    "huber": Huber,
    "poisson": Poisson,
}


def get_loss(loss, *, allowed=None):
    """Return a private loss instance from a name or an instance.

    Parameters
    ----------
    loss : str or Loss
        One of the names in :data:`LOSSES` (or of ``allowed``) or a :class:`Loss`.
    allowed : iterable of str, default=None
        Restrict the accepted names (an estimator accepts only its own).

    Returns
    -------
    loss : Loss
        A new instance: a copy when an instance was given.

    See Also
    --------
    Loss : Base class of losses, to write your own.

    Examples
    --------
    >>> from sklearn_bp.losses import get_loss
    >>> get_loss("huber")
    Huber()
    """
    registry = LOSSES if allowed is None else {k: LOSSES[k] for k in allowed}
    return resolve(loss, registry=registry, base=Loss, param_name="loss")
