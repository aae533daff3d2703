"""The backpropagation core: pure numpy, arrays in and arrays out.

Notation (used throughout the package): layer ``i`` maps its input ``A_{i-1}``
(``A_{-1}`` is ``X``) to the pre-activation ``Z_i = A_{i-1} @ W_i + b_i`` and,
for hidden layers, to the activation ``A_i = f(Z_i)``. The last layer's ``Z`` is
the *raw output*; the loss owns the link that turns it into predictions. The
backward pass starts from the output delta ``dL/dZ_last`` given by the loss and
recurses ``delta_{i-1} = (delta_i @ W_i.T) * f'(Z_{i-1})``; the gradients are
``dL/dW_i = A_{i-1}.T @ delta_i (+ L2 term)`` and ``dL/db_i = sum(delta_i)``.

The network is a sequence of hidden :class:`Layer` s (each an activation and a
dropout rate) and an output layer whose link belongs to the loss. Nothing here
knows about estimators. The training loop owns the parameters and passes them
in together with a :class:`Workspace` of preallocated buffers.
"""

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._chunking import get_chunk_n_rows

from ._flat import packed_empty
from ._threads import blas_threads_for
from .activations import Activation


@dataclass(frozen=True)
class Layer:
    """What a hidden layer does with its units.

    The network is a sequence of these, one per hidden layer; the weights and
    biases (``coefs_``, ``intercepts_``) hold the layers' sizes, and the output
    layer has no activation (its loss owns the link).

    Attributes
    ----------
    activation : Activation
        The layer's activation.
    dropout : float, default=0.0
        Probability that a unit's output is zeroed in a training step (inverted
        dropout: kept outputs are scaled by ``1 / (1 - dropout)``); 0 is no
        dropout, with no extra work.
    """

    activation: Activation
    dropout: float = 0.0


def as_layers(layers, n_hidden):
    """``layers`` as a list of :class:`Layer`: an :class:`Activation` stands
    for that activation in each of the ``n_hidden`` layers, no dropout."""
    if isinstance(layers, Activation):
        return [Layer(layers)] * n_hidden
    return list(layers)


def _n_hidden(coefs):
    return len(coefs) - 1


def glorot_factors(layers, n_weights):
    """Each weight layer's ``glorot_factor``: the activation it feeds; the
    output layer takes the last hidden layer's (MLP's rule, which has one
    activation for all). ``layers`` may be one :class:`Activation`."""
    if isinstance(layers, Activation):
        return [layers.glorot_factor] * n_weights
    factors = [layer.activation.glorot_factor for layer in layers]
    factors.append(factors[-1] if factors else Activation.glorot_factor)
    return factors


def init_params(layer_units, layers, random_state, dtype=np.float64, weight_init=None):
    """Initial weights and biases, by default drawn as MLPClassifier does.

    Parameters
    ----------
    layer_units : sequence of int
        ``[n_features, *hidden_layer_sizes, n_outputs]``.
    layers : sequence of Layer, or Activation
        The hidden layers (an :class:`Activation`: that one in every layer).
        With the default initializer, each hidden layer's activation sets the
        bound of the weights feeding it, ``sqrt(glorot_factor / (fan_in +
        fan_out))``, and the last hidden layer's sets the output layer's
        (MLPClassifier's rule, which has one activation for all).
    random_state : int, RandomState instance or None
        Seed or generator; the only source of randomness.
    dtype : numpy dtype, default=np.float64
        Dtype of the returned arrays.
    weight_init : callable, default=None
        ``weight_init(fan_in, fan_out, rng, dtype, glorot_factor)`` returns a
        layer's ``(W, b)`` (see :mod:`sklearn_bp._init`); ``None`` is
        MLPClassifier's Glorot-uniform draw.

    Returns
    -------
    coefs : list of ndarray of shape (fan_in, fan_out)
    intercepts : list of ndarray of shape (fan_out,)
        ``coefs + intercepts`` are consecutive views of one flat buffer (see
        :mod:`sklearn_bp._flat`), so the optimizer can update them in one pass.
    """
    from ._init import glorot_uniform

    rng = check_random_state(random_state)
    shapes = list(zip(layer_units[:-1], layer_units[1:], strict=False))
    factors = glorot_factors(layers, len(shapes))
    init = glorot_uniform if weight_init is None else weight_init
    params = packed_empty(shapes + [(fan_out,) for _, fan_out in shapes], dtype)
    coefs, intercepts = params[: len(shapes)], params[len(shapes) :]
    for W, b, (fan_in, fan_out), factor in zip(coefs, intercepts, shapes, factors,
                                                strict=True):
        W[...], b[...] = init(fan_in, fan_out, rng, dtype, factor)
    return coefs, intercepts


