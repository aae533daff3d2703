"""The backpropagation core: pure numpy, arrays in and arrays out.

Notation (used throughout the package): layer ``i`` maps its input ``A_{i-1}``
(``A_{-1}`` is ``X``) to the pre-activation ``Z_i = A_{i-1} @ W_i + b_i`` and,
for hidden layers, to the activation ``A_i = f(Z_i)``. The last layer's ``Z`` is
the *raw output*; the loss owns the link that turns it into predictions. The
backward pass starts from the output delta ``dL/dZ_last`` given by the loss and
recurses ``delta_{i-1} = (delta_i @ W_i.T) * f'(Z_{i-1})``; the gradients are
``dL/dW_i = A_{i-1}.T @ delta_i (+ L2 term)`` and ``dL/db_i = sum(delta_i)``.

Nothing here knows about estimators. The training loop owns the parameters and
passes them in together with a :class:`Workspace` of preallocated buffers.
"""

import numpy as np
from scipy import sparse
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._chunking import get_chunk_n_rows

from ._flat import packed_empty
from .activations import Activation


def init_params(layer_units, activation, random_state, dtype=np.float64):
    """Glorot-uniform initial weights and biases, drawn as MLPClassifier does.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``.
    activation : Activation
        Hidden activation; its ``glorot_factor`` sets the bound
        ``sqrt(glorot_factor / (fan_in + fan_out))``.
    random_state : int, RandomState instance or None
        Seed or generator; the only source of randomness.
    dtype : numpy dtype, default=np.float64
        Dtype of the returned arrays.

    Returns
    -------
    coefs : list of ndarray of shape (fan_in, fan_out)
    intercepts : list of ndarray of shape (fan_out,)
        ``coefs + intercepts`` are consecutive views of one flat buffer (see
        :mod:`sklearn_bp._flat`), so the optimizer can update them in one pass.
    """
    rng = check_random_state(random_state)
    shapes = list(zip(layer_units[:-1], layer_units[1:], strict=False))
    params = packed_empty(shapes + [(fan_out,) for _, fan_out in shapes], dtype)
    coefs, intercepts = params[: len(shapes)], params[len(shapes) :]
    for W, b, (fan_in, fan_out) in zip(coefs, intercepts, shapes, strict=True):
        bound = np.sqrt(activation.glorot_factor / (fan_in + fan_out))
        # the draws and their order are MLPClassifier's
        W[...] = rng.uniform(-bound, bound, (fan_in, fan_out))
        b[...] = rng.uniform(-bound, bound, fan_out)
    return coefs, intercepts


