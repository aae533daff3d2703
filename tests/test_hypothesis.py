"""Property-based tests: any input gives a usable fit or a clear error.

For inputs drawn over shapes (one sample, one feature, more features than
samples, wide outputs), dtypes (float16/32/64, ints, bool, object numbers),
layouts (C/F order, strided views, CSR/CSC/COO), magnitudes (1e-300 .. 1e300,
constant columns, duplicated rows), labels (one class, many classes, strings,
mixed types) and sample weights (zeros, huge, tiny, integer), the only
acceptable outcomes of ``fit`` are:

* a fitted model whose predictions are finite (``predict_proba`` rows finite
  and summing to 1, ``predict_log_proba`` finite), or
* a ``ValueError``/``TypeError`` whose message names the problem. Which
  messages are acceptable depends on the input: an ordinary input must fit;
  a one-class target must be refused for having one class; an input scaled to
  1e100 and beyond may diverge, and then the error must name the epoch and
  batch and suggest a smaller ``learning_rate_init``.

Never another exception type, never a NaN/inf prediction, never a modified
input array. Values are drawn from a numpy generator seeded by hypothesis
(structure by hypothesis, bulk numbers by the seed), which keeps the examples
fast; ``event()`` labels each example's outcome for
``pytest --hypothesis-show-statistics``.
"""

import re
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scipy import sparse

from sklearn_bp import BackpropClassifier, BackpropRegressor

SETTINGS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# What an acceptable error message must say, by cause.
DIVERGED = r"epoch \d+, batch \d+.*learning_rate_init"
INPUT_OVERFLOW = r"infinity or a value too large|too large for a floating-point"
OVERFLOW = rf"{INPUT_OVERFLOW}|not finite"
ONE_CLASS = r"at least 2 classes.*only one class"
LABEL_TYPE = r"Unknown label type: y (mixes labels of several types|is an object array)"
ZERO_WEIGHTS = r"[Ss]ample.?weights? (must contain at least one non-zero|sum to zero)"
PENALTY = r"sample_weight\)? (is|was) .*scale sample_weight up"
NEGATIVE_TARGET = r"non-negative target"

EXPONENTS = [0, 0, 0, 0, 0, -300, -150, -20, 3, 100, 150, 300, 307]
# Largest exponent drawn per dtype: beyond it the cast would give mostly inf.
MAX_EXPONENT = {"float16": 4, "float32": 37}
# Inputs within this magnitude must fit without error, whatever the optimizer;
# beyond it plain SGD at the default learning rate may legitimately diverge
# (then with the documented error).
ORDINARY_X = 10.0


@dataclass
class Case:
    """One generated input and the outcomes it allows."""

    X: object
    y: object
    sample_weight: object = None
    params: dict = field(default_factory=dict)
    must_fail: str | None = None  # regex the error must match; None: fit must work
    may_fail: list = field(default_factory=list)  # regexes of tolerated errors
    multilabel: bool = False


# -- input builders -------------------------------------------------------------


def _values(rng, n, p, exponent, spread, max_exponent):
    """Dense float64 values ~10**exponent; with ``spread``, one scale per column."""
    base = rng.standard_normal((n, p))
    if spread:
        exps = np.minimum(rng.choice(EXPONENTS, size=p), max_exponent)
        return base * np.power(10.0, exps)
    return base * 10.0**exponent


def _as_dtype(rng, values, dtype):
    if dtype in ("float64", "float32", "float16"):
        with np.errstate(over="ignore"):
            return values.astype(dtype)
    if dtype == "int64":
        finite = np.clip(values, -(2.0**62), 2.0**62)
        return np.rint(finite).astype(np.int64)
    if dtype == "int8":
        return np.clip(np.rint(values), -128, 127).astype(np.int8)
    if dtype == "bool":
        return values > 0
    if dtype == "object":
        out = np.empty(values.shape, dtype=object)
        kinds = rng.randint(3, size=values.shape)
        for idx, v in np.ndenumerate(values):
            k = kinds[idx]
            if k == 0 or not np.isfinite(v):
                out[idx] = float(v)
            elif k == 1:
                out[idx] = int(np.clip(np.rint(v), -(2.0**62), 2.0**62))
            else:
                out[idx] = Fraction(float(v)).limit_denominator(1000)
        return out
    raise AssertionError(dtype)


