"""Export fitted estimators to ONNX with skl2onnx.

Importing this module registers converters for :class:`~sklearn_bp.BackpropClassifier`
and :class:`~sklearn_bp.BackpropRegressor` with skl2onnx's public extension API
(:func:`skl2onnx.update_registered_converter`), after which skl2onnx converts
them like any scikit-learn estimator, alone or inside a
:class:`~sklearn.pipeline.Pipeline` or :class:`~sklearn.compose.ColumnTransformer`::

    import sklearn_bp.onnx  # noqa: F401  (registers the converters)
    from skl2onnx import to_onnx
    onx = to_onnx(model, X[:1].astype(np.float32))

It needs the optional ``onnx`` extra (``pip install "sklearn_bp[onnx]"``: skl2onnx,
onnx, onnxruntime). The import is not done by ``import sklearn_bp`` because
importing skl2onnx takes seconds.

The graph computes in the dtype of its input: a float32 input gives a float32
graph (the weights are cast), a float64 input a float64 graph. A classifier's
graph has two outputs, the labels and the probabilities (as a list of
dictionaries unless skl2onnx's option ``zipmap=False`` is given); a regressor's
has one, of shape ``(n_samples, n_outputs)``.

A user-written :class:`~sklearn_bp.activations.Activation` is exportable when it
defines ``onnx_forward(graph, Z)``, and a user-written
:class:`~sklearn_bp.losses.Loss` when it defines ``onnx_link(graph, raw)``: each
receives an :class:`OnnxGraph` and the name of its input, emits its nodes with
:meth:`OnnxGraph.node` and returns the name of its output.
"""


import numpy as np
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import update_registered_converter
from skl2onnx.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
    StringTensorType,
)

from ._classifier import BackpropClassifier
from ._regressor import BackpropRegressor
from .activations import (
    ELU,
    Activation,
    Identity,
    LeakyReLU,
    Logistic,
    ReLU,
    Softplus,
    Tanh,
    get_activation,
)
from .losses import (
    AbsoluteError,
    Huber,
    LogLoss,
    Poisson,
    SquaredError,
    get_loss,
)

__all__ = ["OnnxGraph", "register_converters"]