class Workspace:
    """Buffers for one batch shape, allocated once and reused for every batch.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``.
    n_rows : int
        Largest batch the workspace serves; smaller batches use row views.
    dtype : numpy dtype
        Dtype of the parameters.
    keep_Z : bool, default=True
        Whether the backward pass needs the hidden pre-activations ``Z``; if
        not (see :func:`needs_pre_activations`), ``A`` is computed in place in
        ``Z``'s buffers and ``Z is A`` for the hidden layers.
    scratch_dtype : numpy dtype, default=None
        Dtype of the activation hook's scratch buffer (``None``: ``dtype``);
        the ReLU's holds a boolean mask.
    """

    def __init__(self, layer_units, n_rows, dtype, keep_Z=True, scratch_dtype=None):
        widths = list(layer_units[1:])
        hidden = widths[:-1]
        self.n_rows = n_rows
        self.keep_Z = keep_Z
        self.Z = [np.empty((n_rows, w), dtype=dtype) for w in widths]
        if keep_Z:
            self.A = [np.empty((n_rows, w), dtype=dtype) for w in hidden]
        else:
            self.A = self.Z[:-1]
        self.delta = [np.empty((n_rows, w), dtype=dtype) for w in hidden]
        # For the activation's in-place backward hook, which uses it for one
        # layer at a time: one buffer of the widest layer's size serves all.
        self._scratch = np.empty(
            n_rows * max(hidden, default=0),
            dtype=dtype if scratch_dtype is None else scratch_dtype,
        )
        self.scratch = self._scratch_views(n_rows, hidden)
        self._units = list(layer_units)
        self._grads = None
        self._penalty_block = None

    @property
    def coef_grads(self):
        """Weight-gradient buffers (allocated on first use: the fused step of
        :mod:`sklearn_bp._fused` never needs these weight-sized arrays)."""
        return self._gradient_buffers()[0]

    @property
    def intercept_grads(self):
        """Bias-gradient buffers, packed after :attr:`coef_grads`."""
        return self._gradient_buffers()[1]

    def _gradient_buffers(self):
        if self._grads is None:
            # packed like the parameters (coefs then intercepts): see init_params
            units = self._units
            shapes = list(zip(units[:-1], units[1:], strict=False))
            grads = packed_empty(shapes + [(w,) for w in units[1:]], self.Z[0].dtype)
            self._grads = grads[: len(shapes)], grads[len(shapes) :]
        return self._grads

    def rows(self, n):
        """Views of the per-sample buffers for a batch of ``n <= n_rows`` rows.

        Returns ``(Z, A, delta, scratch)``.
        """
        if n == self.n_rows:
            return self.Z, self.A, self.delta, self.scratch
        Z = [b[:n] for b in self.Z]
        A = [b[:n] for b in self.A] if self.keep_Z else Z[:-1]
        delta = [b[:n] for b in self.delta]
        return Z, A, delta, self._scratch_views(n, [b.shape[1] for b in delta])

    def penalty_block(self):
        """A buffer of at most 2**15 elements for the L2 term (made on first use)."""
        if self._penalty_block is None:
            size = min(1 << 15, max(g.size for g in self.coef_grads))
            self._penalty_block = np.empty(size, dtype=self.coef_grads[0].dtype)
        return self._penalty_block

    def _scratch_views(self, n, widths):
        return [self._scratch[: n * w].reshape(n, w) for w in widths]

    def matches(self, layer_units, dtype, keep_Z=True, scratch_dtype=None):
        """Whether the buffers fit this architecture, dtype and activation."""
        return (
            self._units == list(layer_units)
            and self.Z[0].dtype == dtype
            and self.keep_Z == keep_Z
            and self._scratch.dtype
            == (dtype if scratch_dtype is None else scratch_dtype)
        )


def needs_pre_activations(activation):
    """Whether ``activation``'s backward hook reads ``Z`` (else ``A`` suffices).

    The generic hook calls the public ``derivative(Z, A)``, which may read
    ``Z``; a built-in hook that reads only ``A`` says so with the class
    attribute ``_backprop_uses_Z = False``.
    """
    hook = type(activation)._backprop_into
    return hook is Activation._backprop_into or getattr(
        activation, "_backprop_uses_Z", True
    )


def _product_into(A, W, out):
    """``out[...] = A @ W`` with one GEMM, for dense or sparse ``A``."""
    if sparse.issparse(A):
        out[...] = A @ W
    else:
        np.matmul(A, W, out=out)
    return out


def weight_gradient_into(inputs, delta, W, l2, out, block=None):
    """``out[...] = inputs.T @ delta + l2 * W`` with no weight-sized temporary.

    The penalty term goes through ``block``, a small buffer, piece by piece
    (``out += l2 * W`` would allocate a temporary as large as ``W``). Not a
    GEMM with ``beta=1`` through :mod:`scipy.linalg.blas`: SciPy ships its own
    OpenBLAS, and two OpenBLAS thread pools taking turns spin against each
    other (measured: 20 times slower on two cores).
    """
    _product_into(inputs.T, delta, out)
    if not l2:
        return out
    if (
        block is None
        or not (out.flags.c_contiguous and W.flags.c_contiguous)
        or not out.dtype == W.dtype == block.dtype
    ):
        out += l2 * W
        return out
    flat_out, flat_W = out.reshape(-1), W.reshape(-1)
    size = block.shape[0]
    for start in range(0, flat_out.shape[0], size):
        piece = flat_out[start : start + size]
        term = block[: piece.shape[0]]
        piece += np.multiply(flat_W[start : start + size], l2, out=term)
    return out


