"""scikit-learn's own MLP tests, ported to BackpropClassifier / BackpropRegressor.

Source: ``sklearn/neural_network/tests/test_mlp.py`` of scikit-learn 1.9.1, every
test in its order, with the same data, settings and thresholds.
``MLPClassifier`` -> :class:`BackpropClassifier`, ``MLPRegressor`` ->
:class:`BackpropRegressor`, ``solver=`` -> ``optimizer=`` (``"sgd"`` with
``momentum``/``nesterovs_momentum`` -> ``SGD(momentum=, nesterov=)``, ``"adam"`` ->
``"adam"``, ``"lbfgs"`` -> ``"lbfgs"``). MLP's private state is replaced by public
counterparts:

- the gradient (``_loss_grad_lbfgs``) by an :class:`Optimizer` that records the
  gradient it is given (``GradientProbe``), the loss by ``sklearn.metrics``;
- the optimizer's learning rate (``_optimizer.learning_rate``) by an SGD/Adam
  subclass that records the rate of each step (``RecordingSGD``), read on the step
  a ``partial_fit`` on a copy of the estimator takes next;
- ``_no_improvement_count`` by MLP's counting rule replayed on ``loss_curve_``;
- the hand-built network of ``test_fit`` by a first ``partial_fit`` whose live
  ``coefs_``/``intercepts_`` are then overwritten in place.

Where we deliberately differ from MLP, the test asserts our behaviour under a
comment starting with "Deliberate difference".
"""

import copy
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.datasets import (
    load_digits,
    load_iris,
    make_classification,
    make_multilabel_classification,
    make_regression,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import PoissonRegressor
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.preprocessing import LabelBinarizer, MinMaxScaler, scale
from sklearn.utils._testing import (
    assert_allclose,
    assert_almost_equal,
    assert_array_equal,
    ignore_warnings,
)
from sklearn.utils.fixes import CSR_CONTAINERS

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.optimizers import SGD, Adam, Optimizer

ACTIVATION_TYPES = ["identity", "logistic", "tanh", "relu"]

X_digits, y_digits = load_digits(n_class=3, return_X_y=True)

X_digits_multi = MinMaxScaler().fit_transform(X_digits[:200])
y_digits_multi = y_digits[:200]

X_digits, y_digits = load_digits(n_class=2, return_X_y=True)

X_digits_binary = MinMaxScaler().fit_transform(X_digits[:200])
y_digits_binary = y_digits[:200]

classification_datasets = [
    (X_digits_multi, y_digits_multi),
    (X_digits_binary, y_digits_binary),
]

X_reg, y_reg = make_regression(
    n_samples=200, n_features=10, bias=20.0, noise=100.0, random_state=7
)
y_reg = scale(y_reg)
regression_datasets = [(X_reg, y_reg)]

iris = load_iris()

X_iris = iris.data
y_iris = iris.target


# -- public stand-ins for MLP's private state -----------------------------------


def _sgd(momentum=0.9, nesterovs_momentum=True):
    """MLP's ``solver="sgd"`` with its momentum settings, as our SGD spec.

    MLP's Nesterov update with ``momentum=0`` is plain SGD; ours (as
    ``torch.optim.SGD``) requires ``nesterov=False`` for that.
    """
    return SGD(momentum=momentum, nesterov=nesterovs_momentum and momentum > 0)


class _RecordsLearningRates:
    """Mixin: record the learning rate of every step, then step as the base.

    The record lives on the class: the estimator works on a private copy of the
    spec and never writes to the spec itself.
    """

    lrs = []

    def step(self, params, grads, state, lr):
        type(self).lrs.append(lr)
        super().step(params, grads, state, lr)


class RecordingSGD(_RecordsLearningRates, SGD):
    """``SGD`` (same defaults as MLP's ``solver="sgd"``) recording its rates."""

    lrs = []


class RecordingAdam(_RecordsLearningRates, Adam):
    """``Adam`` recording its learning rates."""

    lrs = []


class GradientProbe(Optimizer):
    """Records the (flattened) gradient it is given and leaves the parameters.

    The order is that of MLP's packed vector: all weights, then all biases.
    """

    last = None

    def init_state(self, params):
        return {}

    def step(self, params, grads, state, lr):
        GradientProbe.last = np.concatenate([g.ravel() for g in grads])


def _next_learning_rate(est, X, y):
    """The learning rate of the step ``est`` would take next.

    Stand-in for MLP's ``_optimizer.learning_rate``: one ``partial_fit`` on a
    copy (which keeps the schedule's state), recorded by the copy's
    ``RecordingSGD``/``RecordingAdam``.
    """
    probe = copy.deepcopy(est)
    recorder = type(probe.optimizer)
    recorder.lrs.clear()
    probe.partial_fit(X, y)
    assert len(recorder.lrs) >= 1
    return recorder.lrs[0]


def _pack(est):
    return np.hstack([p.ravel() for p in est.coefs_ + est.intercepts_])


def _unpack_into(est, theta):
    """Write ``theta`` into the live parameters of ``est``, in place."""
    start = 0
    for p in est.coefs_ + est.intercepts_:
        p[...] = theta[start : start + p.size].reshape(p.shape)
        start += p.size
    assert start == theta.size


def _objective(est, X, y):
    """``(loss_at, gradient_at)`` of ``est``'s training objective on ``(X, y)``.

    Public stand-in for MLP's private ``_loss_grad_lbfgs``, at any packed
    parameter vector ``theta``:

    - ``gradient_at(theta)`` is the gradient our training computes: a copy of
      ``est`` whose optimizer is ``GradientProbe`` runs one ``partial_fit`` on
      the whole data as one batch;
    - ``loss_at(theta)`` is computed independently from the predictions, with
      ``sklearn.metrics`` (log-loss, or half the mean squared error over samples
      and outputs), plus the L2 term ``alpha / (2 n) * sum ||W||^2``. It is also
      checked against the loss our training reports for that batch (``loss_``).
    """
    n_samples = X.shape[0]
    probe = clone(est).set_params(
        optimizer=GradientProbe(),
        batch_size=n_samples,
        shuffle=False,
        learning_rate="constant",
        early_stopping=False,
        warm_start=False,
        verbose=False,
    )
    if is_classifier(probe):
        probe.partial_fit(X, y, classes=np.unique(y))
    else:
        probe.partial_fit(X, y)

    def loss_at(theta):
        _unpack_into(probe, theta)
        if is_classifier(probe):
            data_loss = log_loss(y, probe.predict_proba(X), labels=probe.classes_)
        else:
            data_loss = mean_squared_error(y, probe.predict(X)) / 2
        l2 = sum(np.sum(W**2) for W in probe.coefs_)
        return data_loss + probe.alpha / (2 * n_samples) * l2

    def gradient_at(theta):
        _unpack_into(probe, theta)
        GradientProbe.last = None
        probe.partial_fit(X, y)
        assert_allclose(probe.loss_, loss_at(theta), rtol=1e-10)
        return GradientProbe.last.copy()

    return loss_at, gradient_at


def _no_improvement_counts(loss_curve, tol):
    """MLP's ``_no_improvement_count`` after each epoch, replayed on a loss curve.

    MLP's rule (``_update_no_improvement_count``, as our monitor's): an epoch
    whose loss is not below ``best_loss - tol`` adds one, any other resets the
    count; the best loss is the lowest seen so far.
    """
    best, count, counts = np.inf, 0, []
    for loss in loss_curve:
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        counts.append(count)
    return counts


# -- the ported tests -----------------------------------------------------------


def test_alpha():
    # Test that larger alpha yields weights closer to zero
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]

    alpha_vectors = []
    alpha_values = np.arange(2)

    def absolute_sum(x):
        return np.sum(np.abs(x))

    for alpha in alpha_values:
        mlp = BackpropClassifier(hidden_layer_sizes=10, alpha=alpha, random_state=1)
        with ignore_warnings(category=ConvergenceWarning):
            mlp.fit(X, y)
        alpha_vectors.append(
            np.array([absolute_sum(mlp.coefs_[0]), absolute_sum(mlp.coefs_[1])])
        )

    for i in range(len(alpha_values) - 1):
        assert (alpha_vectors[i] > alpha_vectors[i + 1]).all()


