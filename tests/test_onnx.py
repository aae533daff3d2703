"""ONNX export through skl2onnx: onnxruntime reproduces predict / predict_proba.

Needs the optional ``onnx`` extra (skl2onnx, onnx, onnxruntime); skipped when it
is missing. Tolerances: 1e-5 for float32 graphs, 1e-10 for float64 ones, on
ordinary inputs and on inputs large enough that a naive softmax, logistic or
softplus would overflow.
"""

import warnings

import numpy as np
import pytest
from scipy.special import expit
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

_EXTRA = "the optional 'onnx' extra is not installed (pip install 'sklearn_bp[onnx]')"
pytest.importorskip("skl2onnx", reason=_EXTRA)
ort = pytest.importorskip("onnxruntime", reason=_EXTRA)

from skl2onnx import to_onnx  # noqa: E402

import sklearn_bp.onnx  # noqa: E402,F401  (registers the converters)
from sklearn_bp import BackpropClassifier, BackpropRegressor  # noqa: E402
from sklearn_bp.activations import ACTIVATIONS, Activation  # noqa: E402
from sklearn_bp.losses import Loss, SquaredError  # noqa: E402

TOL = {np.float32: 1e-5, np.float64: 1e-10}
DTYPES = [np.float32, np.float64]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _session(model, X, dtype, **options):
    onx = to_onnx(model, X[:1].astype(dtype),
                  options={id(_last(model)): options} if options else None)
    return ort.InferenceSession(onx.SerializeToString(),
                                providers=["CPUExecutionProvider"])


def _last(model):
    return model.steps[-1][1] if hasattr(model, "steps") else model


def _run(model, X, dtype, **options):
    session = _session(model, X, dtype, **options)
    return session.run(None, {session.get_inputs()[0].name: X.astype(dtype)})


def _classification(n_classes=3, n=120, seed=0):
    X, y = make_classification(n_samples=n, n_features=6, n_informative=4,
                               n_classes=n_classes, random_state=seed)
    return X, y


def _inputs(X, dtype):
    """Ordinary rows, and rows a thousand times larger: raw outputs in the
    thousands overflow a naive exp in any float dtype."""
    return np.vstack([X, 1e3 * X[:20]]).astype(dtype)


def _check_classifier(model, X, dtype, **options):
    X = X.astype(dtype)
    labels, proba = _run(model, X, dtype, zipmap=False, **options)
    np.testing.assert_array_equal(labels, model.predict(X))
    expected = model.predict_proba(X)
    assert proba.dtype == dtype
    np.testing.assert_allclose(proba, expected, rtol=TOL[dtype], atol=TOL[dtype])
    return labels, proba


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - {"sigmoid"}))
def test_every_activation_in_a_pipeline(activation, dtype):
    X, y = _classification()
    X = X.astype(dtype)
    pipe = make_pipeline(
        StandardScaler(),
        BackpropClassifier((7, 5), activation=activation, max_iter=30,
                           learning_rate_init=0.01, random_state=0),
    ).fit(X, y)
    labels, proba = _check_classifier(pipe, _inputs(X, dtype), dtype)
    assert np.all(np.isfinite(proba))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel"])
def test_every_classifier_link(kind, dtype):
    X, y = _classification(n_classes=2 if kind == "binary" else 4)
    if kind == "multilabel":
        y = np.stack([y == 0, y >= 2, y % 2 == 1], axis=1).astype(int)
    X = StandardScaler().fit_transform(X).astype(dtype)
    clf = BackpropClassifier((6,), activation="relu", max_iter=30,
                             learning_rate_init=0.05, random_state=0).fit(X, y)
    expected_link = {"binary": "logistic", "multiclass": "softmax",
                     "multilabel": "logistic"}[kind]
    assert clf.out_activation_ == expected_link
    labels, proba = _check_classifier(clf, _inputs(X, dtype), dtype)
    # the extreme rows are confidently classified: probabilities of exactly 0
    # or 1 where a naive formula would give nan
    assert np.all(np.isfinite(proba)) and proba.min() < 1e-30


@pytest.mark.parametrize("dtype", DTYPES)
def test_string_and_sparse_integer_labels(dtype):
    X, y = _classification(n_classes=3)
    X = X.astype(dtype)
    for labels in (np.array(["cat", "dog", "eel"]), np.array([3, 7, 11])):
        clf = BackpropClassifier((5,), max_iter=20, random_state=0).fit(X, labels[y])
        predicted, _ = _check_classifier(clf, X, dtype)
        assert set(predicted) <= set(labels)