def layer_output(Z, b, A, activation, hidden):
    """Finish a layer on a block of its product ``Z = inputs @ W``.

    Adds the bias ``b`` in place and, for a hidden layer, writes the
    activation into ``A``. Returns the layer's output (``A``, or ``Z`` for the
    output layer). The fused step calls it on the blocks its threads computed.
    """
    Z += b
    if hidden:
        return activation._forward_into(Z, A)
    return Z


def hidden_delta(Z, A, delta, scratch, activation):
    """Turn ``delta = dL/dA`` of a hidden layer into ``dL/dZ``, in place.

    ``scratch`` (may be ``None``) is a buffer the activation's hook may use.
    Works on any block of rows and columns, as the fused step uses it.
    """
    return activation._backprop_into(Z, A, delta, scratch)


def weight_squares(coefs):
    """``||W||^2`` of each weight matrix, as Python floats."""
    return [float(np.dot(W.reshape(-1), W.reshape(-1))) for W in coefs]


def forward(coefs, intercepts, X, activation, Z, A, n_layers=None):
    """Forward pass over a whole batch.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights and biases.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Input batch.
    activation : Activation
        Hidden activation.
    Z : list of ndarray
        Buffers ``(n_samples, fan_out)`` per layer, filled with pre-activations.
    A : list of ndarray
        Buffers per hidden layer, filled with activations. May be the same list
        as ``Z`` when the pre-activations are not needed later (prediction).
    n_layers : int, default=None
        Stop after this many weight layers (``None``: all of them).

    Returns
    -------
    out : ndarray
        The raw output ``Z[-1]``, or the last computed hidden activation when
        ``n_layers`` stops early.
    """
    n_layers = len(coefs) if n_layers is None else n_layers
    last = len(coefs) - 1
    inputs = X
    for i in range(n_layers):
        _product_into(inputs, coefs[i], Z[i])
        inputs = layer_output(Z[i], intercepts[i], A[i] if i < last else None,
                              activation, i < last)
    return inputs


def backward(
    coefs, X, Z, A, delta_out, deltas, activation, l2, coef_grads, intercept_grads,
    scratch=None, penalty_block=None,
):
    """Backward pass: fill the gradient buffers from the output delta.

    Parameters
    ----------
    coefs : list of ndarray
        Weights.
    X : {ndarray, sparse matrix}
        The batch's input.
    Z, A : list of ndarray
        Pre-activations and hidden activations from :func:`forward`.
    delta_out : ndarray of shape (n_samples, n_outputs)
        ``dL/dZ_last`` of the (weighted mean) batch loss.
    deltas : list of ndarray
        Buffers for the hidden layers' deltas.
    activation : Activation
        Hidden activation.
    l2 : float
        Coefficient ``c`` of the penalty gradient ``c * W`` added to each weight
        gradient (``alpha / sum of sample weights``).
    coef_grads, intercept_grads : list of ndarray
        Filled in place.
    scratch : list of ndarray, default=None
        Buffers shaped like ``deltas`` that the activation's backward hook may
        overwrite (``None``: it allocates what it needs).
    penalty_block : ndarray of shape (k,), default=None
        A small buffer through which the penalty gradient is added (``None``:
        a weight-sized temporary).
    """
    delta = delta_out
    for i in range(len(coefs) - 1, -1, -1):
        inputs = X if i == 0 else A[i - 1]
        weight_gradient_into(inputs, delta, coefs[i], l2, coef_grads[i], penalty_block)
        # (not ones @ delta: OpenBLAS threads that GEMV, and each threaded call
        # stalls when another process holds a core)
        delta.sum(axis=0, out=intercept_grads[i])
        if i > 0:
            np.matmul(delta, coefs[i].T, out=deltas[i - 1])
            delta = hidden_delta(
                Z[i - 1], A[i - 1], deltas[i - 1],
                None if scratch is None else scratch[i - 1], activation,
            )


def squared_weight_norm(coefs):
    """``sum ||W||^2`` over the weight matrices (biases are not penalised)."""
    return float(sum(np.dot(W.ravel(), W.ravel()) for W in coefs))


