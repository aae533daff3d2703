"""scikit-learn's estimator checks on the main configurations, no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.activations import LeakyReLU
from sklearn_bp.losses import Huber
from sklearn_bp.optimizers import LBFGS, SGD, Adam, RMSprop

# Small networks and few epochs keep the suite fast; the learning rates are
# chosen so that every configuration still learns the checks' toy problems.
_COMMON = dict(hidden_layer_sizes=(16,), max_iter=100, random_state=0)

ESTIMATORS = [
    BackpropClassifier(),
    BackpropRegressor(),
    BackpropClassifier(**_COMMON, learning_rate_init=0.01),
    BackpropClassifier(**_COMMON, optimizer=SGD(momentum=0.9), learning_rate_init=0.05),
    BackpropClassifier(
        **_COMMON, optimizer=RMSprop(centered=True), learning_rate_init=0.01
    ),
    BackpropClassifier(
        **_COMMON,
        activation="tanh",
        optimizer=Adam(beta_1=0.8),
        learning_rate_init=0.01,
    ),
    BackpropRegressor(**_COMMON, learning_rate_init=0.01),
    BackpropRegressor(**_COMMON, optimizer="sgd", learning_rate_init=0.01),
    BackpropRegressor(**_COMMON, optimizer="rmsprop", learning_rate_init=0.01),
    BackpropRegressor(
        **_COMMON,
        activation=LeakyReLU(negative_slope=0.1),
        loss=Huber(delta=0.5),
        learning_rate_init=0.01,
    ),
    BackpropRegressor(
        **_COMMON, activation="elu", loss="absolute_error", learning_rate_init=0.01
    ),
    BackpropClassifier(optimizer="lbfgs"),
    BackpropRegressor(optimizer="lbfgs"),
    # (larger held-out fractions: a held-out set needs 2 rows to be scored, and
    # the checks' smallest data sets have 10 rows, 5 with positive weight)
    BackpropClassifier(
        **_COMMON,
        optimizer=LBFGS(history_size=20),
        early_stopping=True,
        validation_fraction=0.4,
    ),
    BackpropRegressor(
        **_COMMON, optimizer="lbfgs", early_stopping=True, validation_fraction=0.2
    ),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
