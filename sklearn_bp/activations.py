"""Activation functions of the hidden layers.

An activation is a :class:`Activation` object with two methods side by side:
``forward(Z)`` computes ``A = f(Z)`` elementwise and ``derivative(Z, A)``
computes ``f'(Z)`` (``A`` is passed because most derivatives are cheapest from
the output). Built-ins are available by name (``activation="tanh"``) or as
classes (``Tanh()``, ``LeakyReLU(negative_slope=0.2)``).
"""

import functools
from numbers import Real

import numpy as np
from scipy.special import expit
from sklearn.utils._param_validation import Interval

from ._spec import Spec, resolve

__all__ = [
    "Activation",
    "Identity",
    "Logistic",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "Softplus",
    "ACTIVATIONS",
    "get_activation",
]


class Activation(Spec):
    """Base class of activation functions.

    Subclass it and implement :meth:`forward` and :meth:`derivative`; pass an
    instance as the ``activation`` parameter of an estimator. Hyper-parameters
    are keyword-only constructor arguments stored under their own names, so that
    they show up as nested parameters (``activation__negative_slope``).

    Attributes
    ----------
    glorot_factor : float
        Numerator of the Glorot-uniform bound ``sqrt(glorot_factor / (fan_in +
        fan_out))`` used to draw the initial weights: 6 by default, 2 for the
        logistic function, as in :class:`~sklearn.neural_network.MLPClassifier`.

    See Also
    --------
    get_activation : Resolve a name or an instance.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import Activation
    >>> class Square(Activation):
    ...     def forward(self, Z):
    ...         return Z * Z
    ...     def derivative(self, Z, A):
    ...         return 2 * Z
    >>> Square().forward(np.array([[-2.0, 3.0]]))
    array([[4., 9.]])
    """

    glorot_factor = 6.0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A built-in's in-place hook computes the built-in's function, not the
        # public method: a subclass that redefines forward (or derivative)
        # without its own hook gets the generic one back, which calls it.
        if "forward" in vars(cls) and "_forward_into" not in vars(cls):
            cls._forward_into = Activation._forward_into
        if "derivative" in vars(cls) and "_backprop_into" not in vars(cls):
            cls._backprop_into = Activation._backprop_into

    def forward(self, Z):
        """Apply the activation elementwise.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_units)
            Pre-activations ``A_prev @ W + b``. Must not be modified.

        Returns
        -------
        A : ndarray of shape (n_samples, n_units)
            Activations, same dtype as ``Z``.
        """
        raise NotImplementedError

    def derivative(self, Z, A):
        """Elementwise derivative of the activation.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_units)
            Pre-activations. Must not be modified.
        A : ndarray of shape (n_samples, n_units)
            ``forward(Z)``. Must not be modified.

        Returns
        -------
        dA_dZ : ndarray of shape (n_samples, n_units)
            ``f'(Z)``, same dtype as ``Z``.
        """
        raise NotImplementedError

    # The network calls the two hooks below on buffers it owns. They default to
    # the public methods; built-ins override them to work in place, which spares
    # the per-batch allocations (the ReLU mask is a large share of MLP's time).
    # ``scratch``, when given, is a buffer shaped like ``delta`` that the hook
    # may overwrite (the training workspace owns one per hidden layer).
    def _forward_into(self, Z, out):
        out[...] = self.forward(Z)
        return out

    def _backprop_into(self, Z, A, delta, scratch=None):
        delta *= self.derivative(Z, A)
        return delta


class Identity(Activation):
    """Identity activation, ``f(z) = z``.

    See Also
    --------
    ReLU : Rectified linear unit, the default hidden activation.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import Identity
    >>> Identity().forward(np.array([[-1.0, 2.0]]))
    array([[-1.,  2.]])
    """

    _backprop_uses_Z = False  # the backward hook reads only A

    def forward(self, Z):
        return Z.copy()

    def derivative(self, Z, A):
        return np.ones_like(Z)

    def _forward_into(self, Z, out):
        if out is not Z:
            np.copyto(out, Z)
        return out

    def _backprop_into(self, Z, A, delta, scratch=None):
        return delta


