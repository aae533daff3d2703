"""Networks for tabular data: numerical embeddings and TabM ensembles.

A :class:`TabularNet` describes what comes around the dense layers of
:mod:`sklearn_bp._network`:

* an embedding (:mod:`sklearn_bp.embeddings`) that maps the features to the
  first dense layer's inputs;
* ``k >= 2`` ensemble members in TabM's form (Gorishniy et al., ICLR 2025).
  ``"tabm"``: every hidden layer is a BatchEnsemble layer, ``Z_j = ((A_j * r_j)
  @ W) * s_j + b_j`` for member ``j``, the weight ``W`` shared, the rank-1
  adapters ``r_j`` (inputs) and ``s_j`` (outputs) and the bias ``b_j`` the
  member's own; ``"tabm-mini"``: only the input is scaled per member, ``A_j = X
  * r_j``, the hidden layers are shared. The output layer is each member's
  own. Every member sees every batch; the loss is the mean of the members'
  losses.

Arrays are member-major, ``(k, n_samples, width)``, so that a shared layer is
one product over ``k * n_samples`` rows. The parameters are one list,
``coefs + intercepts + extras`` (extras: the embedding's arrays, then the
input scales ``r``, then the output scales ``s``), packed in one buffer like
the plain network's, so that every optimizer updates them in one pass.
"""

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.special import log_expit, log_softmax, logsumexp
from sklearn.utils import gen_batches
from sklearn.utils._chunking import get_chunk_n_rows

from ._flat import packed_empty
from ._network import (
    _scratch_dtype,
    drops_in_place,
    hidden_delta,
    needs_pre_activations,
)


@dataclass(frozen=True)
class TabularNet:
    """What surrounds the dense layers (see the module docstring).

    Attributes
    ----------
    embedding : Embedding or None
        The resolved embedding spec.
    state : object
        What the embedding learned at fit without gradients (bins), or None.
    k : int
        Ensemble members (1: no ensemble).
    mini : bool
        TabM-mini (adapters on the input only) rather than TabM.
    n_features : int
        Input features.
    n_hidden : int
        Hidden layers.
    """

    embedding: object
    state: object
    k: int
    mini: bool
    n_features: int
    n_hidden: int
    embedding_keys: tuple = field(default=())

    @property
    def n_inputs(self):
        """Inputs of the first dense layer."""
        if self.embedding is None:
            return self.n_features
        return self.embedding._width(self.n_features)

    @property
    def ensemble(self):
        return self.k > 1

    def dense_shapes(self, layer_units):
        """``(coef shapes, intercept shapes)`` of the dense layers."""
        pairs = list(zip(layer_units[:-1], layer_units[1:], strict=False))
        k = self.k
        if not self.ensemble:
            return pairs, [(out,) for _, out in pairs]
        coefs = pairs[:-1] + [(k, *pairs[-1])]
        hidden_bias = [(out,) if self.mini else (k, out) for _, out in pairs[:-1]]
        return coefs, hidden_bias + [(k, pairs[-1][1])]

    def adapter_shapes(self, layer_units):
        """``(input scale shapes, output scale shapes)``."""
        if not self.ensemble:
            return [], []
        if self.mini:
            return [(self.k, layer_units[0])], []
        hidden = list(zip(layer_units[:-2], layer_units[1:-1], strict=True))
        return [(self.k, fan_in) for fan_in, _ in hidden], [
            (self.k, out) for _, out in hidden
        ]

    def split(self, params):
        """``(coefs, intercepts, embedding dict, input scales, output scales)``."""
        L = self.n_hidden + 1
        coefs, intercepts = params[:L], params[L : 2 * L]
        rest = params[2 * L :]
        n_emb = len(self.embedding_keys)
        embedding = dict(zip(self.embedding_keys, rest[:n_emb], strict=True))
        rest = rest[n_emb:]
        n_r = (1 if self.mini else self.n_hidden) if self.ensemble else 0
        return coefs, intercepts, embedding, rest[:n_r], rest[n_r:]