def _layout(rng, X, layout):
    """Present dense ``X`` as the given layout (same values)."""
    if layout == "C":
        return np.ascontiguousarray(X)
    if layout == "F":
        return np.asfortranarray(X)
    if layout == "view":
        # A strided view into a larger array whose other entries are junk.
        n, p = X.shape
        big = np.empty((2 * n, 2 * p), dtype=X.dtype)
        big[...] = X[0, 0]
        view = big[::2, 1::2]
        view[...] = X
        return view
    if X.dtype == object or X.dtype == np.float16:
        return np.asarray(X)  # scipy.sparse holds neither
    X = np.where(rng.uniform(size=X.shape) < 0.4, 0, X).astype(X.dtype)
    return {"csr": sparse.csr_matrix, "csc": sparse.csc_matrix,
            "coo": sparse.coo_matrix, "csr_array": sparse.csr_array}[layout](X)


def _snapshot(a):
    """A deep copy of an input, to check it is not modified."""
    if sparse.issparse(a):
        return a.copy()
    if isinstance(a, list):
        return list(a)
    return None if a is None else np.array(a, copy=True)


def _assert_unchanged(before, after, what):
    if before is None:
        assert after is None
        return
    if sparse.issparse(before):
        assert after.format == before.format, what
        after_c = after.tocoo() if after.format == "coo" else after
        before_c = before.tocoo() if before.format == "coo" else before
        if before.format == "coo":
            for attr in ("row", "col", "data"):
                np.testing.assert_array_equal(getattr(after_c, attr),
                                              getattr(before_c, attr), err_msg=what)
        else:
            for attr in ("data", "indices", "indptr"):
                np.testing.assert_array_equal(getattr(after, attr),
                                              getattr(before, attr), err_msg=what)
        return
    if isinstance(before, list):
        assert after == before, what
        return
    assert after.dtype == before.dtype and after.shape == before.shape, what
    assert np.array_equal(np.asarray(after), before), f"{what} was modified"