class OnnxGraph:
    """The part of an ONNX graph that a component's export hook writes into.

    An :class:`~sklearn_bp.activations.Activation` with a method
    ``onnx_forward(graph, Z)``, or a :class:`~sklearn_bp.losses.Loss` with a
    method ``onnx_link(graph, raw)``, receives one of these and the name of its
    input tensor (shape ``(n_samples, n_units)``, in the graph's float dtype), and
    returns the name of the tensor that holds its result.

    Parameters
    ----------
    scope : skl2onnx Scope
        Gives unique names.
    container : skl2onnx ModelComponentContainer
        Receives the nodes and initializers.
    dtype : numpy dtype
        The graph's float dtype, ``float32`` or ``float64``.

    Attributes
    ----------
    dtype : numpy.dtype
        The graph's float dtype: constants are stored in it.

    See Also
    --------
    register_converters : Make skl2onnx convert the estimators.

    Examples
    --------
    The Swish activation ``z * sigmoid(z)``, exportable:

    >>> import numpy as np
    >>> from scipy.special import expit
    >>> from sklearn_bp.activations import Activation
    >>> class Swish(Activation):
    ...     def forward(self, Z):
    ...         return Z * expit(Z)
    ...     def derivative(self, Z, A):
    ...         s = expit(Z)
    ...         return s + Z * s * (1 - s)
    ...     def onnx_forward(self, graph, Z):
    ...         return graph.node("Mul", Z, graph.node("Sigmoid", Z))
    """

    def __init__(self, scope, container, dtype):
        self._scope = scope
        self._container = container
        self.dtype = np.dtype(dtype)

    @property
    def _proto_dtype(self):
        return TensorProto.DOUBLE if self.dtype == np.float64 else TensorProto.FLOAT

    def node(self, op_type, *inputs, domain="", output=None, **attributes):
        """Add one node of the default ONNX domain and return its output's name.

        Parameters
        ----------
        op_type : str
            The ONNX operator, e.g. ``"Mul"``, ``"Sigmoid"``, ``"Exp"``.
        *inputs : str
            Names of its input tensors (from the hook's argument, from
            :meth:`constant` or from earlier calls).
        domain : str, default=""
            The operator's domain (``""``: the default ONNX domain).
        output : str, default=None
            Name of the output tensor; a new unique name when ``None``.
        **attributes
            The operator's attributes, e.g. ``alpha=0.2`` for ``LeakyRelu``.

        Returns
        -------
        name : str
            Name of the node's (single) output tensor.
        """
        if output is None:
            output = self._scope.get_unique_variable_name(op_type.lower())
        self._container.add_node(
            op_type, list(inputs), [output], op_domain=domain,
            name=self._scope.get_unique_operator_name(op_type), **attributes,
        )
        return output

    def constant(self, value, dtype=None):
        """Add a constant tensor and return its name.

        Parameters
        ----------
        value : array-like
            The constant's value.
        dtype : numpy dtype, default=None
            Its dtype; ``None`` means the graph's float dtype.

        Returns
        -------
        name : str
            Name of the constant tensor.
        """
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self._scope.get_unique_variable_name("constant")
        if array.dtype.kind in "OUS":
            data = [str(v).encode("utf-8") for v in array.ravel()]
            self._container.add_initializer(
                name, TensorProto.STRING, list(array.shape), data
            )
        else:
            self._container.add_initializer(
                name, None, None, numpy_helper.from_array(array, name)
            )
        return name

    def cast(self, name, dtype):
        """Add a ``Cast`` node.

        Parameters
        ----------
        name : str
            The tensor to convert.
        dtype : numpy dtype
            The dtype to convert it to, e.g. ``np.int64``.

        Returns
        -------
        name : str
            Name of the converted tensor.
        """
        to = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        return self.node("Cast", name, to=to)


# -- the components' nodes ------------------------------------------------------


def _positive(graph, Z):
    return graph.node("Greater", Z, graph.constant(0.0))


# LeakyReLU, ELU and Softplus are written with Where / Exp / Log rather than
# ONNX's LeakyRelu, Elu and Softplus: onnxruntime has no float64 kernels for
# those, and these forms are the ones the activations' forward computes.
def _leaky_relu(graph, activation, Z):
    negative = graph.node("Mul", Z, graph.constant(float(activation.negative_slope)))
    return graph.node("Where", _positive(graph, Z), Z, negative)


def _elu(graph, activation, Z):
    # exp(min(z, 0)) - 1: never overflows for large z
    expm1 = graph.node("Sub", graph.node("Exp", graph.node("Min", Z, graph.constant(
        0.0))), graph.constant(1.0))
    negative = graph.node("Mul", expm1, graph.constant(float(activation.alpha)))
    return graph.node("Where", _positive(graph, Z), Z, negative)


def _softplus(graph, activation, Z):
    # log(1 + exp(z)) = max(z, 0) + log(1 + exp(-|z|)): never overflows
    tail = graph.node("Exp", graph.node("Neg", graph.node("Abs", Z)))
    log1p = graph.node("Log", graph.node("Add", graph.constant(1.0), tail))
    return graph.node("Add", graph.node("Relu", Z), log1p)


# Exact types only: a subclass of a built-in may compute something else, so it
# provides its own hook (onnx_forward / onnx_link).
_ACTIVATION_NODES = {
    Identity: lambda graph, activation, Z: Z,
    Logistic: lambda graph, activation, Z: graph.node("Sigmoid", Z),
    Tanh: lambda graph, activation, Z: graph.node("Tanh", Z),
    ReLU: lambda graph, activation, Z: graph.node("Relu", Z),
    LeakyReLU: _leaky_relu,
    ELU: _elu,
    Softplus: _softplus,
}