def make_net(embedding, X, k, mini, n_hidden, sample_weight=None):
    """The :class:`TabularNet` for a fit on ``X`` (``None``: a plain network)."""
    if embedding is None and k == 1:
        return None
    if k > 1 and n_hidden == 0:
        raise ValueError(
            f"ensemble_size={k} needs at least one hidden layer "
            "(hidden_layer_sizes=() has none): the members' adapters sit on "
            "hidden layers."
        )
    if embedding is None:
        state = None
    else:
        state = embedding._fit_state(X.toarray() if sparse.issparse(X) else X,
                                     sample_weight)
    keys = ()
    if embedding is not None:
        keys = tuple(embedding._param_shapes(X.shape[1], state))
    return TabularNet(embedding, state, int(k), bool(mini), X.shape[1], n_hidden, keys)


def init_params(net, layer_units, init, factors, rng, dtype):
    """Initial parameters, packed: ``coefs + intercepts + extras``.

    ``init(fan_in, fan_out, rng, dtype, factor) -> (W, b)`` draws a dense
    layer (the estimator's ``weight_init``); the shared hidden layers draw once
    and every member starts from the same bias (TabM); each member's output
    layer is drawn on its own. The first input scales are random signs (no
    embedding) or one normal draw per feature's embedding (TabM's rule with
    embeddings); the other scales start at one.
    """
    coef_shapes, bias_shapes = net.dense_shapes(layer_units)
    emb_shapes = (
        {} if net.embedding is None
        else net.embedding._param_shapes(net.n_features, net.state)
    )
    r_shapes, s_shapes = net.adapter_shapes(layer_units)
    params = packed_empty(coef_shapes + bias_shapes + list(emb_shapes.values())
                          + r_shapes + s_shapes, dtype)
    L = len(coef_shapes)
    coefs, intercepts = params[:L], params[L : 2 * L]
    pairs = list(zip(layer_units[:-1], layer_units[1:], strict=False))
    for i, ((fan_in, fan_out), factor) in enumerate(zip(pairs, factors, strict=True)):
        if coefs[i].ndim == 3:  # each member's output layer
            for j in range(net.k):
                coefs[i][j], intercepts[i][j] = init(fan_in, fan_out, rng, dtype,
                                                     factor)
        else:
            coefs[i][...], intercepts[i][...] = init(fan_in, fan_out, rng, dtype,
                                                     factor)
    _, _, embedding, r, s = net.split(params)
    if net.embedding is not None:
        net.embedding._init_params(embedding, net.state, rng)
    for i, scale in enumerate(r):
        if i > 0:
            scale[...] = 1.0
        elif net.embedding is None:
            scale[...] = rng.randint(0, 2, scale.shape) * 2.0 - 1.0
        else:
            d = scale.shape[1] // net.n_features
            scale[...] = np.repeat(rng.normal(size=(net.k, net.n_features)), d, axis=1)
    for scale in s:
        scale[...] = 1.0
    return params


# -- forward and backward ------------------------------------------------------------


class Scratch:
    """Arrays reused from one batch (or prediction chunk) to the next, one per
    role: the members' activations are k times a network's, and new arrays of
    that size each batch cost their page faults again (a fifth of a step at
    k = 32, measured)."""

    def __init__(self):
        self._arrays = {}

    def get(self, key, shape, dtype):
        """A C-contiguous array of ``shape`` for ``key`` (contents undefined)."""
        size = math.prod(shape)
        array = self._arrays.get(key)
        if array is None or array.size < size or array.dtype != dtype:
            array = self._arrays[key] = np.empty(size, dtype)
        return array[:size].reshape(shape)


def _empty(scratch, key, shape, dtype):
    if scratch is None:
        return np.empty(shape, dtype)
    return scratch.get(key, shape, dtype)


