"""Numerical feature embeddings: each feature becomes a small learned vector.

Gorishniy et al., "On Embeddings for Numerical Features in Tabular Deep
Learning" (NeurIPS 2022), map every numerical feature ``x_f`` to a vector of
``d_embedding`` numbers before the first dense layer; the network then reads
the ``n_features * d_embedding`` concatenated embeddings instead of the raw
features. Two families are offered, with the arithmetic of the reference
implementation ``rtdl_num_embeddings`` (tested against it):

* :class:`PeriodicEmbedding`: trainable frequencies ``c_{f,j}``, then
  ``[cos(2 pi c_{f,j} x_f), sin(2 pi c_{f,j} x_f)]_j``, then a linear layer
  and a ReLU per feature (or one linear layer shared by all features, the
  ``lite`` variant);
* :class:`PiecewiseLinearEmbedding`: bins from quantiles of the training data
  (computed at ``fit``), the piecewise-linear encoding of ``x_f`` over its
  bins, then a linear layer per feature (version ``"B"`` adds a linear
  embedding ``w_f x_f + b_f`` and starts the piecewise part at zero, as TabM
  uses it).

Pass a name (``embedding="periodic"`` / ``"piecewise_linear"``) or an instance
(``embedding=PeriodicEmbedding(n_frequencies=16)``, nested parameters
``embedding__n_frequencies``) to an estimator. Their parameters are trained
by the estimator's optimizer with the rest of the network and are stored in
the fitted attribute ``embedding_params_``; ``coefs_`` and ``intercepts_``
keep describing the dense layers, the first of which reads ``n_features *
d_embedding`` inputs. Sparse input is densified a batch at a time (and once
for the bins).
"""

import math
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._spec import Spec, resolve

__all__ = [
    "Embedding",
    "PeriodicEmbedding",
    "PiecewiseLinearEmbedding",
    "EMBEDDINGS",
    "get_embedding",
]

_TWO_PI = 2 * math.pi


def _uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, shape)


class Embedding(Spec):
    """Base class of the numerical embeddings (the built-ins only, for now).

    An embedding maps ``X`` of shape ``(n_samples, n_features)`` to
    ``(n_samples, n_features * d_embedding)``, feature by feature. The
    methods are private: the estimators call them with the parameters they
    own (the spec itself stays stateless).
    """

    def _width(self, n_features):
        """Number of inputs the first dense layer reads."""
        return n_features * self.d_embedding

    def _fit_state(self, X, sample_weight=None):
        """What the embedding learns from the training data without
        gradients (the bins); ``None`` when nothing."""
        return None

    def _check_state(self, state, n_features):
        return None