class Buffers(NamedTuple):
    """Per-sample buffers of one batch (row views of a :class:`Workspace`).

    ``Z[i]`` is layer ``i``'s pre-activation (the last one is the raw output);
    ``A[i]`` a hidden layer's activation (``A[i] is Z[i]`` when its backward
    hook does not read ``Z``); ``delta[i]`` its delta; ``scratch[i]`` the
    activation hook's scratch. For a layer with dropout, ``mask[i]`` holds the
    batch's mask (0 or ``1 / (1 - rate)``) and ``out[i]`` the masked output the
    next layer reads (``out[i] is A[i]``, masked in place, when the backward hook
    allows it: see :func:`drops_in_place`); otherwise ``mask[i]`` is ``None``
    and ``out[i] is A[i]``.
    """

    Z: list
    A: list
    delta: list
    scratch: list
    mask: list
    out: list


def _scratch_dtype(layer, dtype):
    return np.dtype(getattr(layer.activation, "_scratch_dtype", None) or dtype)


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
    layers : sequence of Layer, or Activation
        The hidden layers. A layer whose activation's backward hook does not
        read ``Z`` (see :func:`needs_pre_activations`) computes ``A`` in place
        in ``Z``'s buffer; a layer with dropout gets a mask and an output
        buffer.
    """

    def __init__(self, layer_units, n_rows, dtype, layers):
        widths = list(layer_units[1:])
        hidden = widths[:-1]
        layers = as_layers(layers, len(hidden))
        self.n_rows = n_rows
        self.layers = layers
        self.key = workspace_key(layer_units, dtype, layers)
        self.Z = [np.empty((n_rows, w), dtype=dtype) for w in widths]
        self.A = [
            np.empty((n_rows, w), dtype=dtype)
            if needs_pre_activations(layer.activation) else Z
            for w, layer, Z in zip(hidden, layers, self.Z, strict=False)
        ]
        self.delta = [np.empty((n_rows, w), dtype=dtype) for w in hidden]
        self.mask = [
            np.empty((n_rows, w), dtype=dtype) if layer.dropout else None
            for w, layer in zip(hidden, layers, strict=True)
        ]
        self.out = [
            A if mask is None or drops_in_place(layer.activation)
            else np.empty_like(mask)
            for A, mask, layer in zip(self.A, self.mask, layers, strict=True)
        ]
        # For the activations' in-place backward hooks, which use it for one
        # layer at a time: one buffer per scratch dtype, of the widest such
        # layer's size, serves all.
        self._scratch = {}
        for w, layer in zip(hidden, layers, strict=True):
            kind = _scratch_dtype(layer, dtype)
            size = max(self._scratch.get(kind, np.empty(0)).size, n_rows * w)
            self._scratch[kind] = np.empty(size, dtype=kind)
        self._units = list(layer_units)
        self._grads = None
        self._penalty_block = None
        self._full = self._views(n_rows)

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
        """:class:`Buffers` for a batch of ``n <= n_rows`` rows."""
        if n == self.n_rows:
            return self._full
        return self._views(n)

    def _views(self, n):
        def head(buffers):
            return [None if b is None else b[:n] for b in buffers]

        Z, A, mask = head(self.Z), head(self.A), head(self.mask)
        # keep the identities A[i] is Z[i] and out[i] is A[i] in the views
        A = [Zi if a is z else Ai
             for a, z, Zi, Ai in zip(self.A, self.Z, Z, A, strict=False)]
        out = [Ai if o is a else oi
               for o, a, Ai, oi in zip(self.out, self.A, A, head(self.out),
                                       strict=True)]
        dtype = self.Z[0].dtype
        scratch = [
            self._scratch[_scratch_dtype(layer, dtype)][: n * w].reshape(n, w)
            for layer, w in zip(self.layers, [d.shape[1] for d in self.delta],
                                strict=True)
        ]
        return Buffers(Z, A, head(self.delta), scratch, mask, out)

    def penalty_block(self):
        """A buffer of at most 2**15 elements for the L2 term (made on first use)."""
        if self._penalty_block is None:
            size = min(1 << 15, max(g.size for g in self.coef_grads))
            self._penalty_block = np.empty(size, dtype=self.coef_grads[0].dtype)
        return self._penalty_block


def workspace_key(layer_units, dtype, layers):
    """What a workspace's buffers depend on: architecture, dtype, and per
    hidden layer whether ``Z`` is kept, the scratch dtype, dropout and whether
    it is applied in place."""
    return (
        tuple(layer_units),
        np.dtype(dtype),
        tuple(
            (needs_pre_activations(layer.activation), _scratch_dtype(layer, dtype),
             bool(layer.dropout), drops_in_place(layer.activation))
            for layer in layers
        ),
    )


def draw_masks(buffers, layers, generator):
    """Fill the batch's dropout masks: each unit is kept with probability
    ``1 - rate`` and then scaled by ``1 / (1 - rate)`` (inverted dropout)."""
    for mask, layer in zip(buffers.mask, layers, strict=True):
        if mask is None:
            continue
        generator.random(out=mask, dtype=mask.dtype)
        # (in place: the uniform draw becomes 0/1, then 0/scale)
        np.greater_equal(mask, layer.dropout, out=mask)
        mask *= 1.0 / (1.0 - layer.dropout)


def drops_in_place(activation):
    """Whether a dropout mask may overwrite the layer's activations in place.

    True for activations whose backward hook reads only the sign of ``A``
    (the class attribute ``_drops_in_place``, ReLU's): the mask's positive
    scale keeps that sign, and where the mask is 0 the delta is 0 before the
    hook multiplies it, so the masked ``A`` gives the same bits as the
    unmasked one. The next layer reads the masked ``A`` either way: no
    separate buffer for it (W2's network at batch 200 in float64: 0.6 MiB).
    """
    return getattr(activation, "_drops_in_place", False) and not needs_pre_activations(
        activation
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


def drop(A, mask, out):
    """A hidden layer's output under dropout, ``out = A * mask``; ``A`` itself
    when the layer has no mask. Works on any block of rows and columns."""
    if mask is None:
        return A
    return np.multiply(A, mask, out=out)


def forward(coefs, intercepts, X, layers, Z, A, n_layers=None, mask=None, out=None):
    """Forward pass over a whole batch.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights and biases.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Input batch.
    layers : sequence of Layer
        The hidden layers.
    Z : list of ndarray
        Buffers ``(n_samples, fan_out)`` per layer, filled with pre-activations.
    A : list of ndarray
        Buffers per hidden layer, filled with activations. May be the same list
        as ``Z`` when the pre-activations are not needed later (prediction).
    n_layers : int, default=None
        Stop after this many weight layers (``None``: all of them).
    mask, out : list, default=None
        Training only: per hidden layer, the dropout mask (or ``None``) and the
        buffer for the masked output (see :class:`Buffers`). ``None``: the
        full network, as for prediction.

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
        hidden = i < last
        inputs = layer_output(Z[i], intercepts[i], A[i] if hidden else None,
                              layers[i].activation if hidden else None, hidden)
        if hidden and mask is not None:
            inputs = drop(inputs, mask[i], out[i])
    return inputs


def backward(coefs, X, buffers, delta_out, layers, l2, coef_grads, intercept_grads,
             penalty_block=None, dropout=False):
    """Backward pass: fill the gradient buffers from the output delta.

    Parameters
    ----------
    coefs : list of ndarray
        Weights.
    X : {ndarray, sparse matrix}
        The batch's input.
    buffers : Buffers
        The batch's buffers, filled by :func:`forward`.
    delta_out : ndarray of shape (n_samples, n_outputs)
        ``dL/dZ_last`` of the (weighted mean) batch loss.
    layers : sequence of Layer
        The hidden layers.
    l2 : float
        Coefficient ``c`` of the penalty gradient ``c * W`` added to each weight
        gradient (``alpha / sum of sample weights``).
    coef_grads, intercept_grads : list of ndarray
        Filled in place.
    penalty_block : ndarray of shape (k,), default=None
        A small buffer through which the penalty gradient is added (``None``:
        a weight-sized temporary).
    dropout : bool, default=False
        Whether the forward pass applied the buffers' dropout masks.
    """
    inputs_of = buffers.out if dropout else buffers.A
    delta = delta_out
    for i in range(len(coefs) - 1, -1, -1):
        inputs = X if i == 0 else inputs_of[i - 1]
        weight_gradient_into(inputs, delta, coefs[i], l2, coef_grads[i], penalty_block)
        # (not ones @ delta: OpenBLAS threads that GEMV, and each threaded call
        # stalls when another process holds a core)
        delta.sum(axis=0, out=intercept_grads[i])
        if i > 0:
            j = i - 1
            np.matmul(delta, coefs[i].T, out=buffers.delta[j])
            if dropout and buffers.mask[j] is not None:
                buffers.delta[j] *= buffers.mask[j]
            delta = hidden_delta(buffers.Z[j], buffers.A[j], buffers.delta[j],
                                 buffers.scratch[j], layers[j].activation)


def squared_norm(arrays):
    """``sum ||a||^2`` over ``arrays`` as a Python float (accumulated in the
    arrays' dtype by BLAS, as torch's norm is)."""
    return float(sum(np.dot(a.reshape(-1), a.reshape(-1)) for a in arrays))


def clip_factor(squared, max_norm):
    """The factor ``torch.nn.utils.clip_grad_norm_`` scales the gradients by:
    ``min(1, max_norm / (norm + 1e-6))``; 1.0 when no clipping is asked."""
    if max_norm is None:
        return 1.0
    return min(1.0, max_norm / (math.sqrt(squared) + 1e-6))


def squared_weight_norm(coefs):
    """``sum ||W||^2`` over the weight matrices (biases are not penalised)."""
    return float(sum(np.dot(W.ravel(), W.ravel()) for W in coefs))


def loss_and_gradients(
    coefs, intercepts, X, Y, sample_weight, layers, loss, alpha, workspace=None,
    dropout=False,
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
    layers : sequence of Layer, or Activation
        The hidden layers (an :class:`Activation`: that one in every layer).
    loss : Loss
        The loss.
    alpha : float
        L2 penalty strength.
    workspace : Workspace, default=None
        Buffers to use; a new one is made if ``None``. The returned gradients
        live in it.
    dropout : bool, default=False
        Apply the dropout masks held in the workspace (drawn beforehand with
        :func:`draw_masks`): the loss and gradients of that thinned network.

    Returns
    -------
    value : float
        Penalised batch loss.
    coef_grads, intercept_grads : list of ndarray
        Gradients, shaped like ``coefs`` and ``intercepts``.
    """
    n = X.shape[0]
    layers = as_layers(layers, _n_hidden(coefs))
    if workspace is None:
        units = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
        workspace = Workspace(units, n, coefs[0].dtype, layers)
    buffers = workspace.rows(n)
    weight_sum = n if sample_weight is None else float(np.sum(sample_weight))
    raw = forward(coefs, intercepts, X, layers, buffers.Z, buffers.A,
                  **(dict(mask=buffers.mask, out=buffers.out) if dropout else {}))
    # The raw output is not needed after the loss: its buffer takes the delta.
    value = loss._loss_and_delta(Y, raw, sample_weight, weight_sum, out=raw)
    l2 = float(alpha) / weight_sum
    if l2:
        value += 0.5 * l2 * squared_weight_norm(coefs)
    backward(
        coefs, X, buffers, raw, layers, l2,
        workspace.coef_grads, workspace.intercept_grads,
        workspace.penalty_block() if l2 else None, dropout,
    )
    return value, workspace.coef_grads, workspace.intercept_grads


# Rows per chunk of predict_raw at most. Chunks as large as working_memory
# allows (1 GiB by default: all 200,000 rows of the benchmark at once) are
# slower: their buffers are fresh memory, which the kernel maps page by page
# on first touch (in float64 on W2's network, 200,000 rows took 1.0 to 1.4 s
# instead of 0.4 s), and their activations leave the caches between layers.
# Measured on W2's (256, 128) and W4's (1024, 1024) networks, 200,000 and
# 50,000 rows, float64 and float32: 1,024 to 4,096 rows are within a few
# percent of each other and the fastest; 512 rows start to lose GEMM
# efficiency on the 1024-wide layers.
_PREDICT_ROWS = 2048


def predict_raw(coefs, intercepts, X, layers, n_layers=None):
    """Raw outputs (or hidden activations) in chunks of bounded memory.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Weights and biases.
    X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        Input.
    layers : sequence of Layer, or Activation
        The hidden layers (an :class:`Activation`: that one in every layer);
        dropout does not apply.
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
    layers = as_layers(layers, _n_hidden(coefs))
    widths = [W.shape[1] for W in coefs[:n_layers]]
    dtype = coefs[0].dtype
    n_samples = X.shape[0]
    out = np.empty((n_samples, widths[-1]), dtype=dtype)
    # Two live buffers per row at most (a layer's input and output). The
    # chunk is at most _PREDICT_ROWS rows, and less when scikit-learn's
    # working_memory says so: see _PREDICT_ROWS for why not as many rows as
    # working_memory allows.
    row_bytes = 2 * max(widths) * dtype.itemsize
    chunk = get_chunk_n_rows(row_bytes, max_n_rows=n_samples)
    chunk = max(1, min(chunk, n_samples, _PREDICT_ROWS))
    buffers = [np.empty((chunk, w), dtype=dtype) for w in widths]
    # (one BLAS thread when the chunks' products are small: see _threads)
    with blas_threads_for(coefs[:n_layers], X, chunk, passes=1):
        _forward_chunks(coefs, intercepts, X, layers, n_layers, buffers, out)
    return out


def _forward_chunks(coefs, intercepts, X, layers, n_layers, buffers, out):
    """Fill ``out`` with the forward pass of ``X``, chunk by chunk through
    ``buffers`` (see :func:`predict_raw`)."""
    n_samples, chunk = X.shape[0], buffers[0].shape[0]
    for rows in gen_batches(n_samples, chunk):
        n = rows.stop - rows.start
        views = buffers if n == chunk else [b[:n] for b in buffers]
        # Pre-activations are not needed for prediction: compute in place.
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            result = forward(
                coefs, intercepts, X[rows], layers, views, views, n_layers
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