def _forward(net, params, X, layers, n_layers=None, masks=None, scratch=None):
    """The forward pass; ``(output, cache)``.

    ``masks`` (training with dropout) is a callable returning a layer's mask
    for a shape, or None. ``output`` is the raw output, member-major ``(k, n,
    n_outputs)`` (``(1, n, n_outputs)`` without ensemble), or with
    ``n_layers`` the last computed hidden layer's activations. With a
    :class:`Scratch`, the arrays (the output and the cache too) are its, valid
    until the next call with it.
    """
    coefs, intercepts, embedding, r, s = net.split(params)
    if sparse.issparse(X):
        # (embeddings and members read every feature: a batch at a time, dense)
        X = X.toarray()
    cache = {"X": X}
    E = X
    if net.embedding is not None:
        E, cache["embedding"] = net.embedding._forward(embedding, net.state, X)
    cache["E"] = E
    L = len(coefs)
    n_layers = L if n_layers is None else n_layers
    A = _first_inputs(net, E, r, scratch)
    inputs, Ps, Zs, As, Ms, outs = [], [], [], [], [], []
    for i in range(n_layers):
        U, P, Z = _layer(net, i, A, coefs[i], intercepts[i], r, s, scratch)
        inputs.append(U)
        Ps.append(P)
        Zs.append(Z)
        if i == L - 1:
            break
        activation = layers[i].activation
        # in Z's buffer when the backward hook reads only A (see _network)
        A = Z
        if needs_pre_activations(activation):
            A = _empty(scratch, ("A", i), Z.shape, Z.dtype)
        A = activation._forward_into(Z, A)
        As.append(A)
        mask = None if masks is None else masks(i, A.shape, A.dtype)
        Ms.append(mask)
        if mask is not None:
            # (in A itself where the backward hook allows it, as the plain
            # network does: see _network.drops_in_place)
            out = A if drops_in_place(activation) else _empty(
                scratch, ("out", i), A.shape, A.dtype)
            A = np.multiply(A, mask, out=out)
        # (the layer's output, masked: the next input scale's gradient reads it)
        outs.append(A)
    cache.update(inputs=inputs, P=Ps, Z=Zs, A=As, M=Ms, out=outs, scratch=scratch)
    return (Zs[-1] if n_layers == L else A), cache


def _first_inputs(net, E, r, scratch):
    """The first layer's inputs per member: ``(k, n, d)`` (a broadcast view
    when every member reads the same, scaled per member for TabM-mini)."""
    if not net.ensemble:
        return E[None]
    if not net.mini:
        return np.broadcast_to(E, (net.k, *E.shape))
    return np.multiply(E[None], r[0][:, None, :],
                       out=_empty(scratch, "U0", (net.k, *E.shape), E.dtype))


def _layer(net, i, A, W, b, r, s, scratch):
    """Layer ``i``'s product: ``(U, P, Z)``, its (scaled) input, its product
    before the output scale (``None`` when it has none) and ``Z``."""
    k, n, dtype = A.shape[0], A.shape[1], W.dtype
    if W.ndim == 3:  # each member's own output layer
        Z = np.matmul(A, W, out=_empty(scratch, ("Z", i), (k, n, W.shape[2]), dtype))
        Z += b[:, None, :]
        return A, None, Z
    adapted = net.ensemble and not net.mini
    U = A
    if adapted:
        U = np.multiply(A, r[i][:, None, :], out=_empty(scratch, ("U", i), A.shape,
                                                          dtype))
    P = np.matmul(U.reshape(-1, U.shape[2]), W,
                  out=_empty(scratch, ("P", i), (k * n, W.shape[1]), dtype))
    P = P.reshape(k, n, -1)
    Z = P
    if adapted:  # (P is kept for the output scale's gradient)
        Z = np.multiply(P, s[i][:, None, :], out=_empty(scratch, ("Z", i), P.shape,
                                                          dtype))
    Z += b[:, None, :] if b.ndim == 2 else b
    return U, (P if adapted else None), Z


