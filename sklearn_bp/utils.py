"""Helpers for users who write their own components."""

import numpy as np
from sklearn.utils import check_random_state

from . import _network
from .activations import get_activation
from .losses import get_loss

__all__ = ["check_gradients"]


def check_gradients(
    activation="relu",
    loss="squared_error",
    *,
    X=None,
    Y=None,
    hidden_layer_sizes=(5, 4),
    alpha=0.0,
    sample_weight=None,
    eps=1e-6,
    random_state=0,
):
    """Compare backpropagated gradients with central finite differences.

    Builds a small network with the given activation and loss, computes the
    gradient of the (penalised, sample-weighted) loss with respect to every
    weight and bias by backpropagation, and again by central differences. Use it
    to check a custom :class:`~sklearn_bp.activations.Activation` (its
    ``derivative``) or :class:`~sklearn_bp.losses.Loss` (its ``gradient``).

    Parameters
    ----------
    activation : str or Activation, default="relu"
        Hidden activation to check.
    loss : str or Loss, default="squared_error"
        Loss to check. ``"log_loss"`` uses the logistic link on each output.
    X : ndarray of shape (n_samples, n_features), default=None
        Inputs; 20 x 3 standard normal draws if ``None``.
    Y : ndarray of shape (n_samples, n_outputs), default=None
        Encoded targets; if ``None``, draws suited to the loss (0/1 labels for
        ``"log_loss"``, non-negative counts for ``"poisson"``, normal otherwise)
        with 2 outputs.
    hidden_layer_sizes : tuple of int, default=(5, 4)
        Hidden layers of the test network.
    alpha : float, default=0.0
        L2 penalty included in the checked loss.
    sample_weight : ndarray of shape (n_samples,), default=None
        Sample weights included in the checked loss.
    eps : float, default=1e-6
        Finite-difference step.
    random_state : int, RandomState instance or None, default=0
        Seeds the weights and the default data.

    Returns
    -------
    relative_error : float
        ``||g - g_fd|| / (||g|| + ||g_fd||)`` over all parameters: about 1e-8 or
        less for a correct gradient in float64; near 1 for a wrong one. Kinks
        (ReLU at 0, absolute error at ``raw == y``) can raise it when a point
        sits within ``eps`` of one.

    See Also
    --------
    sklearn_bp.activations.Activation : Base class of activations.
    sklearn_bp.losses.Loss : Base class of losses.

    Examples
    --------
    >>> from sklearn_bp.utils import check_gradients
    >>> check_gradients("tanh", "huber") < 1e-6
    True
    """
    rng = check_random_state(random_state)
    activation = get_activation(activation)
    loss = get_loss(loss)
    # One logistic unit per output; the default targets are independent labels.
    loss = loss._for_target("multilabel-indicator")
    if X is None:
        X = rng.standard_normal((20, 3))
    X = np.asarray(X, dtype=np.float64)
    if Y is None:
        Y = _default_target(loss, rng, X.shape[0])
    Y = np.asarray(Y, dtype=np.float64).reshape(X.shape[0], -1)
    units = [X.shape[1], *hidden_layer_sizes, Y.shape[1]]
    coefs, intercepts = _network.init_params(units, activation, rng)
    params = coefs + intercepts

    def value():
        return _network.loss_and_gradients(
            coefs, intercepts, X, Y, sample_weight, activation, loss, alpha
        )[0]

    _, coef_grads, intercept_grads = _network.loss_and_gradients(
        coefs, intercepts, X, Y, sample_weight, activation, loss, alpha
    )
    analytic = np.concatenate([g.ravel() for g in coef_grads + intercept_grads])
    numeric = _central_differences(value, params, eps)
    denominator = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    if denominator == 0:
        return 0.0
    return float(np.linalg.norm(analytic - numeric) / denominator)


def _central_differences(value, params, eps):
    """``d value / d p`` for every element of ``params``, perturbed in place."""
    numeric = []
    for p in params:
        flat = p.reshape(-1)  # a view: perturbing it perturbs the network
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            plus = value()
            flat[i] = original - eps
            minus = value()
            flat[i] = original
            numeric.append((plus - minus) / (2 * eps))
    return np.array(numeric)


def _default_target(loss, rng, n_samples):
    name = type(loss).__name__
    if name == "LogLoss":
        return rng.randint(0, 2, size=(n_samples, 2))
    if name == "Poisson":
        return rng.poisson(2.0, size=(n_samples, 2))
    return rng.standard_normal((n_samples, 2))
