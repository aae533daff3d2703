"""The network's parameters on the estimator: their layout, initialisation,
checks, and the forward passes over them.

A fitted estimator holds its parameters as public attributes: ``coefs_`` and
``intercepts_`` for the dense layers, and, for a tabular network (see
:mod:`sklearn_bp._tabular`), ``embedding_params_`` and the ensemble's
``ensemble_input_scales_`` / ``ensemble_output_scales_``. They are views of one
packed buffer, in the order the solvers and the optimizer state use
(:meth:`ParametersMixin._params`). :class:`ParametersMixin` gives the
estimator what concerns them: resolving the hidden layers from ``activation``
and ``dropout``, initialising (or, for ``warm_start`` and ``partial_fit``,
checking) the parameters, the dropout masks' generator, and the raw outputs
for prediction.
"""

from numbers import Real

import numpy as np

from . import _network, _tabular
from ._init import get_weight_init, glorot_uniform
from ._spec import resolve
from .activations import ACTIVATIONS, Activation
from .embeddings import get_embedding


def _hidden_sizes(hidden_layer_sizes):
    hidden = np.atleast_1d(np.asarray(hidden_layer_sizes))
    integers = np.issubdtype(hidden.dtype, np.integer)
    if hidden.ndim != 1 or (hidden.size and not integers):
        raise ValueError(
            "hidden_layer_sizes must be an int or a sequence of ints; got "
            f"{hidden_layer_sizes!r}."
        )
    if np.any(hidden <= 0):
        raise ValueError(
            "hidden_layer_sizes must contain only positive sizes; got "
            f"{hidden_layer_sizes!r}."
        )
    return list(map(int, hidden))


def _check_architecture(coefs, layer_units):
    # (the last axes: an ensemble's output layer is (k, fan_in, fan_out))
    current = [coefs[0].shape[-2]] + [W.shape[-1] for W in coefs]
    if current != layer_units:
        raise ValueError(
            "The network's layer sizes changed from "
            f"{current} to {layer_units} (n_features, hidden_layer_sizes, "
            "n_outputs). warm_start and partial_fit continue training the "
            "existing weights and need the same architecture: set "
            "warm_start=False (or clone the estimator) to fit a new network."
        )



def _per_layer(value, n_hidden, name):
    """One ``value`` per hidden layer: a sequence as given (checked against
    the number of hidden layers), any other value repeated."""
    if not _is_sequence(value):
        return [value] * n_hidden
    values = list(value)
    if len(values) != n_hidden:
        raise ValueError(
            f"{name} has {len(values)} entries but hidden_layer_sizes has "
            f"{n_hidden} hidden layer(s): give one {name} per hidden layer, or a "
            f"single value for all of them."
        )
    return values


def _dropout_rate(rate, where):
    if (
        isinstance(rate, (bool, np.bool_))
        or not isinstance(rate, Real)
        or not 0 <= rate < 1
    ):
        raise ValueError(
            f"{where} must be a float in the range [0, 1) (the probability of "
            f"zeroing a unit's output in training); got {rate!r}."
        )
    return float(rate)


def _is_sequence(value):
    return isinstance(value, (list, tuple, np.ndarray))


def _entry(name, i, value):
    """How an error names a hidden layer's entry of parameter ``name``."""
    return f"{name}[{i}]" if _is_sequence(value) else name


def _hidden_layers(activation, dropout, n_hidden):
    """The hidden :class:`~sklearn_bp._network.Layer` s for the estimator's
    ``activation`` and ``dropout`` parameters."""
    activations = _per_layer(activation, n_hidden, "activation")
    rates = _per_layer(dropout, n_hidden, "dropout")
    return [
        _network.Layer(
            resolve(spec, registry=ACTIVATIONS, base=Activation,
                    param_name=_entry("activation", i, activation)),
            _dropout_rate(rate, _entry("dropout", i, dropout)),
        )
        for i, (spec, rate) in enumerate(zip(activations, rates, strict=True))
    ]