class PeriodicEmbedding(Embedding):
    """Periodic embedding of each numerical feature (``rtdl_num_embeddings``'
    ``PeriodicEmbeddings``).

    For feature ``f`` with frequencies ``c_f`` (``n_frequencies`` of them,
    trained), ``v = 2 pi c_f x_f``; the embedding is ``ReLU([cos v, sin v] @ W_f
    + b_f)`` with a linear layer ``(W_f, b_f)`` of its own per feature, or one
    shared by all features with ``lite=True``.

    Parameters
    ----------
    n_frequencies : int, default=48
        Frequencies per feature (``k`` in the paper).
    frequency_init_scale : float, default=0.01
        Standard deviation ``sigma`` of the initial frequencies (a normal
        truncated at ``3 sigma``); the paper's most important hyper-parameter.
    d_embedding : int, default=24
        Size of each feature's embedding.
    lite : bool, default=False
        Share the linear layer between features (fewer parameters).

    Notes
    -----
    Initialisation as the reference: the linear layer's weights and biases
    uniform in ``+-1/sqrt(2 n_frequencies)``.

    Examples
    --------
    >>> from sklearn_bp import BackpropRegressor
    >>> from sklearn_bp.embeddings import PeriodicEmbedding
    >>> reg = BackpropRegressor(embedding=PeriodicEmbedding(n_frequencies=8))
    >>> reg.get_params()["embedding__n_frequencies"]
    8
    """

    _parameter_constraints = {
        "n_frequencies": [Interval(Integral, 1, None, closed="left")],
        "frequency_init_scale": [Interval(Real, 0, None, closed="neither")],
        "d_embedding": [Interval(Integral, 1, None, closed="left")],
        "lite": ["boolean"],
    }

    def __init__(self, *, n_frequencies=48, frequency_init_scale=0.01, d_embedding=24,
                 lite=False):
        self.n_frequencies = n_frequencies
        self.frequency_init_scale = frequency_init_scale
        self.d_embedding = d_embedding
        self.lite = lite

    def _param_shapes(self, n_features, state):
        k2, d = 2 * self.n_frequencies, self.d_embedding
        if self.lite:
            return {"frequencies": (n_features, self.n_frequencies),
                    "weight": (k2, d), "bias": (d,)}
        return {"frequencies": (n_features, self.n_frequencies),
                "weight": (n_features, k2, d), "bias": (n_features, d)}

    def _init_params(self, params, state, rng):
        sigma = float(self.frequency_init_scale)
        c = params["frequencies"]
        draw = rng.normal(0.0, sigma, c.shape)
        # truncated at 3 sigma as the reference (it redraws what falls outside)
        outside = np.abs(draw) > 3 * sigma
        while outside.any():
            draw[outside] = rng.normal(0.0, sigma, int(outside.sum()))
            outside = np.abs(draw) > 3 * sigma
        c[...] = draw
        bound = 1 / math.sqrt(2 * self.n_frequencies)
        params["weight"][...] = _uniform(rng, bound, params["weight"].shape)
        params["bias"][...] = _uniform(rng, bound, params["bias"].shape)

    def _forward(self, params, state, X):
        """``(E, cache)``: the ``(n_samples, n_features * d)`` embeddings."""
        c, W, b = params["frequencies"], params["weight"], params["bias"]
        n, F = X.shape
        K = c.shape[1]
        Xt = np.ascontiguousarray(X.T)  # (F, n): the per-feature products batch by F
        V = (_TWO_PI * c)[:, None, :] * Xt[:, :, None]  # (F, n, K)
        P = np.concatenate([np.cos(V), np.sin(V)], axis=2)  # (F, n, 2K)
        if self.lite:
            Y = (P.reshape(F * n, 2 * K) @ W).reshape(F, n, -1) + b
        else:
            Y = np.matmul(P, W) + b[:, None, :]
        E = np.maximum(Y, 0)
        return _features_last(E), (Xt, V, P, Y)

    def _backward(self, params, state, cache, dE, grads):
        """Fill ``grads`` (same keys as ``params``) from ``dL/dE``."""
        Xt, V, P, Y = cache
        W = params["weight"]
        F, n, K2 = P.shape
        dY = _features_first(dE, F) * (Y > 0)
        if self.lite:
            flat = dY.reshape(F * n, -1)
            grads["bias"][...] = flat.sum(axis=0)
            grads["weight"][...] = P.reshape(F * n, K2).T @ flat
            dP = (flat @ W.T).reshape(F, n, K2)
        else:
            grads["bias"][...] = dY.sum(axis=1)
            np.matmul(P.transpose(0, 2, 1), dY, out=grads["weight"])
            dP = np.matmul(dY, W.transpose(0, 2, 1))
        K = K2 // 2
        dV = np.cos(V) * dP[:, :, K:] - np.sin(V) * dP[:, :, :K]
        grads["frequencies"][...] = _TWO_PI * np.einsum("fnk,fn->fk", dV, Xt)