def test_default_zipmap_output_gives_labels_and_probability_dicts():
    X, y = _classification(n_classes=3)
    clf = BackpropClassifier((5,), max_iter=20, random_state=0).fit(X, y)
    labels, proba = _run(clf, X[:4], np.float32)
    np.testing.assert_array_equal(labels, clf.predict(X[:4]))
    assert sorted(proba[0]) == [0, 1, 2]
    np.testing.assert_allclose([row[1] for row in proba],
                               clf.predict_proba(X[:4])[:, 1], atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "loss", ["squared_error", "absolute_error", "huber", "poisson"]
)
def test_every_regressor_link(loss, dtype):
    X, y = make_regression(n_samples=120, n_features=5, n_targets=2, random_state=0)
    X = StandardScaler().fit_transform(X).astype(dtype)
    y = np.exp(y / np.abs(y).max()) if loss == "poisson" else y / 100
    reg = BackpropRegressor((6,), activation="softplus", loss=loss, max_iter=30,
                            learning_rate_init=0.01, random_state=0).fit(X, y)
    # Poisson's exp overflows for raw outputs past ~88 (float32): ten times
    # the training range stays below that; the identity link takes any input.
    Xt = np.vstack([X, (10 if loss == "poisson" else 1e3) * X[:20]]).astype(dtype)
    (prediction,) = _run(reg, Xt, dtype)
    assert prediction.dtype == dtype and prediction.shape == (len(Xt), 2)
    np.testing.assert_allclose(prediction, reg.predict(Xt), rtol=TOL[dtype],
                               atol=TOL[dtype])


def test_single_output_regressor_in_a_column_transformer():
    X, y = make_regression(n_samples=100, n_features=4, random_state=0)
    model = make_pipeline(
        ColumnTransformer([("scaled", StandardScaler(), [0, 1]),
                           ("kept", "passthrough", [2, 3])]),
        BackpropRegressor((5,), max_iter=20, random_state=0),
    ).fit(X, y)
    (prediction,) = _run(model, X, np.float64)
    np.testing.assert_allclose(prediction.ravel(), model.predict(X), rtol=1e-10,
                               atol=1e-10)


def test_per_layer_activations():
    X, y = _classification()
    clf = BackpropClassifier((6, 5, 4), activation=["tanh", "relu", "elu"],
                             max_iter=20, random_state=0)
    try:
        clf.fit(X, y)
    except (InvalidParameterError, TypeError, ValueError) as exc:
        pytest.skip(f"per-layer activations are not available yet: {exc}")
    _check_classifier(clf, _inputs(X, np.float64), np.float64)


class _Swish(Activation):
    def forward(self, Z):
        return Z * expit(Z)

    def derivative(self, Z, A):
        s = expit(Z)
        return s + Z * s * (1 - s)


class _ExportableSwish(_Swish):
    def onnx_forward(self, graph, Z):
        return graph.node("Mul", Z, graph.node("Sigmoid", Z))


def test_user_activation_needs_its_hook():
    X, y = _classification()
    clf = BackpropClassifier((5,), activation=_Swish(), max_iter=10,
                             random_state=0).fit(X, y)
    with pytest.raises(TypeError, match=r"onnx_forward\(graph, Z\)"):
        to_onnx(clf, X[:1].astype(np.float32))
    clf.set_params(activation=_ExportableSwish()).fit(X, y)
    _check_classifier(clf, X, np.float64)


class _ShiftedSquaredError(SquaredError):
    """Predicts raw + 1 (the user's own link)."""

    def link(self, raw):
        return raw + 1.0


class _ExportableShift(_ShiftedSquaredError):
    def onnx_link(self, graph, raw):
        return graph.node("Add", raw, graph.constant(1.0))


def test_user_loss_needs_its_hook():
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = BackpropRegressor((4,), loss=_ShiftedSquaredError(), max_iter=5,
                                random_state=0).fit(X, y)
    with pytest.raises(TypeError, match=r"onnx_link\(graph, raw\)"):
        to_onnx(reg, X[:1])
    reg.set_params(loss=_ExportableShift()).fit(X, y)
    (prediction,) = _run(reg, X, np.float64)
    np.testing.assert_allclose(prediction.ravel(), reg.predict(X), rtol=1e-10)
    assert issubclass(_ExportableShift, Loss)


@pytest.mark.parametrize("setting", [{"embedding": "piecewise_linear"},
                                     {"ensemble_size": 2}])
def test_unsupported_architectures_are_refused_clearly(setting):
    (name, value), = setting.items()
    if name not in BackpropRegressor().get_params():
        pytest.skip(f"{name} is not available")
    X, y = make_regression(n_samples=60, n_features=3, random_state=0)
    reg = BackpropRegressor((4,), max_iter=3, random_state=0, **setting).fit(X, y)
    with pytest.raises(NotImplementedError, match=f"{name}="):
        to_onnx(reg, X[:1])