def test_fit():
    # Test that the algorithm solution is equal to a worked out example.
    X = np.array([[0.6, 0.8, 0.7]])
    y = np.array([0])
    mlp = BackpropClassifier(
        optimizer=_sgd(momentum=0),
        learning_rate_init=0.1,
        alpha=0.1,
        activation="logistic",
        random_state=1,
        max_iter=1,
        hidden_layer_sizes=2,
    )
    # MLP's test builds the network by setting private attributes. Public route:
    # a first partial_fit builds it, then the worked example's weights are written
    # into the live coefs_ / intercepts_ (editing them in place is supported:
    # partial_fit continues from them). Plain SGD keeps no state from that call.
    mlp.partial_fit(X, y, classes=[0, 1])
    assert mlp.n_outputs_ == 1 and mlp.n_layers_ == 3
    assert mlp.out_activation_ == "logistic"
    mlp.coefs_[0][...] = np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0]])
    mlp.coefs_[1][...] = np.array([[0.1], [0.2]])
    mlp.intercepts_[0][...] = np.array([0.1, 0.1])
    mlp.intercepts_[1][...] = np.array([1.0])

    mlp.partial_fit(X, y)
    # Manually worked out example
    # h1 = g(X1 * W_i1 + b11) = g(0.6 * 0.1 + 0.8 * 0.3 + 0.7 * 0.5 + 0.1)
    #       =  0.679178699175393
    # h2 = g(X2 * W_i2 + b12) = g(0.6 * 0.2 + 0.8 * 0.1 + 0.7 * 0 + 0.1)
    #         = 0.574442516811659
    # o1 = g(h * W2 + b21) = g(0.679 * 0.1 + 0.574 * 0.2 + 1)
    #       = 0.7654329236196236
    # d21 = -(0 - 0.765) = 0.765
    # d11 = (1 - 0.679) * 0.679 * 0.765 * 0.1 = 0.01667
    # d12 = (1 - 0.574) * 0.574 * 0.765 * 0.2 = 0.0374
    # W1grad11 = X1 * d11 + alpha * W11 = 0.6 * 0.01667 + 0.1 * 0.1 = 0.0200
    # W1grad11 = X1 * d12 + alpha * W12 = 0.6 * 0.0374 + 0.1 * 0.2 = 0.04244
    # W1grad21 = X2 * d11 + alpha * W13 = 0.8 * 0.01667 + 0.1 * 0.3 = 0.043336
    # W1grad22 = X2 * d12 + alpha * W14 = 0.8 * 0.0374 + 0.1 * 0.1 = 0.03992
    # W1grad31 = X3 * d11 + alpha * W15 = 0.6 * 0.01667 + 0.1 * 0.5 = 0.060002
    # W1grad32 = X3 * d12 + alpha * W16 = 0.6 * 0.0374 + 0.1 * 0 = 0.02244
    # W2grad1 = h1 * d21 + alpha * W21 = 0.679 * 0.765 + 0.1 * 0.1 = 0.5294
    # W2grad2 = h2 * d21 + alpha * W22 = 0.574 * 0.765 + 0.1 * 0.2 = 0.45911
    # b1grad1 = d11 = 0.01667
    # b1grad2 = d12 = 0.0374
    # b2grad = d21 = 0.765
    # W1 = W1 - eta * [W1grad11, .., W1grad32] = [[0.1, 0.2], [0.3, 0.1],
    #          [0.5, 0]] - 0.1 * [[0.0200, 0.04244], [0.043336, 0.03992],
    #          [0.060002, 0.02244]] = [[0.098, 0.195756], [0.2956664,
    #          0.096008], [0.4939998, -0.002244]]
    # W2 = W2 - eta * [W2grad1, W2grad2] = [[0.1], [0.2]] - 0.1 *
    #        [[0.5294], [0.45911]] = [[0.04706], [0.154089]]
    # b1 = b1 - eta * [b1grad1, b1grad2] = 0.1 - 0.1 * [0.01667, 0.0374]
    #         = [0.098333, 0.09626]
    # b2 = b2 - eta * b2grad = 1.0 - 0.1 * 0.765 = 0.9235
    assert_almost_equal(
        mlp.coefs_[0],
        np.array([[0.098, 0.195756], [0.2956664, 0.096008], [0.4939998, -0.002244]]),
        decimal=3,
    )
    assert_almost_equal(mlp.coefs_[1], np.array([[0.04706], [0.154089]]), decimal=3)
    assert_almost_equal(mlp.intercepts_[0], np.array([0.098333, 0.09626]), decimal=3)
    assert_almost_equal(mlp.intercepts_[1], np.array(0.9235), decimal=3)
    # Testing output
    #  h1 = g(X1 * W_i1 + b11) = g(0.6 * 0.098 + 0.8 * 0.2956664 +
    #               0.7 * 0.4939998 + 0.098333) = 0.677
    #  h2 = g(X2 * W_i2 + b12) = g(0.6 * 0.195756 + 0.8 * 0.096008 +
    #            0.7 * -0.002244 + 0.09626) = 0.572
    #  o1 = h * W2 + b21 = 0.677 * 0.04706 +
    #             0.572 * 0.154089 + 0.9235 = 1.043
    #  prob = sigmoid(o1) = 0.739
    assert_almost_equal(mlp.predict_proba(X)[0, 1], 0.739, decimal=3)