class PiecewiseLinearEmbedding(Embedding):
    """Piecewise-linear embedding of each numerical feature
    (``rtdl_num_embeddings``' ``PiecewiseLinearEmbeddings``).

    At ``fit``, each feature's bin edges are the quantiles of the training
    data at ``n_bins + 1`` evenly spaced levels (repeated edges removed; a
    constant feature gets the single bin ``[v, v + 1]``). A
    value is encoded over its feature's bins as ``[1, ..., 1, (x - left) /
    width, 0, ..., 0]`` (the first component not clipped below, the last not
    clipped above, so values beyond the training range extrapolate), then
    mapped by a linear layer of its own per feature.

    Parameters
    ----------
    n_bins : int, default=48
        Bins per feature (fewer when a feature has repeated quantiles).
    d_embedding : int, default=16
        Size of each feature's embedding.
    activation : bool, default=False
        Apply a ReLU to the piecewise-linear part.
    version : {"A", "B"}, default="B"
        ``"B"`` (TabM's choice): a linear embedding ``w_f x_f + b_f`` plus
        the piecewise-linear part, whose weights start at zero (so a fit
        starts from a linear embedding). ``"A"``: the piecewise-linear part
        alone, with a bias, initialised uniformly.

    Examples
    --------
    >>> from sklearn_bp import BackpropClassifier
    >>> from sklearn_bp.embeddings import PiecewiseLinearEmbedding
    >>> clf = BackpropClassifier(embedding=PiecewiseLinearEmbedding(n_bins=16))
    >>> clf.get_params()["embedding__n_bins"]
    16
    """

    _parameter_constraints = {
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "d_embedding": [Interval(Integral, 1, None, closed="left")],
        "activation": ["boolean"],
        "version": [StrOptions({"A", "B"})],
    }

    def __init__(self, *, n_bins=48, d_embedding=16, activation=False, version="B"):
        self.n_bins = n_bins
        self.d_embedding = d_embedding
        self.activation = activation
        self.version = version

    def _fit_state(self, X, sample_weight=None):
        """The bin edges per feature, from sample-weighted quantiles of ``X``.

        The quantiles are those of the inverted empirical distribution
        function (numpy's ``method="inverted_cdf"``), the definition under
        which an integer sample weight equals repeating the row and a zero
        weight equals dropping it; ``rtdl_num_embeddings.compute_bins``
        interpolates linearly between order statistics, which cannot honour
        weights. Repeated quantiles are dropped, so a feature with few
        distinct values gets fewer bins. A feature that is constant in the
        training data gets one bin ``[v, v + 1]`` (its encoding is then ``x -
        v``, unclipped), where the reference implementation refuses it.
        """
        levels = np.linspace(0.0, 1.0, self.n_bins + 1)
        quantiles = _weighted_quantiles(np.asarray(X, dtype=np.float64), levels,
                                        sample_weight)
        bins = [np.unique(q) for q in quantiles.T]
        bins = [edges if edges.size > 1 else np.array([edges[0], edges[0] + 1.0])
                for edges in bins]
        return [edges.astype(X.dtype) for edges in bins]

    def _encoding(self, bins, dtype):
        """``(weight, bias, n_bins per feature)`` of the encoding's affine map,
        laid out as the reference: a feature's last component in the last
        column, its others first, zeros between."""
        counts = [edges.size - 1 for edges in bins]
        M = max(counts)
        weight = np.zeros((len(bins), M), dtype=dtype)
        bias = np.zeros((len(bins), M), dtype=dtype)
        for f, edges in enumerate(bins):
            width = np.diff(edges)
            w, b = 1.0 / width, -edges[:-1] / width
            weight[f, -1], bias[f, -1] = w[-1], b[-1]
            weight[f, : counts[f] - 1] = w[:-1]
            bias[f, : counts[f] - 1] = b[:-1]
        return weight, bias, np.array(counts)

    def _param_shapes(self, n_features, state):
        M = max(edges.size - 1 for edges in state)
        d = self.d_embedding
        shapes = {"weight": (n_features, M, d)}
        if self.version == "B":
            shapes.update(linear_weight=(n_features, d), linear_bias=(n_features, d))
        else:
            shapes["bias"] = (n_features, d)
        return shapes

    def _init_params(self, params, state, rng):
        if self.version == "B":
            bound = 1 / math.sqrt(self.d_embedding)
            params["linear_weight"][...] = _uniform(rng, bound,
                                                    params["linear_weight"].shape)
            params["linear_bias"][...] = _uniform(rng, bound,
                                                  params["linear_bias"].shape)
            params["weight"][...] = 0.0
            return
        bound = 1 / math.sqrt(params["weight"].shape[1])
        params["weight"][...] = _uniform(rng, bound, params["weight"].shape)
        params["bias"][...] = _uniform(rng, bound, params["bias"].shape)

    def _forward(self, params, state, X):
        weight, bias, counts = self._encoding(state, X.dtype)
        Xt = np.ascontiguousarray(X.T)
        Q = weight[:, None, :] * Xt[:, :, None] + bias[:, None, :]  # (F, n, M)
        if Q.shape[2] > 1:
            Q[:, :, 0] = np.minimum(Q[:, :, 0], 1.0)
            np.clip(Q[:, :, 1:-1], 0.0, 1.0, out=Q[:, :, 1:-1])
            last = Q[:, :, -1]
            many = counts > 1  # a single-bin feature's component is not clipped
            last[many] = np.maximum(last[many], 0.0)
        Y = np.matmul(Q, params["weight"])
        if self.version == "A":
            Y += params["bias"][:, None, :]
        R = np.maximum(Y, 0) if self.activation else Y
        if self.version == "B":
            R = R + (params["linear_weight"][:, None, :] * Xt[:, :, None]
                     + params["linear_bias"][:, None, :])
        return _features_last(R), (Xt, Q, Y)

    def _backward(self, params, state, cache, dE, grads):
        Xt, Q, Y = cache
        F = Q.shape[0]
        dR = _features_first(dE, F)
        if self.version == "B":
            grads["linear_weight"][...] = np.einsum("fnd,fn->fd", dR, Xt)
            grads["linear_bias"][...] = dR.sum(axis=1)
        dY = dR * (Y > 0) if self.activation else dR
        np.matmul(Q.transpose(0, 2, 1), dY, out=grads["weight"])
        if self.version == "A":
            grads["bias"][...] = dY.sum(axis=1)

    def _check_state(self, state, n_features):
        if len(state) != n_features:
            raise ValueError(
                "The embedding's bins belong to another number of features."
            )