class Logistic(Activation):
    """Logistic sigmoid, ``f(z) = 1 / (1 + exp(-z))`` (alias ``"sigmoid"``).

    Computed with :func:`scipy.special.expit`, which stays finite and accurate
    for any input.

    See Also
    --------
    Tanh : A zero-centred sigmoid, ``tanh(z) = 2 * logistic(2 * z) - 1``.
    Softplus : The activation whose derivative is the logistic function.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import Logistic
    >>> Logistic().forward(np.array([[0.0]]))
    array([[0.5]])
    """

    glorot_factor = 2.0

    _backprop_uses_Z = False  # the backward hook reads only A

    def forward(self, Z):
        return expit(Z)

    def derivative(self, Z, A):
        return A * (1 - A)

    def _forward_into(self, Z, out):
        return expit(Z, out=out)

    def _backprop_into(self, Z, A, delta, scratch=None):
        # delta * A * (1 - A), with the factor built in the scratch buffer
        factor = np.subtract(1, A, out=scratch)
        factor *= A
        delta *= factor
        return delta


class Tanh(Activation):
    """Hyperbolic tangent, ``f(z) = tanh(z)``.

    See Also
    --------
    Logistic : The logistic sigmoid, with outputs in (0, 1).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import Tanh
    >>> Tanh().derivative(np.array([[0.0]]), np.array([[0.0]]))
    array([[1.]])
    """

    _backprop_uses_Z = False  # the backward hook reads only A

    def forward(self, Z):
        return np.tanh(Z)

    def derivative(self, Z, A):
        return 1 - A * A

    def _forward_into(self, Z, out):
        return np.tanh(Z, out=out)

    def _backprop_into(self, Z, A, delta, scratch=None):
        # delta * (1 - A**2), with the factor built in the scratch buffer
        factor = np.multiply(A, A, out=scratch)
        np.subtract(1, factor, out=factor)
        delta *= factor
        return delta


@functools.lru_cache(maxsize=16)
def _zeros_row(width, dtype):
    """A read-only row of zeros, cached: it is used on every batch."""
    row = np.zeros(width, dtype)
    row.flags.writeable = False
    return row


class ReLU(Activation):
    """Rectified linear unit, ``f(z) = max(z, 0)``.

    The derivative at 0 is taken as 0, as in PyTorch and scikit-learn.

    See Also
    --------
    LeakyReLU : A small non-zero slope for negative inputs.
    ELU : A smooth, saturating negative part.
    Softplus : A smooth approximation of the ReLU.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import ReLU
    >>> ReLU().forward(np.array([[-1.0, 2.0]]))
    array([[0., 2.]])
    """

    _backprop_uses_Z = False  # the backward hook reads only A
    _scratch_dtype = np.bool_  # its scratch holds a 0/1 mask
    # ... and only A's sign: dropout may mask A in place (see _network)
    _drops_in_place = True

    def forward(self, Z):
        return np.maximum(Z, 0)

    def derivative(self, Z, A):
        return (Z > 0).astype(Z.dtype)

    def _forward_into(self, Z, out):
        # Against a row of zeros, not the scalar 0: numpy's vectorised loop for
        # maximum takes two arrays, and with a scalar this ran 1.9 to 2.6 times
        # slower on the benchmark shapes. The result is the same, bit for bit.
        return np.maximum(Z, _zeros_row(Z.shape[-1], Z.dtype), out=out)

    def _backprop_into(self, Z, A, delta, scratch=None):
        # A product with a 0/1 mask: about ten times faster than writing zeros
        # through ``where=`` (a masked copy branches on every element).
        mask = np.greater(A, 0, out=scratch)
        delta *= mask
        return delta