def test_gradient():
    # Test gradient.

    # This makes sure that the activation functions and their derivatives
    # are correct. The numerical and analytical computation of the gradient
    # should be close.
    for n_labels in [2, 3]:
        n_samples = 5
        n_features = 10
        random_state = np.random.RandomState(seed=42)
        X = random_state.rand(n_samples, n_features)
        y = 1 + np.mod(np.arange(n_samples) + 1, n_labels)
        Y = LabelBinarizer().fit_transform(y)

        for activation in ACTIVATION_TYPES:
            mlp = BackpropClassifier(
                activation=activation,
                hidden_layer_sizes=10,
                optimizer="lbfgs",
                alpha=1e-5,
                learning_rate_init=0.2,
                max_iter=1,
                random_state=1,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                mlp.fit(X, y)

            theta = _pack(mlp)
            layer_units = [X.shape[1]] + [mlp.hidden_layer_sizes] + [mlp.n_outputs_]
            assert mlp.n_outputs_ == Y.shape[1]
            assert theta.size == sum(
                (a + 1) * b
                for a, b in zip(layer_units[:-1], layer_units[1:], strict=True)
            )

            # analytically compute the gradients (the one our training uses;
            # MLP's test calls its private _loss_grad_lbfgs)
            loss_at, gradient_at = _objective(mlp, X, y)
            grad = gradient_at(theta)
            numgrad = np.zeros(np.size(theta))
            n = np.size(theta, 0)
            E = np.eye(n)
            epsilon = 1e-5
            # numerically compute the gradients
            for i in range(n):
                dtheta = E[:, i] * epsilon
                numgrad[i] = (loss_at(theta + dtheta) - loss_at(theta - dtheta)) / (
                    epsilon * 2.0
                )
            assert_almost_equal(numgrad, grad)


@pytest.mark.parametrize("X,y", classification_datasets)
def test_lbfgs_classification(X, y):
    # Test lbfgs on classification.
    # It should achieve a score higher than 0.95 for the binary and multi-class
    # versions of the digits dataset.
    X_train = X[:150]
    y_train = y[:150]
    X_test = X[150:]
    expected_shape_dtype = (X_test.shape[0], y_train.dtype.kind)

    for activation in ACTIVATION_TYPES:
        mlp = BackpropClassifier(
            optimizer="lbfgs",
            hidden_layer_sizes=50,
            max_iter=150,
            shuffle=True,
            random_state=1,
            activation=activation,
        )
        mlp.fit(X_train, y_train)
        y_predict = mlp.predict(X_test)
        assert mlp.score(X_train, y_train) > 0.95
        assert (y_predict.shape[0], y_predict.dtype.kind) == expected_shape_dtype
        # Deliberate difference: MLP keeps no loss_curve_ with L-BFGS; ours has
        # one entry per iteration, as for the stochastic optimizers.
        assert len(mlp.loss_curve_) == mlp.n_iter_
        assert np.isfinite(mlp.loss_curve_).all()
        # Same initial weights and the same objective and scipy call as MLP's
        # solver="lbfgs": the same iterations, up to rounding.
        ref = MLPClassifier(
            solver="lbfgs",
            hidden_layer_sizes=50,
            max_iter=150,
            shuffle=True,
            random_state=1,
            activation=activation,
        ).fit(X_train, y_train)
        assert mlp.n_iter_ == ref.n_iter_
        assert_allclose(mlp.loss_, ref.loss_, rtol=1e-9)
        assert_allclose(mlp.predict_proba(X_test), ref.predict_proba(X_test), atol=1e-9)


@pytest.mark.parametrize("X,y", regression_datasets)
def test_lbfgs_regression(X, y):
    # Test lbfgs on the regression dataset.
    for activation in ACTIVATION_TYPES:
        mlp = BackpropRegressor(
            optimizer="lbfgs",
            hidden_layer_sizes=50,
            max_iter=200,
            tol=1e-3,
            shuffle=True,
            random_state=1,
            activation=activation,
        )
        mlp.fit(X, y)
        if activation == "identity":
            assert mlp.score(X, y) > 0.80
        else:
            # Non linear models perform much better than linear bottleneck:
            assert mlp.score(X, y) > 0.98


@pytest.mark.parametrize("X,y", classification_datasets)
def test_lbfgs_classification_maxfun(X, y):
    # Test lbfgs parameter max_fun.
    # It should independently limit the number of iterations for lbfgs.
    max_fun = 10
    # classification tests
    for activation in ACTIVATION_TYPES:
        mlp = BackpropClassifier(
            optimizer="lbfgs",
            hidden_layer_sizes=50,
            max_iter=150,
            max_fun=max_fun,
            shuffle=True,
            random_state=1,
            activation=activation,
        )
        with pytest.warns(ConvergenceWarning):
            mlp.fit(X, y)
            assert max_fun >= mlp.n_iter_


@pytest.mark.parametrize("X,y", regression_datasets)
def test_lbfgs_regression_maxfun(X, y):
    # Test lbfgs parameter max_fun.
    # It should independently limit the number of iterations for lbfgs.
    max_fun = 10
    # regression tests
    for activation in ACTIVATION_TYPES:
        mlp = BackpropRegressor(
            optimizer="lbfgs",
            hidden_layer_sizes=50,
            tol=0.0,
            max_iter=150,
            max_fun=max_fun,
            shuffle=True,
            random_state=1,
            activation=activation,
        )
        with pytest.warns(ConvergenceWarning):
            mlp.fit(X, y)
            assert max_fun >= mlp.n_iter_


def test_learning_rate_warmstart():
    # Tests that warm_start reuse past solutions.
    X = [[3, 2], [1, 6], [5, 6], [-2, -4]]
    y = [1, 1, 1, 0]
    for learning_rate in ["invscaling", "constant"]:
        mlp = BackpropClassifier(
            optimizer=RecordingSGD(),  # SGD with MLP's default momentum settings
            hidden_layer_sizes=4,
            learning_rate=learning_rate,
            max_iter=1,
            power_t=0.25,
            warm_start=True,
        )
        with ignore_warnings(category=ConvergenceWarning):
            mlp.fit(X, y)
            prev_eta = _next_learning_rate(mlp, X, y)
            mlp.fit(X, y)
            post_eta = _next_learning_rate(mlp, X, y)

        if learning_rate == "constant":
            assert prev_eta == post_eta
        elif learning_rate == "invscaling":
            assert mlp.learning_rate_init / pow(8 + 1, mlp.power_t) == post_eta

    # Deliberate difference: the learning_rate schedule applies to every
    # optimizer (MLP's Adam ignores learning_rate and always uses
    # learning_rate_init).
    mlp = BackpropClassifier(
        optimizer=RecordingAdam(),
        hidden_layer_sizes=4,
        learning_rate="invscaling",
        max_iter=1,
        power_t=0.25,
        warm_start=True,
    )
    with ignore_warnings(category=ConvergenceWarning):
        mlp.fit(X, y)
        mlp.fit(X, y)
    assert mlp.learning_rate_init / pow(8 + 1, mlp.power_t) == _next_learning_rate(
        mlp, X, y
    )


def test_multilabel_classification():
    # Test that multi-label classification works as expected.
    # test fit method
    X, y = make_multilabel_classification(
        n_samples=50, random_state=0, return_indicator=True
    )
    mlp = BackpropClassifier(
        optimizer="lbfgs",
        hidden_layer_sizes=50,
        alpha=1e-5,
        max_iter=150,
        random_state=0,
        activation="logistic",
        learning_rate_init=0.2,
    )
    mlp.fit(X, y)
    assert mlp.score(X, y) > 0.97

    # test partial fit method
    mlp = BackpropClassifier(
        optimizer=_sgd(),
        hidden_layer_sizes=50,
        max_iter=150,
        random_state=0,
        activation="logistic",
        alpha=1e-5,
        learning_rate_init=0.2,
    )
    for _ in range(100):
        mlp.partial_fit(X, y, classes=[0, 1, 2, 3, 4])
    assert mlp.score(X, y) > 0.9

    # Make sure early stopping still work now that splitting is stratified by
    # default (it is disabled for multilabel classification)
    mlp = BackpropClassifier(early_stopping=True)
    mlp.fit(X, y).predict(X)


def test_multioutput_regression():
    # Test that multi-output regression works as expected
    X, y = make_regression(n_samples=200, n_targets=5, random_state=11)
    mlp = BackpropRegressor(
        optimizer="lbfgs",
        hidden_layer_sizes=50,
        max_iter=200,
        tol=1e-2,
        random_state=1,
    )
    mlp.fit(X, y)
    assert mlp.score(X, y) > 0.9

    # Deliberate difference: MLP's multi-output squared-error gradient is
    # n_outputs times the gradient of the loss it reports (scikit-learn #8349);
    # ours is the true gradient. Checked against central finite differences of
    # the independently computed loss, along random directions through the
    # fitted parameters (a wrong factor of 5 shows in every direction).
    loss_at, gradient_at = _objective(mlp, X, y)
    theta = _pack(mlp)
    grad = gradient_at(theta)
    rng = np.random.RandomState(0)
    epsilon = 1e-4
    for _ in range(10):
        direction = rng.standard_normal(theta.size)
        direction /= np.linalg.norm(direction)
        numeric = (
            loss_at(theta + epsilon * direction) - loss_at(theta - epsilon * direction)
        ) / (2 * epsilon)
        assert_allclose(
            grad @ direction, numeric, rtol=1e-5, atol=1e-6 * np.linalg.norm(grad)
        )


def test_partial_fit_classes_error():
    # Tests that passing different classes to partial_fit raises an error
    X = [[3, 2]]
    y = [0]
    clf = BackpropClassifier(optimizer=_sgd())
    clf.partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError):
        clf.partial_fit(X, y, classes=[1, 2])