def _features(draw, rng, n, kind):
    """Draw X for ``n`` samples; return (X, largest magnitude, dtype)."""
    wide = kind == "wide"
    p = draw(st.integers(n + 1, 40) if wide else st.sampled_from([1, 2, 3, 5]))
    dtype = draw(st.sampled_from(
        ["float64", "float64", "float32", "float16", "int64", "int8", "bool", "object"]
    ))
    max_exponent = MAX_EXPONENT.get(dtype, 400)
    exponent = min(draw(st.sampled_from(EXPONENTS)), max_exponent)
    spread = draw(st.booleans())
    values = _values(rng, n, p, exponent, spread, max_exponent)
    if draw(st.booleans()):  # constant columns
        cols = rng.choice(p, size=rng.randint(1, p + 1), replace=False)
        values[:, cols] = values[0, cols]
    if n > 1 and draw(st.booleans()):  # duplicated rows
        values[rng.randint(n, size=n // 2 + 1)] = values[0]
    X = _as_dtype(rng, values, dtype)
    X = _layout(rng, X, draw(st.sampled_from(["C", "F", "view", "csr", "csc", "coo",
                                              "csr_array"])))
    dense = X.toarray() if sparse.issparse(X) else np.asarray(X, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        max_abs = float(np.max(np.abs(dense.astype(np.float64))))
    return X, max_abs, dtype


def _weights(draw, rng, n, x_dtype):
    """Draw sample weights; return (sample_weight, must_fail, may_fail)."""
    kind = draw(st.sampled_from(
        [None, None, "ones", "zeros", "some_zeros", "huge", "tiny", "int", "mixed",
         "list"]
    ))
    f32 = x_dtype == "float32"
    if kind is None:
        return None, None, []
    if kind == "ones":
        return np.ones(n), None, []
    if kind == "zeros":
        return np.zeros(n), ZERO_WEIGHTS, []
    if kind == "some_zeros":
        sw = rng.uniform(0.5, 2, n)
        sw[rng.uniform(size=n) < 0.5] = 0
        sw[rng.randint(n)] = 1.0
        return sw, None, []
    if kind == "huge":
        # float32 X keeps float32 weights: 1e300 does not fit there.
        sw = np.full(n, 1e300) * rng.uniform(0.5, 1, n)
        return sw, None, [INPUT_OVERFLOW] if f32 else []
    if kind == "tiny":
        # Huge L2 coefficient alpha / sum(w): may diverge, saying why; in float32
        # the weights round to zero.
        # A step that makes the weights ~1e293 is finite, but the next forward
        # pass (prediction) overflows: a clear error then too.
        return np.full(n, 1e-300) * rng.uniform(0.5, 1, n), None, [
            PENALTY, OVERFLOW, *([ZERO_WEIGHTS] if f32 else [])
        ]
    if kind == "int":
        sw = rng.randint(0, 4, n)
        sw[0] = max(sw[0], 1)
        return sw, None, []
    if kind == "mixed":
        sw = rng.choice([1e300, 1e-300, 1.0, 0.0], size=n)
        sw[0] = 1.0
        return sw, None, [PENALTY, OVERFLOW]
    return [int(v) for v in rng.randint(1, 5, n)], None, []


def _model_params(draw):
    return dict(
        hidden_layer_sizes=draw(st.sampled_from([(), (3,), (4, 2)])),
        activation=draw(st.sampled_from(
            ["relu", "tanh", "logistic", "identity", "leaky_relu", "elu", "softplus"]
        )),
        optimizer=draw(st.sampled_from(["adam", "sgd", "rmsprop"])),
        batch_size=draw(st.sampled_from(["auto", 1, 4])),
        max_iter=draw(st.integers(1, 5)),
        random_state=0,
    )


@st.composite
def classifier_cases(draw):
    rng = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from(["one_sample", "small", "small", "wide"]))
    n = 1 if shape == "one_sample" else draw(st.integers(2, 12))
    X, max_abs, x_dtype = _features(draw, rng, n, shape)
    label_kind = draw(st.sampled_from(
        ["int", "int", "str", "neg_int", "float", "bool", "many", "multilabel",
         "mixed", "object_int", "one_class"]
    ))
    n_classes = {"many": n, "one_class": 1}.get(label_kind, draw(st.integers(2, 4)))
    codes = rng.randint(n_classes, size=n)
    if n > 1 and label_kind != "one_class":
        codes[:2] = [0, 1]
    if label_kind == "one_class":
        label_kind = draw(st.sampled_from(["int", "str", "float"]))
    case = Case(X=X, y=None, params=_model_params(draw))
    if label_kind == "multilabel":
        case.y = rng.randint(2, size=(n, draw(st.integers(1, 4))))
        case.multilabel = case.y.shape[1] > 1
        if not case.multilabel and len(np.unique(case.y)) < 2:
            case.must_fail = ONE_CLASS
    elif label_kind == "mixed":
        # Object array of ints and strings (a list would be coerced to strings
        # by numpy, as scikit-learn does: only an object array keeps the types).
        y = np.empty(n, dtype=object)
        y[:] = [int(c) if c % 2 else f"c{c}" for c in codes]
        case.y = y
        # A lone label has one type: then it is one class (or an object int).
        case.must_fail = LABEL_TYPE if n > 1 else f"{ONE_CLASS}|{LABEL_TYPE}"
    else:
        if label_kind == "bool":
            codes = codes % 2
        labels = {
            "int": codes, "many": codes, "neg_int": -3 * codes,
            "str": np.array([f"class_{c}" for c in codes]),
            "float": codes.astype(float) + 0.0,
            "bool": codes.astype(bool),
            "object_int": codes.astype(object),
        }[label_kind]
        as_list = draw(st.booleans())
        case.y = labels.tolist() if as_list else labels
        if label_kind == "object_int" and not as_list:
            case.must_fail = LABEL_TYPE  # numbers in an object array
        elif len(np.unique(codes)) < 2:
            case.must_fail = ONE_CLASS
    sw, sw_must, sw_may = _weights(draw, rng, n, x_dtype)
    case.sample_weight = sw
    case.must_fail = "|".join(filter(None, [case.must_fail, sw_must])) or None
    case.may_fail += sw_may
    if not max_abs <= ORDINARY_X:
        case.may_fail += [DIVERGED, OVERFLOW]
    return case


@st.composite
def regressor_cases(draw):
    rng = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from(["one_sample", "small", "small", "wide"]))
    n = 1 if shape == "one_sample" else draw(st.integers(2, 12))
    X, max_abs, x_dtype = _features(draw, rng, n, shape)
    n_outputs = draw(st.sampled_from([None, 1, 2, 30]))  # None: 1-D y; 30: wide
    y_exponent = draw(st.sampled_from([0, 0, -300, 3, 100, 300]))
    y_shape = n if n_outputs is None else (n, n_outputs)
    y = rng.standard_normal(y_shape) * 10.0**y_exponent
    loss = draw(st.sampled_from(
        ["squared_error", "absolute_error", "huber", "poisson"]
    ))
    case = Case(X=X, y=y, params=dict(_model_params(draw), loss=loss))
    if loss == "poisson":
        if draw(st.booleans()):
            y = np.abs(y)
        elif np.all(y >= 0):
            y[0] = -1.0
        case.y = y
        # exp(raw) may overflow at predict time: a clear ValueError then.
        case.may_fail.append(r"not finite")
    y_dtype = draw(st.sampled_from(["float64", "float32", "int64", "object", "list"]))
    if y_dtype == "list":
        case.y = case.y.tolist()
    elif y_dtype == "object":
        case.y = case.y.astype(object)
    else:
        with np.errstate(over="ignore", invalid="ignore"):
            case.y = case.y.astype(y_dtype) if y_dtype != "int64" else np.rint(
                np.clip(case.y, -(2.0**62), 2.0**62)).astype(np.int64)
    with np.errstate(over="ignore", invalid="ignore"):
        # the target is trained in X's float dtype (-1e-300 is -0.0 in float32)
        final_y = np.asarray(case.y, dtype=np.float64).astype(
            np.float32 if x_dtype == "float32" else np.float64
        )
    if loss == "poisson" and np.any(final_y < 0):
        case.must_fail = NEGATIVE_TARGET
    # An exp link turns moderately large inputs or counts into overflow; and
    # SGD's step grows with the squared error's gradient, so targets in the
    # thousands can make it diverge legitimately (Adam and RMSprop normalise
    # the step; the absolute and Huber gradients are bounded).
    if loss == "poisson":
        ordinary_y = 1e2
    elif loss == "squared_error" and case.params.get("optimizer") == "sgd":
        ordinary_y = 10.0
    else:
        ordinary_y = 1e6
    with np.errstate(over="ignore", invalid="ignore"):
        max_abs_y = float(np.max(np.abs(y)))
    if not (max_abs <= ORDINARY_X and max_abs_y <= ordinary_y):
        case.may_fail += [DIVERGED, OVERFLOW]
    if y_dtype == "float32" and y_exponent >= 100:
        case.may_fail.append(OVERFLOW)
    sw, sw_must, sw_may = _weights(draw, rng, n, x_dtype)
    case.sample_weight = sw
    case.must_fail = "|".join(filter(None, [case.must_fail, sw_must])) or None
    case.may_fail += sw_may
    return case


# -- the property ---------------------------------------------------------------


def _check_fitted(est, X, case):
    """Every prediction method gives finite output of the right shape."""
    n = X.shape[0]
    for W in est.coefs_ + est.intercepts_:
        assert np.all(np.isfinite(W))
    pred = est.predict(X)
    assert len(pred) == n
    if isinstance(est, BackpropRegressor):
        assert np.all(np.isfinite(pred))
        assert est.predict(X).dtype == est.coefs_[0].dtype
    else:
        proba = est.predict_proba(X)
        assert proba.shape == (n, len(est.classes_))
        assert np.all(np.isfinite(proba))
        assert np.all((proba >= 0) & (proba <= 1))
        if not case.multilabel:
            np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
            assert set(np.ravel(pred)) <= set(est.classes_.tolist())
        assert np.all(np.isfinite(est.predict_log_proba(X)))
    assert np.all(np.isfinite(est.transform(X)))
    assert len(est.loss_curve_) == est.n_iter_
    assert np.all(np.isfinite(est.loss_curve_))


def _check_far_inputs(est, X):
    """Inputs far outside the training range: finite outputs or a clear error."""
    dense = X.toarray() if sparse.issparse(X) else np.asarray(X, dtype=np.float64)
    methods = [est.predict, est.transform]
    if isinstance(est, BackpropClassifier):
        methods += [est.predict_proba, est.predict_log_proba, est.decision_function]
    for scale in (1e10, 1e300):
        with np.errstate(over="ignore"):
            X_far = dense.astype(np.float64) * scale
        if not np.all(np.isfinite(X_far)):
            continue
        for method in methods:
            try:
                out = method(X_far)
            except ValueError as exc:
                assert re.search(OVERFLOW, str(exc)), str(exc)
                event(f"far inputs: ValueError from {method.__name__}")
            else:
                if method.__name__ != "predict" or isinstance(est, BackpropRegressor):
                    assert np.all(np.isfinite(out)), method.__name__


def _run_case(est, case):
    inputs = {"X": case.X, "y": case.y, "sample_weight": case.sample_weight}
    copies = {k: _snapshot(v) for k, v in inputs.items()}
    if case.must_fail:
        # Validation of X and sample_weight comes before that of the target:
        # an input that must be refused may be refused for those first.
        allowed = [case.must_fail, INPUT_OVERFLOW,
                   *[rx for rx in case.may_fail if rx == ZERO_WEIGHTS]]
    else:
        allowed = case.may_fail
    error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            est.fit(case.X, case.y, sample_weight=case.sample_weight)
            _check_fitted(est, case.X, case)
            _check_far_inputs(est, case.X)
        except (ValueError, TypeError) as exc:
            error = exc
    for k, v in inputs.items():
        _assert_unchanged(copies[k], v, k)
    if error is None:
        assert case.must_fail is None, f"fit accepted a bad input ({case.must_fail})"
        event("outcome: fitted, finite predictions")
        return
    message = str(error)
    if not any(re.search(rx, message, flags=re.S) for rx in allowed):
        raise AssertionError(
            f"unexpected {type(error).__name__} for this input (allowed: {allowed}): "
            f"{message}"
        ) from error
    event(f"outcome: {type(error).__name__} ({_cause(message)})")


def _cause(message):
    causes = [("diverged", DIVERGED), ("overflow", OVERFLOW),
              ("one class", ONE_CLASS), ("label type", LABEL_TYPE),
              ("zero weights", ZERO_WEIGHTS), ("negative target", NEGATIVE_TARGET)]
    for name, rx in causes:
        if re.search(rx, message, flags=re.S):
            return name
    return "other"


@settings(max_examples=500, **SETTINGS)
@given(case=classifier_cases())
def test_classifier_fit_gives_finite_model_or_clear_error(case):
    _run_case(BackpropClassifier(**case.params), case)


@settings(max_examples=500, **SETTINGS)
@given(case=regressor_cases())
def test_regressor_fit_gives_finite_model_or_clear_error(case):
    _run_case(BackpropRegressor(**case.params), case)


@settings(max_examples=100, **SETTINGS)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_classes=st.integers(2, 60),
    as_strings=st.booleans(),
)
def test_many_classes_probabilities_cover_every_class(seed, n_classes, as_strings):
    rng = np.random.RandomState(seed)
    n = n_classes + rng.randint(0, 5)
    extra = rng.randint(n_classes, size=n - n_classes)
    codes = np.concatenate([np.arange(n_classes), extra])
    y = np.array([f"label {c}" for c in codes]) if as_strings else codes * 7 - 100
    X = rng.standard_normal((n, 3))
    clf = BackpropClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert len(clf.classes_) == n_classes
    proba = clf.predict_proba(X)
    assert proba.shape == (n, n_classes) and np.all(np.isfinite(proba))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    assert np.all(np.isin(clf.predict(X), clf.classes_))