_IDENTITY_LINK = lambda g, loss, raw: raw  # noqa: E731
_LINK_NODES = {
    SquaredError: _IDENTITY_LINK,
    AbsoluteError: _IDENTITY_LINK,
    Huber: _IDENTITY_LINK,
    Poisson: lambda g, loss, raw: g.node("Exp", raw),
}


def _activation_nodes(graph, activation, Z):
    emit = _ACTIVATION_NODES.get(type(activation))
    if emit is not None:
        return emit(graph, activation, Z)
    hook = getattr(activation, "onnx_forward", None)
    if hook is None:
        raise TypeError(
            f"The activation {activation!r} cannot be exported to ONNX: a "
            "user-written Activation needs a method onnx_forward(graph, Z) that "
            "emits its ONNX nodes and returns the name of their output (see "
            "sklearn_bp.onnx.OnnxGraph)."
        )
    return hook(graph, Z)


def _link_nodes(graph, loss, raw):
    emit = _LINK_NODES.get(type(loss))
    if emit is not None:
        return emit(graph, loss, raw)
    hook = getattr(loss, "onnx_link", None)
    if hook is None:
        raise TypeError(
            f"The loss {loss!r} cannot be exported to ONNX: a user-written Loss "
            "needs a method onnx_link(graph, raw) that emits the ONNX nodes of "
            "its output link and returns the name of their output (see "
            "sklearn_bp.onnx.OnnxGraph)."
        )
    return hook(graph, raw)


def _hidden_activations(model):
    """One resolved activation per hidden layer, from the public ``activation``.

    ``activation`` is a name or an Activation (the same for every hidden
    layer), or a sequence of them, one per hidden layer.
    """
    n_hidden = len(model.coefs_) - 1
    spec = model.activation
    specs = [spec] * n_hidden if isinstance(spec, (str, Activation)) else list(spec)
    return [get_activation(s) for s in specs]


def _check_exportable(model):
    """Only plain feed-forward networks have a converter so far."""
    unsupported = {
        name: getattr(model, name)
        for name, plain in (("embedding", None), ("ensemble_size", 1))
        if getattr(model, name, plain) != plain
    }
    if unsupported:
        settings = ", ".join(f"{k}={v!r}" for k, v in unsupported.items())
        raise NotImplementedError(
            f"{type(model).__name__} with {settings} cannot be exported to ONNX: "
            "the converter covers plain feed-forward networks (embedding=None, "
            "ensemble_size=1)."
        )


def _network_nodes(graph, model, X):
    """The raw output (before the link) of ``model`` for the input named ``X``."""
    _check_exportable(model)
    A = graph.cast(X, graph.dtype)
    activations = _hidden_activations(model)
    n_layers = len(model.coefs_)
    for i, (W, b) in enumerate(zip(model.coefs_, model.intercepts_, strict=True)):
        Z = graph.node("MatMul", A, graph.constant(W))
        Z = graph.node("Add", Z, graph.constant(b.reshape(1, -1)))
        A = Z if i == n_layers - 1 else _activation_nodes(graph, activations[i], Z)
    return A


def _graph_for(scope, operator, container):
    input_type = operator.inputs[0].type
    dtype = np.float64 if isinstance(input_type, DoubleTensorType) else np.float32
    return OnnxGraph(scope, container, dtype)


# -- the classifier -------------------------------------------------------------


def _label_type(classes):
    """The ONNX tensor type of the labels, and the labels to store."""
    if classes.dtype.kind in "OUS":
        if all(isinstance(c, str) for c in classes):
            return StringTensorType, classes.astype(str)
    elif classes.dtype.kind in "biu" or (
        classes.dtype.kind == "f" and np.all(classes == np.round(classes))
    ):
        return Int64TensorType, classes.astype(np.int64)
    raise TypeError(
        "Only integer or string class labels can be exported to ONNX (skl2onnx's "
        f"label types); this classifier has classes_ {classes.tolist()!r}. Encode "
        "the labels, e.g. with sklearn.preprocessing.LabelEncoder."
    )