def test_partial_fit_classification():
    # Test partial_fit on classification.
    # `partial_fit` should yield the same results as 'fit' for binary and
    # multi-class classification.
    for X, y in classification_datasets:
        mlp = BackpropClassifier(
            optimizer=_sgd(),
            max_iter=100,
            random_state=1,
            tol=0,
            alpha=1e-5,
            learning_rate_init=0.2,
        )

        with ignore_warnings(category=ConvergenceWarning):
            mlp.fit(X, y)
        pred1 = mlp.predict(X)
        mlp = BackpropClassifier(
            optimizer=_sgd(), random_state=1, alpha=1e-5, learning_rate_init=0.2
        )
        for _ in range(100):
            mlp.partial_fit(X, y, classes=np.unique(y))
        pred2 = mlp.predict(X)
        assert_array_equal(pred1, pred2)
        assert mlp.score(X, y) > 0.95
        # k partial_fit calls are k epochs (MLP's n_iter_ / t_ / loss_curve_)
        assert mlp.n_iter_ == 100
        assert mlp.t_ == 100 * X.shape[0]
        assert len(mlp.loss_curve_) == 100


def test_partial_fit_unseen_classes():
    # Non regression test for bug 6994
    # Tests for labeling errors in partial fit

    clf = BackpropClassifier(random_state=0)
    clf.partial_fit([[1], [2], [3]], ["a", "b", "c"], classes=["a", "b", "c", "d"])
    clf.partial_fit([[4]], ["d"])
    assert clf.score([[1], [2], [3], [4]], ["a", "b", "c", "d"]) > 0