def _weighted_quantiles(X, levels, sample_weight):
    """Quantiles of each column at ``levels`` (inverted CDF, weighted):
    the smallest value whose cumulative weight reaches ``level * total``."""
    weights = np.ones(X.shape[0]) if sample_weight is None else np.asarray(
        sample_weight, dtype=np.float64)
    keep = weights > 0
    X, weights = X[keep], weights[keep]
    order = np.argsort(X, axis=0, kind="stable")
    values = np.take_along_axis(X, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)  # (n, F)
    total = cumulative[-1]
    out = np.empty((len(levels), X.shape[1]))
    for f in range(X.shape[1]):
        # (as numpy's inverted_cdf: no tolerance on level * total)
        index = np.searchsorted(cumulative[:, f], levels * total[f], side="left")
        out[:, f] = values[np.minimum(index, len(values) - 1), f]
    return out


def _features_last(E):
    """``(F, n, d)`` -> ``(n, F * d)``, feature after feature (the
    reference's flattening order)."""
    F, n, d = E.shape
    return np.ascontiguousarray(E.transpose(1, 0, 2)).reshape(n, F * d)


def _features_first(dE, F):
    """``(n, F * d)`` -> ``(F, n, d)``."""
    n = dE.shape[0]
    return dE.reshape(n, F, -1).transpose(1, 0, 2)


EMBEDDINGS = {
    "periodic": PeriodicEmbedding,
    "piecewise_linear": PiecewiseLinearEmbedding,
}


def get_embedding(embedding):
    """Return a private embedding instance from a name or an instance.

    Parameters
    ----------
    embedding : str or Embedding
        ``"periodic"``, ``"piecewise_linear"`` or an :class:`Embedding`.

    Returns
    -------
    embedding : Embedding
        A new, validated instance (a copy when an instance was given).

    Examples
    --------
    >>> from sklearn_bp.embeddings import get_embedding
    >>> get_embedding("periodic")
    PeriodicEmbedding()
    """
    return resolve(embedding, registry=EMBEDDINGS, base=Embedding,
                   param_name="embedding")