def _float_type(operator):
    input_type = operator.inputs[0].type
    return DoubleTensorType if isinstance(input_type, DoubleTensorType) else (
        FloatTensorType
    )


def _classifier_shapes(operator):
    """Output types: labels (n,) (multilabel: (n, n_labels)), probabilities."""
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    label_type, _ = _label_type(np.asarray(model.classes_))
    multilabel = getattr(model, "_multilabel", False)
    operator.outputs[0].type = label_type(
        [n, len(model.classes_)] if multilabel else [n]
    )
    operator.outputs[1].type = _float_type(operator)([n, len(model.classes_)])


def _convert_classifier(scope, operator, container):
    model = operator.raw_operator
    graph = _graph_for(scope, operator, container)
    raw = _network_nodes(graph, model, operator.inputs[0].full_name)
    loss = get_loss(model.loss)
    labels_out, proba_out = operator.outputs[0].full_name, operator.outputs[1].full_name
    log_loss = type(loss) is LogLoss

    def link(raw):
        if log_loss:
            if model.out_activation_ == "softmax":
                return graph.node("Softmax", raw, axis=1)
            return graph.node("Sigmoid", raw)
        return _link_nodes(graph, loss, raw)

    # Labels from the raw output as predict() decides them: raw > 0 for
    # logistic outputs, the first largest raw value otherwise.
    if getattr(model, "_multilabel", False):
        graph.node("Identity", link(raw), output=proba_out)
        positive = graph.node("Greater", raw, graph.constant(0.0))
        graph.node("Cast", positive, to=TensorProto.INT64, output=labels_out)
        return
    if model.n_outputs_ == 1:
        if log_loss:
            # p(class 0) as the link of the mirrored output, exact as in
            # predict_proba (not 1 - p rounded)
            negative = graph.node("Sigmoid", graph.node("Neg", raw))
        else:
            positive_proba = link(raw)
            negative = graph.node("Sub", graph.constant(1.0), positive_proba)
        positive_proba = graph.node("Sigmoid", raw) if log_loss else positive_proba
        graph.node("Concat", negative, positive_proba, axis=1, output=proba_out)
        index = graph.cast(graph.node("Greater", raw, graph.constant(0.0)), np.int64)
        index = graph.node("Reshape", index, graph.constant([-1], dtype=np.int64))
    else:
        graph.node("Identity", link(raw), output=proba_out)
        index = graph.node("ArgMax", raw, axis=1, keepdims=0)
    _, classes = _label_type(np.asarray(model.classes_))
    graph.node("Gather", graph.constant(classes, dtype=classes.dtype), index,
               axis=0, output=labels_out)


# -- the regressor --------------------------------------------------------------


def _regressor_shapes(operator):
    """One output, (n_samples, n_outputs), in the input's float type."""
    model = operator.raw_operator
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _float_type(operator)([n, model.n_outputs_])


def _convert_regressor(scope, operator, container):
    model = operator.raw_operator
    graph = _graph_for(scope, operator, container)
    raw = _network_nodes(graph, model, operator.inputs[0].full_name)
    prediction = _link_nodes(graph, get_loss(model.loss), raw)
    graph.node("Identity", prediction, output=operator.outputs[0].full_name)


def register_converters():
    """Register the estimators' converters with skl2onnx (done on import).

    Calling it again is harmless: the registration is replaced by the same one.

    See Also
    --------
    OnnxGraph : What a user-written component's export hook receives.

    Examples
    --------
    >>> from sklearn_bp.onnx import register_converters
    >>> register_converters()
    """
    update_registered_converter(
        BackpropClassifier, "SklearnBpBackpropClassifier", _classifier_shapes,
        _convert_classifier,
        # (nocl: zipmap keyed by the labels; nocl=True is not offered)
        options={"zipmap": [True, False, "columns"], "nocl": [False]},
    )
    update_registered_converter(
        BackpropRegressor, "SklearnBpBackpropRegressor", _regressor_shapes,
        _convert_regressor,
    )


register_converters()