@settings(max_examples=100, **SETTINGS)
@given(
    labels=st.lists(
        st.one_of(st.integers(-5, 5), st.text(min_size=1, max_size=3),
                  st.floats(-5, 5, allow_nan=False), st.booleans(), st.none()),
        min_size=2, max_size=8,
    )
)
def test_object_labels_of_any_types_fit_or_clear_error(labels):
    """An object array of arbitrary Python values: a fit or a ValueError/TypeError."""
    y = np.empty(len(labels), dtype=object)
    y[:] = labels
    X = np.arange(2.0 * len(labels)).reshape(-1, 2)
    y_copy = y.copy()
    clf = BackpropClassifier(hidden_layer_sizes=(2,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            clf.fit(X, y)
        except (ValueError, TypeError) as exc:
            assert re.search(
                rf"{LABEL_TYPE}|{ONE_CLASS}|Unknown label type|[Ll]abel|class|NaN",
                str(exc)), str(exc)
            event(f"outcome: {type(exc).__name__} ({_cause(str(exc))})")
        else:
            event("outcome: fitted")
            assert np.all(np.isfinite(clf.predict_proba(X)))
    assert all(a is b or a == b for a, b in zip(y, y_copy, strict=True))


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_sparse_input_kept_intact_with_unsorted_and_duplicate_entries(Estimator, fmt):
    """Duplicates and unsorted indices are summed in a copy, never in place."""
    rng = np.random.RandomState(0)
    data = rng.standard_normal(12)
    if fmt == "csr":  # two entries per row, duplicated or unsorted
        indices = np.array([2, 1, 1, 1, 2, 0, 2, 2, 1, 0, 0, 0])
        X = sparse.csr_matrix((data, indices, np.arange(0, 13, 2)), shape=(6, 3))
    elif fmt == "csc":  # four entries per column
        indices = np.array([5, 1, 1, 0, 3, 3, 2, 4, 0, 5, 5, 2])
        X = sparse.csc_matrix((data, indices, np.arange(0, 13, 4)), shape=(6, 3))
    else:
        row = np.array([5, 5, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0])
        col = np.array([2, 0, 2, 1, 1, 0, 2, 0, 0, 1, 1, 2])
        X = sparse.coo_matrix((data, (row, col)), shape=(6, 3))
    assert not X.has_canonical_format
    before = _snapshot(X)
    y = np.array([0, 1, 0, 1, 0, 1]) if Estimator is BackpropClassifier else data[:6]
    est = Estimator(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    _assert_unchanged(before, X, "X")
    dense = Estimator(hidden_layer_sizes=(3,), max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dense.fit(X.toarray(), y)
    for a, b in zip(est.coefs_, dense.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