class LeakyReLU(Activation):
    """Leaky rectified linear unit, ``f(z) = z if z > 0 else negative_slope * z``.

    Parameters
    ----------
    negative_slope : float, default=0.01
        Slope for negative inputs (PyTorch's ``torch.nn.LeakyReLU`` default).

    See Also
    --------
    ReLU : The case ``negative_slope=0``.
    ELU : A smooth, saturating negative part.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import LeakyReLU
    >>> LeakyReLU(negative_slope=0.2).forward(np.array([[-1.0, 2.0]]))
    array([[-0.2,  2. ]])
    """

    _parameter_constraints = {
        "negative_slope": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, negative_slope=0.01):
        self.negative_slope = negative_slope

    def forward(self, Z):
        return np.where(Z > 0, Z, Z * float(self.negative_slope))

    def derivative(self, Z, A):
        return np.where(Z > 0, 1.0, float(self.negative_slope)).astype(Z.dtype)

    def _backprop_into(self, Z, A, delta, scratch=None):
        # factor = 1 + (slope - 1) * (Z <= 0): a product, not a masked write
        # (exactly 1 where Z > 0)
        factor = np.less_equal(Z, 0, out=scratch)
        if factor.dtype == bool:  # no scratch given: make a float factor
            factor = factor.astype(delta.dtype)
        factor *= float(self.negative_slope) - 1.0
        factor += 1.0
        delta *= factor
        return delta


class ELU(Activation):
    """Exponential linear unit, ``f(z) = z if z > 0 else alpha * (exp(z) - 1)``.

    Parameters
    ----------
    alpha : float, default=1.0
        Scale of the negative part (PyTorch's ``torch.nn.ELU`` default).

    See Also
    --------
    LeakyReLU : A linear negative part.
    ReLU : A zero negative part.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import ELU
    >>> ELU().forward(np.array([[0.0, 1.0]]))
    array([[0., 1.]])
    """

    _parameter_constraints = {"alpha": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, *, alpha=1.0):
        self.alpha = alpha

    def forward(self, Z):
        # expm1 of min(z, 0): accurate near 0 and never overflows for large z.
        return np.where(Z > 0, Z, float(self.alpha) * np.expm1(np.minimum(Z, 0)))

    def derivative(self, Z, A):
        # alpha * exp(z) rather than A + alpha: the sum cancels for z << 0
        # (A rounds to -alpha) and would give 0 instead of a tiny slope.
        alpha = float(self.alpha)
        return np.where(Z > 0, 1.0, alpha * np.exp(np.minimum(Z, 0))).astype(Z.dtype)


class Softplus(Activation):
    """Softplus, ``f(z) = log(1 + exp(z))``, computed stably.

    Equals ``torch.nn.Softplus`` with ``beta=1``; the derivative is the logistic
    function. Computed with :func:`numpy.logaddexp`, finite for any input.

    See Also
    --------
    ReLU : The limit of softplus far from 0.
    Logistic : The derivative of softplus.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_bp.activations import Softplus
    >>> Softplus().forward(np.array([[0.0]]))
    array([[0.69314718]])
    """

    def forward(self, Z):
        return np.logaddexp(0, Z).astype(Z.dtype, copy=False)

    def derivative(self, Z, A):
        return expit(Z)

    def _forward_into(self, Z, out):
        return np.logaddexp(0, Z, out=out)

    def _backprop_into(self, Z, A, delta, scratch=None):
        delta *= expit(Z, out=scratch)
        return delta


ACTIVATIONS = {
    "identity": Identity,
    "logistic": Logistic,
    "sigmoid": Logistic,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "elu": ELU,
    "softplus": Softplus,
}


def get_activation(activation):
    """Return a private activation instance from a name or an instance.

    Parameters
    ----------
    activation : str or Activation
        One of the names in :data:`ACTIVATIONS` or an :class:`Activation`.

    Returns
    -------
    activation : Activation
        A new instance: a copy when an instance was given.

    See Also
    --------
    Activation : Base class of activations, to write your own.

    Examples
    --------
    >>> from sklearn_bp.activations import get_activation
    >>> get_activation("sigmoid")
    Logistic()
    """
    return resolve(
        activation, registry=ACTIVATIONS, base=Activation, param_name="activation"
    )