def _backward(net, params, cache, delta, layers, l2, grads):
    """Fill ``grads`` (aligned with ``params``) from ``delta = dL/d raw``,
    member-major ``(k, n, n_outputs)``."""
    coefs, intercepts, embedding, r, s = net.split(params)
    g_coefs, g_intercepts, g_embedding, g_r, g_s = net.split(grads)
    inputs, Zs, As, Ms, outs = (cache[key] for key in ("inputs", "Z", "A", "M", "out"))
    L = len(coefs)
    adapted = net.ensemble and not net.mini
    dZ = delta
    for i in range(L - 1, -1, -1):
        if i == L - 1 and net.ensemble:  # each member's own output layer
            np.matmul(inputs[i].transpose(0, 2, 1), dZ, out=g_coefs[i])
            dZ.sum(axis=1, out=g_intercepts[i])
            dU = _output_layer_input_delta(dZ, coefs[i], cache["scratch"], i)
        else:
            dU = _shared_layer_backward(net, i, cache, dZ, coefs, s, grads)
        if l2:
            g_coefs[i] += l2 * coefs[i]
        if adapted and i < L - 1:
            # U = A_prev * r: the scale's gradient, then the input's
            previous = cache["E"][None] if i == 0 else outs[i - 1]
            previous = np.broadcast_to(previous, dU.shape)
            np.einsum("kni,kni->ki", dU, previous, out=g_r[i])
            dU *= r[i][:, None, :]
        if i > 0:
            # (dU is a new array: the mask and the derivative apply in place)
            if Ms[i - 1] is not None:
                dU *= Ms[i - 1]
            dZ = _hidden_delta(layers[i - 1], Zs[i - 1], As[i - 1], dU,
                               cache["scratch"], i - 1)
    # the first layer's inputs: the (scaled) embedding or features
    if net.ensemble and net.mini:
        np.einsum("kni,ni->ki", dU, cache["E"], out=g_r[0])
        dU *= r[0][:, None, :]  # (dU is the step's own array)
    if net.embedding is not None:
        net.embedding._backward(embedding, net.state, cache["embedding"],
                                dU.sum(axis=0), g_embedding)


def _shared_layer_backward(net, i, cache, dZ, coefs, s, grads):
    """A layer whose weight the members share: its weight, bias and output
    scale gradients; returns ``dL/dU`` for its (scaled) input ``U``."""
    g_coefs, g_intercepts, _, _, g_s = net.split(grads)
    U = cache["inputs"][i]
    if g_intercepts[i].ndim == 2:  # each member's bias
        dZ.sum(axis=1, out=g_intercepts[i])
    else:
        g_intercepts[i][...] = dZ.sum(axis=(0, 1))
    dP = dZ
    if net.ensemble and not net.mini:  # Z = P * s + b
        np.einsum("kno,kno->ko", dZ, cache["P"][i], out=g_s[i])
        dP *= s[i][:, None, :]  # (dZ is not needed after this layer)
    flat_dP = dP.reshape(-1, dP.shape[2])
    np.matmul(U.reshape(-1, U.shape[2]).T, flat_dP, out=g_coefs[i])
    dU = _empty(cache["scratch"], ("dU", i), (flat_dP.shape[0], U.shape[2]), dZ.dtype)
    return np.matmul(flat_dP, coefs[i].T, out=dU).reshape(U.shape)


def _hidden_delta(layer, Z, A, delta, scratch, i):
    """``dL/dZ`` of hidden layer ``i`` from ``delta = dL/dA``, in place, the
    activation's hook working in a reused array (ReLU's 0/1 mask: a new one
    each batch is k times a network's)."""
    dtype = _scratch_dtype(layer, delta.dtype)
    buffer = _empty(scratch, ("act", i), delta.shape, dtype)
    return hidden_delta(Z, A, delta, buffer, layer.activation)


def _output_layer_input_delta(dZ, W, scratch, i):
    """``dZ_j @ W_j.T`` for every member's own output layer ``W`` (k, width,
    n_outputs)."""
    dU = _empty(scratch, ("dU", i), (*dZ.shape[:2], W.shape[1]), dZ.dtype)
    if W.shape[2] == 1:
        # One output: an outer product, the same single products as the
        # matmul, which runs a slow loop for an inner dimension of 1 (4x the
        # time of this broadcast multiply at k = 32).
        return np.multiply(dZ, W.transpose(0, 2, 1), out=dU)
    return np.matmul(dZ, W.transpose(0, 2, 1), out=dU)