def loss_and_gradients(
    coefs, intercepts, X, Y, sample_weight, activation, loss, alpha, workspace=None
):
    """Penalised batch loss and its gradients with respect to every parameter.

    The loss is ``sum_i w_i l_i / sum_i w_i + alpha / (2 sum_i w_i) * sum ||W||^2``
    (``w_i = 1`` without weights), the L2 term as in MLPClassifier.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights and biases (not modified).
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Batch input.
    Y : ndarray of shape (n_samples, n_outputs)
        Encoded batch target.
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative weights with a positive sum.
    activation : Activation
        Hidden activation.
    loss : Loss
        The loss.
    alpha : float
        L2 penalty strength.
    workspace : Workspace, default=None
        Buffers to use; a new one is made if ``None``. The returned gradients
        live in it.

    Returns
    -------
    value : float
        Penalised batch loss.
    coef_grads, intercept_grads : list of ndarray
        Gradients, shaped like ``coefs`` and ``intercepts``.
    """
    n = X.shape[0]
    if workspace is None:
        units = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
        workspace = Workspace(
            units, n, coefs[0].dtype, keep_Z=needs_pre_activations(activation),
            scratch_dtype=getattr(activation, "_scratch_dtype", None),
        )
    Z, A, deltas, scratch = workspace.rows(n)
    weight_sum = n if sample_weight is None else float(np.sum(sample_weight))
    raw = forward(coefs, intercepts, X, activation, Z, A)
    # The raw output is not needed after the loss: its buffer takes the delta.
    value = loss._loss_and_delta(Y, raw, sample_weight, weight_sum, out=raw)
    l2 = float(alpha) / weight_sum
    if l2:
        value += 0.5 * l2 * squared_weight_norm(coefs)
    backward(
        coefs, X, Z, A, raw, deltas, activation, l2,
        workspace.coef_grads, workspace.intercept_grads, scratch,
        workspace.penalty_block() if l2 else None,
    )
    return value, workspace.coef_grads, workspace.intercept_grads


def predict_raw(coefs, intercepts, X, activation, n_layers=None):
    """Raw outputs (or hidden activations) in chunks of bounded memory.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights and biases.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Input.
    activation : Activation
        Hidden activation.
    n_layers : int, default=None
        Stop after this many weight layers: ``len(coefs) - 1`` returns the last
        hidden layer's activations. ``None`` returns the raw output.

    Returns
    -------
    out : ndarray of shape (n_samples, width)
        Same dtype as the parameters.

    Raises
    ------
    ValueError
        If the result is not finite (an overflow in the forward pass): a
        prediction is never NaN or inf.
    """
    n_layers = len(coefs) if n_layers is None else n_layers
    widths = [W.shape[1] for W in coefs[:n_layers]]
    dtype = coefs[0].dtype
    n_samples = X.shape[0]
    out = np.empty((n_samples, widths[-1]), dtype=dtype)
    # Two live buffers per row at most (a layer's input and output); the
    # chunk size follows scikit-learn's working_memory setting.
    row_bytes = 2 * max(widths) * dtype.itemsize
    chunk = get_chunk_n_rows(row_bytes, max_n_rows=n_samples)
    chunk = max(1, min(chunk, n_samples))
    buffers = [np.empty((chunk, w), dtype=dtype) for w in widths]
    for rows in gen_batches(n_samples, chunk):
        n = rows.stop - rows.start
        views = buffers if n == chunk else [b[:n] for b in buffers]
        # Pre-activations are not needed for prediction: compute in place.
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            result = forward(
                coefs, intercepts, X[rows], activation, views, views, n_layers
            )
        # Checked per chunk, so the check's mask stays chunk-sized too.
        if not np.isfinite(result).all():
            raise ValueError(
                "The network's output is not finite for some of these inputs: "
                "the forward pass overflowed. The usual causes are inputs far "
                "larger than the training data or unscaled inputs (scale them, "
                "e.g. with sklearn.preprocessing.StandardScaler), or parameters "
                "that grew huge or non-finite in training (lower "
                "learning_rate_init)."
            )
        out[rows] = result
    return out