class ParametersMixin:
    """The parameters' layout, initialisation and forward passes (see the
    module docstring); mixed into :class:`~sklearn_bp._base.BaseBackprop`."""

    def _prepare_parameters(self, X, n_outputs, first_call, rng, sample_weight):
        """Initialise the parameters (first call) or check their shapes."""
        hidden = _hidden_sizes(self.hidden_layer_sizes)
        embedding = None if self.embedding is None else get_embedding(self.embedding)
        if not first_call:
            net = self._tabular_net()
            n_inputs = X.shape[1] if net is None else net.n_inputs
            _check_architecture(self.coefs_, [n_inputs, *hidden, n_outputs])
            self._check_tabular(embedding, net)
            return
        net = _tabular.make_net(embedding, X, self.ensemble_size,
                                self.ensemble_type == "tabm-mini", len(hidden),
                                sample_weight)
        layer_units = [X.shape[1] if net is None else net.n_inputs, *hidden, n_outputs]
        layers = self._layers
        if not layers and not _is_sequence(self.activation):
            # MLP: the one activation sets the output layer's bound too
            layers = resolve(self.activation, registry=ACTIVATIONS,
                             base=Activation, param_name="activation")
        weight_init = get_weight_init(self.weight_init)
        for name in ("_optimizer_state", "_monitor", "_dropout_rng", "loss_", "t_",
                     "n_iter_", "embedding_params_", "embedding_bins_",
                     "ensemble_input_scales_", "ensemble_output_scales_"):
            self.__dict__.pop(name, None)
        self._net = net
        self.n_layers_ = len(layer_units)
        self.n_outputs_ = n_outputs
        if net is None:
            self.coefs_, self.intercepts_ = _network.init_params(
                layer_units, layers, rng, X.dtype, weight_init
            )
            return
        params = _tabular.init_params(
            net, layer_units, weight_init or glorot_uniform,
            _network.glorot_factors(layers, len(layer_units) - 1), rng, X.dtype,
        )
        self._set_params(net, params)

    def _set_params(self, net, params):
        """Store ``params`` (packed, see :mod:`sklearn_bp._tabular`) as the
        fitted attributes."""
        coefs, intercepts, embedding, r, s = net.split(params)
        self.coefs_, self.intercepts_ = list(coefs), list(intercepts)
        if net.embedding is not None:
            self.embedding_params_ = embedding
            if net.state is not None:
                self.embedding_bins_ = list(net.state)
        if net.ensemble:
            self.ensemble_input_scales_, self.ensemble_output_scales_ = list(r), list(s)

    def _params(self):
        """Every trained array, in the order the solvers and the optimizer
        state use: ``coefs_ + intercepts_`` then the tabular extras."""
        params = self.coefs_ + self.intercepts_
        if getattr(self, "embedding_params_", None) is not None:
            params = params + list(self.embedding_params_.values())
        return params + list(getattr(self, "ensemble_input_scales_", [])) + list(
            getattr(self, "ensemble_output_scales_", []))

    def _tabular_net(self):
        """The fitted :class:`~sklearn_bp._tabular.TabularNet` (None for a plain
        network), rebuilt from the parameters after loading."""
        if "_net" not in self.__dict__:
            embedding = (None if getattr(self, "embedding_params_", None) is None
                         else get_embedding(self.embedding))
            k = self.coefs_[-1].shape[0] if self.coefs_[-1].ndim == 3 else 1
            if embedding is None and k == 1:
                self._net = None
            else:
                self._net = _tabular.TabularNet(
                    embedding, getattr(self, "embedding_bins_", None), k,
                    len(getattr(self, "ensemble_output_scales_", [])) == 0,
                    self.n_features_in_, len(self.coefs_) - 1,
                    tuple(self.embedding_params_) if embedding is not None else (),
                )
        return self._net

    def _check_tabular(self, embedding, net):
        """warm_start and partial_fit keep the embedding and the ensemble."""
        before = (None if net is None or net.embedding is None else net.embedding,
                  1 if net is None else net.k,
                  net is not None and net.ensemble and net.mini)
        now = (embedding, self.ensemble_size,
               self.ensemble_size > 1 and self.ensemble_type == "tabm-mini")
        if before != now:
            raise ValueError(
                "embedding, ensemble_size and ensemble_type changed since the network "
                f"was fitted (from {before} to {now}); warm_start and partial_fit "
                "continue the existing parameters and need the same. Set "
                "warm_start=False (or clone the estimator) to fit a new network."
            )

    def _dropout_generator(self, rng, incremental):
        """The dropout masks' generator (``None`` without dropout): seeded from
        ``rng`` in a fit, kept across ``partial_fit`` calls so that they draw
        the masks a fit would."""
        if not any(layer.dropout for layer in self._layers):
            return None
        if not incremental or getattr(self, "_dropout_rng", None) is None:
            # (drawn only with dropout: without it, the shuffles stay MLP's)
            seed = rng.randint(np.iinfo(np.int32).max)
            self._dropout_rng = np.random.default_rng(seed)
        return self._dropout_rng

    def _raw_output(self, X):
        net = self._tabular_net()
        if net is None:
            return _network.predict_raw(self.coefs_, self.intercepts_, X, self._layers)
        members = _tabular.predict_members(net, self._params(), X, self._layers)
        return _tabular.combine_members(members, self._loss.out_activation_name)

    def _member_outputs(self, X):
        """Each member's raw output, ``(k, n_samples, n_outputs)``."""
        X = self._validate_for_predict(X)
        net = self._tabular_net()
        if net is None:
            return _network.predict_raw(self.coefs_, self.intercepts_, X,
                                        self._layers)[None]
        return _tabular.predict_members(net, self._params(), X, self._layers)

    def transform(self, X):
        """Return the last hidden layer's activations, learned features of ``X``.

        Lets a fitted network feed another estimator, e.g. in a
        :class:`~sklearn.pipeline.Pipeline` or a
        :class:`~sklearn.pipeline.FeatureUnion`. With no hidden layer
        (``hidden_layer_sizes=()``) the input is returned as a dense array.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        features : ndarray of shape (n_samples, hidden_layer_sizes[-1])
            Hidden activations, same dtype as the parameters.
        """
        X = self._validate_for_predict(X)
        n_hidden = len(self.coefs_) - 1
        if n_hidden == 0:
            return X.toarray() if hasattr(X, "toarray") else np.array(X)
        net = self._tabular_net()
        if net is None:
            return _network.predict_raw(
                self.coefs_, self.intercepts_, X, self._layers, n_layers=n_hidden
            )
        features = _tabular.predict_members(net, self._params(), X, self._layers,
                                            n_layers=n_hidden)
        # members side by side: (n_samples, k * width)
        return np.ascontiguousarray(features.transpose(1, 0, 2)).reshape(X.shape[0], -1)

    @property
    def _n_features_out(self):
        """Width of the features returned by :meth:`transform`."""
        W = self.coefs_[-1]
        return W.shape[0] * W.shape[1] if W.ndim == 3 else W.shape[0]