def loss_and_gradients(net, params, X, Y, sample_weight, layers, loss, alpha,
                       grads, masks=None, scratch=None):
    """Penalised batch loss (the mean of the members' losses) and its
    gradients, written into ``grads`` (packed like ``params``).

    The L2 term is ``alpha / (2 sum of the batch's sample weights) * sum
    ||W||^2`` over ``coefs`` (each member's output layer included; not the
    embedding, the biases or the scales), as for the plain network.
    """
    n = X.shape[0]
    weight_sum = n if sample_weight is None else float(np.sum(sample_weight))
    raw, cache = _forward(net, params, X, layers, masks=masks, scratch=scratch)
    k = raw.shape[0]
    flat = np.ascontiguousarray(raw).reshape(k * n, -1)
    Y_all = Y
    if k > 1:  # each member's rows against the same targets
        Y_all = _empty(scratch, "Y", (k, *Y.shape), flat.dtype)
        Y_all[...] = Y
        Y_all = Y_all.reshape(k * n, -1)
    sw_all = None if sample_weight is None else np.tile(sample_weight, k)
    value = loss._loss_and_delta(Y_all, flat, sw_all, k * weight_sum, out=flat)
    coefs = params[: net.n_hidden + 1]
    l2 = float(alpha) / weight_sum
    if l2:
        value += 0.5 * l2 * float(sum(np.vdot(W, W) for W in coefs))
    _backward(net, params, cache, flat.reshape(k, n, -1), layers, l2, grads)
    return value


def _chunks(net, coefs, n_samples, dtype):
    widths = [W.shape[-1] for W in coefs] + [net.n_inputs]
    row_bytes = 3 * net.k * max(widths) * np.dtype(dtype).itemsize
    chunk = get_chunk_n_rows(row_bytes, max_n_rows=n_samples)
    return gen_batches(n_samples, max(1, min(chunk, n_samples)))


def predict_members(net, params, X, layers, n_layers=None):
    """Each member's raw output (or hidden activations with ``n_layers``),
    member-major ``(k, n_samples, width)``, in chunks of bounded memory."""
    coefs = params[: net.n_hidden + 1]
    out = None
    scratch = Scratch()
    for rows in _chunks(net, coefs, X.shape[0], coefs[0].dtype):
        with np.errstate(over="ignore", invalid="ignore"):
            part, _ = _forward(net, params, X[rows], layers, n_layers=n_layers,
                               scratch=scratch)
        if not np.isfinite(part).all():
            raise ValueError(
                "The network's output is not finite for some of these inputs: "
                "the forward pass overflowed. The usual causes are inputs far "
                "larger than the training data or unscaled inputs (scale them, "
                "e.g. with sklearn.preprocessing.QuantileTransformer)."
            )
        if out is None:
            out = np.empty((part.shape[0], X.shape[0], part.shape[2]), part.dtype)
        out[:, rows] = part
    return out


def combine_members(raw, link_name):
    """One raw output whose link is the members' mean prediction.

    The members' probabilities (not logits) are averaged for the softmax and
    logistic links, their predictions for the identity and exp links; the
    result is mapped back through the link's inverse, so that ``predict``,
    ``predict_proba`` and ``decision_function`` agree. A user's loss with
    another link gets the mean raw output.
    """
    k = raw.shape[0]
    if k == 1:
        return raw[0]
    log_k = np.log(k)
    if link_name == "softmax":
        return logsumexp(log_softmax(raw, axis=2), axis=0) - log_k
    if link_name == "logistic":
        # logit(mean p) = log(mean p) - log(mean(1 - p)), both log-sum-exps
        return logsumexp(log_expit(raw), axis=0) - logsumexp(log_expit(-raw), axis=0)
    if link_name == "exp":
        return logsumexp(raw, axis=0) - log_k
    return raw.mean(axis=0)