def test_partial_fit_regression():
    # Test partial_fit on regression.
    # `partial_fit` should yield the same results as 'fit' for regression.
    X = X_reg
    y = y_reg

    for momentum in [0, 0.9]:
        mlp = BackpropRegressor(
            optimizer=_sgd(momentum=momentum),
            max_iter=100,
            activation="relu",
            random_state=1,
            learning_rate_init=0.01,
            batch_size=X.shape[0],
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(X, y)
        pred1 = mlp.predict(X)
        mlp = BackpropRegressor(
            optimizer=_sgd(momentum=momentum),
            activation="relu",
            learning_rate_init=0.01,
            random_state=1,
            batch_size=X.shape[0],
        )
        for _ in range(100):
            mlp.partial_fit(X, y)

        pred2 = mlp.predict(X)
        assert_allclose(pred1, pred2)
        score = mlp.score(X, y)
        assert score > 0.65

        # Our SGD follows torch.optim's formula (the learning rate multiplies
        # the momentum buffer at each step; MLP folds it into its velocity).
        # Under a constant learning rate the two are the same update, and the
        # initial weights are MLP's: the trajectory is MLP's, up to rounding.
        ref = MLPRegressor(
            solver="sgd",
            max_iter=100,
            activation="relu",
            random_state=1,
            learning_rate_init=0.01,
            batch_size=X.shape[0],
            momentum=momentum,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref.fit(X, y)
        assert_allclose(pred2, ref.predict(X), rtol=1e-6)


def test_partial_fit_errors():
    # Test partial_fit error handling.
    X = [[3, 2], [1, 6]]
    y = [1, 0]

    # no classes passed
    with pytest.raises(ValueError):
        BackpropClassifier(optimizer=_sgd()).partial_fit(X, y, classes=[2])

    # a label that is not in `classes` also raises on a later call
    clf = BackpropClassifier(optimizer=_sgd()).partial_fit(X, y, classes=[0, 1])
    with pytest.raises(ValueError):
        clf.partial_fit(X, [1, 2])

    # lbfgs doesn't support partial_fit
    assert not hasattr(BackpropClassifier(optimizer="lbfgs"), "partial_fit")


def test_nonfinite_params():
    # Check that BackpropRegressor throws ValueError when dealing with non-finite
    # parameter values
    rng = np.random.RandomState(0)
    n_samples = 10
    fmax = np.finfo(np.float64).max
    X = fmax * rng.uniform(size=(n_samples, 2))
    y = rng.standard_normal(size=n_samples)

    clf = BackpropRegressor()
    # Deliberate difference in the message: ours names where training diverged
    # and suggests the remedies (MLP: "Solver produced non-finite parameter
    # weights. The input data may contain large values and need to be
    # preprocessed."); the step that would go non-finite is never applied.
    with pytest.raises(ValueError, match="non-finite") as excinfo:
        with warnings.catch_warnings():
            # RuntimeWarning: overflow encountered in square
            warnings.simplefilter("ignore")
            clf.fit(X, y)
    message = str(excinfo.value)
    assert "epoch" in message and "learning_rate_init" in message
    assert "scale" in message
    assert all(np.isfinite(p).all() for p in clf.coefs_ + clf.intercepts_)


def test_predict_proba_binary():
    # Test that predict_proba works as expected for binary class.
    X = X_digits_binary[:50]
    y = y_digits_binary[:50]

    clf = BackpropClassifier(
        hidden_layer_sizes=5, activation="logistic", random_state=1
    )
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)

    (n_samples, n_classes) = y.shape[0], 2

    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert y_proba.shape == (n_samples, n_classes)
    assert_array_equal(proba_max, proba_log_max)
    assert_allclose(y_log_proba, np.log(y_proba))

    assert roc_auc_score(y, y_proba[:, 1]) == 1.0


def test_predict_proba_multiclass():
    # Test that predict_proba works as expected for multi class.
    X = X_digits_multi[:10]
    y = y_digits_multi[:10]

    clf = BackpropClassifier(hidden_layer_sizes=5)
    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    y_proba = clf.predict_proba(X)
    y_log_proba = clf.predict_log_proba(X)

    (n_samples, n_classes) = y.shape[0], np.unique(y).size

    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert y_proba.shape == (n_samples, n_classes)
    assert_array_equal(proba_max, proba_log_max)
    assert_allclose(y_log_proba, np.log(y_proba))


def test_predict_proba_multilabel():
    # Test that predict_proba works as expected for multilabel.
    # Multilabel should not use softmax which makes probabilities sum to 1
    X, Y = make_multilabel_classification(
        n_samples=50, random_state=0, return_indicator=True
    )
    n_samples, n_classes = Y.shape

    clf = BackpropClassifier(optimizer="lbfgs", hidden_layer_sizes=30, random_state=0)
    clf.fit(X, Y)
    y_proba = clf.predict_proba(X)

    assert y_proba.shape == (n_samples, n_classes)
    assert_array_equal(y_proba > 0.5, Y)

    y_log_proba = clf.predict_log_proba(X)
    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert (y_proba.sum(1) - 1).dot(y_proba.sum(1) - 1) > 1e-10
    # Deliberate difference: MLP's predict_log_proba is np.log(predict_proba);
    # ours is the log-sigmoid of the raw output, which keeps what rounding to
    # 1.0 loses. Here several probabilities round to exactly 1.0 (MLP's as
    # well), so predict_proba's argmax takes the first of the tied labels while
    # the log-probabilities still order them (e.g. -4e-35 > -3e-76), and
    # np.log(1.0) = 0 is not their value. So: the argmax of the log-probability
    # is a label of maximal probability (the same one wherever there is no
    # tie), the log-probabilities are exactly the log-sigmoid of
    # decision_function, and equal np.log(predict_proba) up to its rounding.
    rows = np.arange(n_samples)
    assert_array_equal(y_proba[rows, proba_log_max], y_proba.max(axis=1))
    untied = (y_proba == y_proba.max(axis=1, keepdims=True)).sum(axis=1) == 1
    assert_array_equal(proba_max[untied], proba_log_max[untied])
    assert_allclose(y_log_proba, -np.logaddexp(0, -clf.decision_function(X)))
    assert_allclose(np.exp(y_log_proba), y_proba)
    # (rounding p to a double moves log(p) by up to eps / 2 near p = 1)
    assert_allclose(y_log_proba, np.log(y_proba), atol=np.finfo(np.float64).eps)


def test_shuffle():
    # Test that the shuffle parameter affects the training process (it should)
    X, y = make_regression(n_samples=50, n_features=5, n_targets=1, random_state=0)

    # The coefficients will be identical if both do or do not shuffle
    for shuffle in [True, False]:
        mlp1 = BackpropRegressor(
            hidden_layer_sizes=1,
            max_iter=1,
            batch_size=1,
            random_state=0,
            shuffle=shuffle,
        )
        mlp2 = BackpropRegressor(
            hidden_layer_sizes=1,
            max_iter=1,
            batch_size=1,
            random_state=0,
            shuffle=shuffle,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp1.fit(X, y)
            mlp2.fit(X, y)

        assert np.array_equal(mlp1.coefs_[0], mlp2.coefs_[0])

    # The coefficients will be slightly different if shuffle=True
    mlp1 = BackpropRegressor(
        hidden_layer_sizes=1, max_iter=1, batch_size=1, random_state=0, shuffle=True
    )
    mlp2 = BackpropRegressor(
        hidden_layer_sizes=1, max_iter=1, batch_size=1, random_state=0, shuffle=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp1.fit(X, y)
        mlp2.fit(X, y)

    assert not np.array_equal(mlp1.coefs_[0], mlp2.coefs_[0])


@pytest.mark.parametrize("csr_container", CSR_CONTAINERS)
def test_sparse_matrices(csr_container):
    # Test that sparse and dense input matrices output the same results.
    X = X_digits_binary[:50]
    y = y_digits_binary[:50]
    X_sparse = csr_container(X)
    mlp = BackpropClassifier(optimizer="lbfgs", hidden_layer_sizes=15, random_state=1)
    mlp.fit(X, y)
    pred1 = mlp.predict(X)
    mlp.fit(X_sparse, y)
    pred2 = mlp.predict(X_sparse)
    assert_almost_equal(pred1, pred2)
    pred1 = mlp.predict(X)
    pred2 = mlp.predict(X_sparse)
    assert_array_equal(pred1, pred2)


def test_tolerance():
    # Test tolerance.
    # It should force the solver to exit the loop when it converges.
    X = [[3, 2], [1, 6]]
    y = [1, 0]
    clf = BackpropClassifier(tol=0.5, max_iter=3000, optimizer=_sgd())
    clf.fit(X, y)
    assert clf.max_iter > clf.n_iter_


def test_verbose_sgd(capsys):
    # Test verbose.
    X = [[3, 2], [1, 6]]
    y = [1, 0]
    clf = BackpropClassifier(
        optimizer=_sgd(), max_iter=2, verbose=10, hidden_layer_sizes=2
    )

    with ignore_warnings(category=ConvergenceWarning):
        clf.fit(X, y)
    clf.partial_fit(X, y)

    out, _ = capsys.readouterr()
    # Deliberate difference in wording: one line per epoch, "Epoch <n>, loss =
    # ..." (MLP: "Iteration <n>, loss = ..."); partial_fit prints its line too.
    epoch_lines = [line for line in out.splitlines() if line.startswith("Epoch")]
    assert len(epoch_lines) == 3
    assert "loss" in epoch_lines[-1]


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_early_stopping(Estimator):
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]
    tol = 0.2
    mlp_estimator = Estimator(
        tol=tol, max_iter=3000, optimizer=_sgd(), early_stopping=True
    )
    mlp_estimator.fit(X, y)
    assert mlp_estimator.max_iter > mlp_estimator.n_iter_

    assert mlp_estimator.best_loss_ is None
    assert isinstance(mlp_estimator.validation_scores_, list)

    valid_scores = mlp_estimator.validation_scores_
    best_valid_score = mlp_estimator.best_validation_score_
    assert max(valid_scores) == best_valid_score
    assert best_valid_score + tol > valid_scores[-2]
    assert best_valid_score + tol > valid_scores[-1]

    # check that the attributes `validation_scores_` and `best_validation_score_`
    # are set to None when `early_stopping=False`
    mlp_estimator = Estimator(
        tol=tol, max_iter=3000, optimizer=_sgd(), early_stopping=False
    )
    mlp_estimator.fit(X, y)
    assert mlp_estimator.validation_scores_ is None
    assert mlp_estimator.best_validation_score_ is None
    assert mlp_estimator.best_loss_ is not None

    # Deliberate difference: early stopping also works with L-BFGS (MLP
    # ignores early_stopping there): one held-out score per iteration, and the
    # same stopping rule (replayed on the scores). tol is also L-BFGS's
    # gradient tolerance, so the default is used: with tol=0.2 L-BFGS may
    # converge before its first iteration.
    n_iter_no_change = 10
    mlp_estimator = Estimator(
        max_iter=3000, optimizer="lbfgs", early_stopping=True, random_state=0
    )
    mlp_estimator.fit(X, y)
    assert mlp_estimator.max_iter > mlp_estimator.n_iter_
    assert mlp_estimator.best_loss_ is None
    valid_scores = mlp_estimator.validation_scores_
    assert isinstance(valid_scores, list)
    assert len(valid_scores) == mlp_estimator.n_iter_ == len(mlp_estimator.loss_curve_)
    assert max(valid_scores) == mlp_estimator.best_validation_score_
    counts = _no_improvement_counts([-score for score in valid_scores], 1e-4)
    assert counts[-1] == n_iter_no_change + 1
    assert max(counts[:-1]) <= n_iter_no_change


def test_adaptive_learning_rate():
    X = [[3, 2], [1, 6]]
    y = [1, 0]
    clf = BackpropClassifier(
        tol=0.5, max_iter=3000, optimizer=RecordingSGD(), learning_rate="adaptive"
    )
    clf.fit(X, y)
    assert clf.max_iter > clf.n_iter_
    assert 1e-6 > _next_learning_rate(clf, X, y)


def test_warm_start():
    X = X_iris
    y = y_iris

    y_2classes = np.array([0] * 75 + [1] * 75)
    y_3classes = np.array([0] * 40 + [1] * 40 + [2] * 70)
    y_3classes_alt = np.array([0] * 50 + [1] * 50 + [3] * 50)
    y_4classes = np.array([0] * 37 + [1] * 37 + [2] * 38 + [3] * 38)
    y_5classes = np.array([0] * 30 + [1] * 30 + [2] * 30 + [3] * 30 + [4] * 30)

    # No error raised
    clf = BackpropClassifier(
        hidden_layer_sizes=2,
        optimizer="lbfgs",
        warm_start=True,
        random_state=42,
        tol=1e-2,
    ).fit(X, y)
    clf.fit(X, y)
    clf.fit(X, y_3classes)
    # the same set of classes, met in another order, is fine too
    clf.fit(X, y[::-1])

    for y_i in (y_2classes, y_3classes_alt, y_4classes, y_5classes):
        clf = BackpropClassifier(
            hidden_layer_sizes=2,
            optimizer="lbfgs",
            warm_start=True,
            random_state=42,
            tol=1e-2,
        ).fit(X, y)
        # Our message differs from MLP's ("warm_start can only be used where
        # `y` has the same classes as in the previous call to fit. Previously
        # got [0 1 2], `y` has ..."); it names the classes too.
        with pytest.raises(ValueError, match="classes"):
            clf.fit(X, y_i)

    # Deliberate difference: a changed architecture with warm_start raises
    # (MLP silently keeps training the old one).
    clf = BackpropClassifier(
        hidden_layer_sizes=2,
        optimizer="lbfgs",
        warm_start=True,
        random_state=42,
        tol=1e-2,
    ).fit(X, y)
    clf.set_params(hidden_layer_sizes=3)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        clf.fit(X, y)


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_warm_start_full_iteration(Estimator):
    # Non-regression test for:
    # https://github.com/scikit-learn/scikit-learn/issues/16812
    # Check that the MLP estimator accomplish `max_iter` with a
    # warm started estimator.
    X, y = X_iris, y_iris
    max_iter = 3
    clf = Estimator(
        hidden_layer_sizes=2, optimizer=_sgd(), warm_start=True, max_iter=max_iter
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
        assert max_iter == clf.n_iter_
        clf.fit(X, y)
        assert max_iter == clf.n_iter_
    # n_iter_ counts this fit's epochs; t_ and loss_curve_ accumulate (MLP's)
    assert clf.t_ == 2 * max_iter * X.shape[0]
    assert len(clf.loss_curve_) == 2 * max_iter


def test_n_iter_no_change():
    # test n_iter_no_change using binary data set
    # the classifying fitting process is not prone to loss curve fluctuations
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]
    tol = 0.01
    max_iter = 3000

    # test multiple n_iter_no_change
    for n_iter_no_change in [2, 5, 10, 50, 100]:
        clf = BackpropClassifier(
            tol=tol,
            max_iter=max_iter,
            optimizer=_sgd(),
            n_iter_no_change=n_iter_no_change,
        )
        clf.fit(X, y)

        # validate n_iter_no_change (MLP reads its private _no_improvement_count;
        # here its rule is replayed on the public loss curve): training stopped
        # at the first epoch whose count exceeded n_iter_no_change
        counts = _no_improvement_counts(clf.loss_curve_, tol)
        assert counts[-1] == n_iter_no_change + 1
        assert max(counts[:-1]) <= n_iter_no_change
        assert len(clf.loss_curve_) == clf.n_iter_
        assert clf.best_loss_ == min(clf.loss_curve_)
        assert max_iter > clf.n_iter_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_n_iter_no_change_inf():
    # test n_iter_no_change using binary data set
    # the fitting process should go to max_iter iterations
    X = X_digits_binary[:100]
    y = y_digits_binary[:100]

    # set a ridiculous tolerance
    # this should always count as no improvement
    tol = 1e9

    # fit
    n_iter_no_change = np.inf
    max_iter = 3000
    clf = BackpropClassifier(
        tol=tol,
        max_iter=max_iter,
        optimizer=_sgd(),
        n_iter_no_change=n_iter_no_change,
    )
    clf.fit(X, y)

    # validate n_iter_no_change doesn't cause early stopping
    assert clf.n_iter_ == max_iter

    # validate that every epoch after the first counted as no improvement
    # (MLP: _no_improvement_count == n_iter_ - 1, replayed on loss_curve_)
    assert _no_improvement_counts(clf.loss_curve_, tol)[-1] == clf.n_iter_ - 1


def test_early_stopping_stratified():
    # Make sure data splitting for early stopping is stratified
    X = [[1, 2], [2, 3], [3, 4], [4, 5]]
    y = [0, 0, 0, 1]

    mlp = BackpropClassifier(early_stopping=True)
    # Deliberate difference: where the labels cannot be stratified (class 1
    # has one member) MLP raises; we hold out at random instead, so early
    # stopping works on any data whose held-out set can be scored. Here 10 %
    # of 4 rows is 1 row, too few to score: that error says so.
    with pytest.raises(ValueError, match="validation set is too small to score"):
        mlp.fit(X, y)
    # With a held-out set large enough, the same data fit.
    BackpropClassifier(early_stopping=True, validation_fraction=0.5,
                       max_iter=5).fit(X, y)


def test_mlp_early_stopping_string_labels():
    """Check that labels can be strings when `early_stopping=True`.

    Non-regression test for:
    https://github.com/scikit-learn/scikit-learn/issues/33760
    """
    X, y = make_classification(
        n_samples=200,
        n_features=10,
        n_classes=3,
        n_informative=5,
        random_state=42,
    )
    labels = np.array(["class_a", "class_b", "class_c"], dtype=object)
    y = labels[y]

    mlp = BackpropClassifier(early_stopping=True, max_iter=50, random_state=42)
    mlp.fit(X, y)

    assert mlp.validation_scores_ is not None
    assert len(mlp.validation_scores_) == mlp.n_iter_
    assert np.isfinite(mlp.validation_scores_).all()


def test_mlp_classifier_dtypes_casting():
    # Compare predictions for different dtypes
    mlp_64 = BackpropClassifier(
        alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=100, tol=1e-1
    )
    mlp_64.fit(X_digits[:300], y_digits[:300])
    pred_64 = mlp_64.predict(X_digits[300:])
    proba_64 = mlp_64.predict_proba(X_digits[300:])

    mlp_32 = BackpropClassifier(
        alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=100, tol=1e-1
    )
    mlp_32.fit(X_digits[:300].astype(np.float32), y_digits[:300])
    pred_32 = mlp_32.predict(X_digits[300:].astype(np.float32))
    proba_32 = mlp_32.predict_proba(X_digits[300:].astype(np.float32))

    assert_array_equal(pred_64, pred_32)
    assert_allclose(proba_64, proba_32, rtol=1e-02)


def test_mlp_regressor_dtypes_casting():
    mlp_64 = BackpropRegressor(
        alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=150, tol=1e-3
    )
    mlp_64.fit(X_digits[:300], y_digits[:300])
    pred_64 = mlp_64.predict(X_digits[300:])

    mlp_32 = BackpropRegressor(
        alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=150, tol=1e-3
    )
    mlp_32.fit(X_digits[:300].astype(np.float32), y_digits[:300])
    pred_32 = mlp_32.predict(X_digits[300:].astype(np.float32))

    assert_allclose(pred_64, pred_32, rtol=5e-04)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_mlp_param_dtypes(dtype, Estimator):
    # Checks if input dtype is used for network parameters
    # and predictions
    X, y = X_digits.astype(dtype), y_digits
    mlp = Estimator(
        alpha=1e-5, hidden_layer_sizes=(5, 3), random_state=1, max_iter=50, tol=1e-1
    )
    mlp.fit(X[:300], y[:300])
    pred = mlp.predict(X[300:])

    assert all([intercept.dtype == dtype for intercept in mlp.intercepts_])

    assert all([coef.dtype == dtype for coef in mlp.coefs_])

    if Estimator == BackpropRegressor:
        assert pred.dtype == dtype


def test_mlp_loading_from_joblib_partial_fit(tmp_path):
    """Loading from MLP and partial fitting updates weights. Non-regression
    test for #19626."""
    pre_trained_estimator = BackpropRegressor(
        hidden_layer_sizes=(42,), random_state=42, learning_rate_init=0.01, max_iter=200
    )
    features, target = [[2]], [4]

    # Fit on x=2, y=4
    pre_trained_estimator.fit(features, target)

    # dump and load model
    pickled_file = tmp_path / "mlp.pkl"
    joblib.dump(pre_trained_estimator, pickled_file)
    load_estimator = joblib.load(pickled_file)

    # Train for a more epochs on point x=2, y=1
    fine_tune_features, fine_tune_target = [[2]], [1]

    for _ in range(200):
        load_estimator.partial_fit(fine_tune_features, fine_tune_target)

    # finetuned model learned the new target
    predicted_value = load_estimator.predict(fine_tune_features)
    assert_allclose(predicted_value, fine_tune_target, rtol=1e-4)


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_preserve_feature_names(Estimator):
    """Check that feature names are preserved when early stopping is enabled.

    Feature names are required for consistency checks during scoring.

    Non-regression test for gh-24846
    """
    pd = pytest.importorskip("pandas")
    rng = np.random.RandomState(0)

    X = pd.DataFrame(data=rng.randn(10, 2), columns=["colname_a", "colname_b"])
    y = pd.Series(data=np.full(10, 1), name="colname_y")

    model = Estimator(early_stopping=True, validation_fraction=0.2)

    if Estimator is BackpropClassifier:
        # Deliberate difference: a classifier needs at least two classes (MLP
        # fits this one-class target); the feature-name check below then runs
        # on a two-class target of the same length.
        with pytest.raises(ValueError, match="at least 2 classes"):
            model.fit(X, y)
        y = pd.Series(data=np.arange(10) % 2, name="colname_y")

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.fit(X, y)


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_mlp_warm_start_with_early_stopping(Estimator):
    """Check that early stopping works with warm start."""
    mlp = Estimator(max_iter=10, random_state=0, warm_start=True, early_stopping=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(X_iris, y_iris)
        n_validation_scores = len(mlp.validation_scores_)
        mlp.set_params(max_iter=20)
        mlp.fit(X_iris, y_iris)
    assert len(mlp.validation_scores_) > n_validation_scores


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_mlp_warm_start_no_convergence(Estimator, solver):
    """Check that we stop the number of iteration at `max_iter` when warm starting.

    Non-regression test for:
    https://github.com/scikit-learn/scikit-learn/issues/24764
    """
    model = Estimator(
        optimizer=solver,
        warm_start=True,
        early_stopping=False,
        max_iter=10,
        n_iter_no_change=np.inf,
        random_state=0,
    )

    with pytest.warns(ConvergenceWarning):
        model.fit(X_iris, y_iris)
    assert model.n_iter_ == 10

    model.set_params(max_iter=20)
    with pytest.warns(ConvergenceWarning):
        model.fit(X_iris, y_iris)
    assert model.n_iter_ == 20
    # the loss curve accumulates over the warm-started fits (one entry per
    # epoch, or per iteration for L-BFGS)
    assert len(model.loss_curve_) == 30


@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_mlp_partial_fit_after_fit(Estimator):
    """Check partial fit does not fail after fit when early_stopping=True.

    Non-regression test for gh-25693.
    """
    mlp = Estimator(early_stopping=True, random_state=0).fit(X_iris, y_iris)

    # MLP's message: "partial_fit does not support early_stopping=True"
    with pytest.raises(ValueError, match="early_stopping"):
        mlp.partial_fit(X_iris, y_iris)


def test_mlp_diverging_loss():
    """Test a diverging model with early stopping enabled.

    Non-regression test for:
    https://github.com/scikit-learn/scikit-learn/issues/29504
    """
    mlp = BackpropRegressor(
        hidden_layer_sizes=100,
        activation="identity",
        optimizer=_sgd(),
        alpha=0.0001,
        learning_rate="constant",
        learning_rate_init=1,
        shuffle=True,
        max_iter=20,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=0,
    )

    # Deliberate difference: MLP keeps training on NaN and records a NaN
    # validation score; we stop at the first non-finite loss, gradient or update
    # with a ValueError naming the epoch and the remedies, and keep the last
    # finite parameters, so the model still predicts.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="learning_rate_init") as excinfo:
            mlp.fit(X_iris, y_iris)
    assert "epoch" in str(excinfo.value)

    assert all(isinstance(score, float) for score in mlp.validation_scores_)
    assert np.isfinite(mlp.validation_scores_).all()
    assert all(np.isfinite(p).all() for p in mlp.coefs_ + mlp.intercepts_)
    assert np.isfinite(mlp.predict(X_iris[:5])).all()


def test_mlp_sample_weight_with_early_stopping():
    # Test code path for inner validation set splitting.
    X, y = make_regression(
        n_samples=100,
        n_features=2,
        n_informative=2,
        random_state=42,
    )
    sw = np.ones_like(y)
    params = dict(
        hidden_layer_sizes=10,
        optimizer="adam",
        early_stopping=True,
        tol=1e-2,
        learning_rate_init=0.01,
        batch_size=10,
        random_state=42,
    )
    m1 = BackpropRegressor(
        **params,
    )
    m1.fit(X, y, sample_weight=sw)

    m2 = BackpropRegressor(**params).fit(X, y, sample_weight=None)
    assert_allclose(m1.predict(X), m2.predict(X))


# scikit-learn's global_random_seed fixture defaults to 42 (its CI also runs
# other seeds); this suite has no such fixture, so the seeds are listed.
@pytest.mark.parametrize("global_random_seed", [0, 42])
def test_mlp_vs_poisson_glm_equivalent(global_random_seed):
    """Test MLP with Poisson loss and no hidden layer equals GLM."""
    n = 100
    rng = np.random.default_rng(global_random_seed)
    X = np.linspace(0, 1, n)
    y = rng.poisson(np.exp(X + 1))
    X = X.reshape(n, -1)
    glm = PoissonRegressor(alpha=0, tol=1e-7).fit(X, y)
    # As in scikit-learn's test: one hidden node with an identity activation.
    # Coefficients will therefore be different, but predictions are the same.
    mlp = BackpropRegressor(
        loss="poisson",
        hidden_layer_sizes=(1,),
        activation="identity",
        alpha=0,
        optimizer="lbfgs",
        tol=1e-7,
        random_state=np.random.RandomState(global_random_seed + 1),
    ).fit(X, y)

    assert_allclose(mlp.predict(X), glm.predict(X), rtol=1e-4)

    # The same does not work with the squared error because the output activation is
    # the identity instead of the exponential.
    mlp = BackpropRegressor(
        loss="squared_error",
        hidden_layer_sizes=(1,),
        activation="identity",
        alpha=0,
        optimizer="lbfgs",
        tol=1e-7,
        random_state=np.random.RandomState(global_random_seed + 1),
    ).fit(X, y)
    assert not np.allclose(mlp.predict(X), glm.predict(X), rtol=1e-4)


def test_minimum_input_sample_size():
    """Check error message when the validation set is too small."""
    X, y = make_regression(n_samples=2, n_features=5, random_state=0)
    # RecordingAdam is the default optimizer plus a record of the steps taken
    model = BackpropRegressor(
        optimizer=RecordingAdam(), early_stopping=True, random_state=0
    )
    RecordingAdam.lrs.clear()
    # MLP's message: "The validation set is too small. Increase
    # 'validation_fraction' or the size of your dataset."
    with pytest.raises(ValueError, match=r"(?i)too small"):
        model.fit(X, y)
    # raised before training: not a single step was taken
    assert RecordingAdam.lrs == []


# -- beyond scikit-learn's file: MLP's parameter names --------------------------


@pytest.mark.parametrize(
    "name, value",
    [
        ("solver", "sgd"),
        ("momentum", 0.5),
        ("nesterovs_momentum", False),
        ("beta_1", 0.8),
        ("beta_2", 0.99),
        ("epsilon", 1e-7),
    ],
)
@pytest.mark.parametrize("Estimator", [BackpropClassifier, BackpropRegressor])
def test_mlp_parameter_names_point_to_ours(Estimator, name, value):
    # Code ported from MLP that sets MLP's optimizer parameters gets an error
    # naming our equivalent (optimizer=..., or the Optimizer's own parameter).
    with pytest.raises(ValueError, match="optimizer"):
        Estimator().set_params(**{name: value})
