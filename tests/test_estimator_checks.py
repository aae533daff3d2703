"""scikit-learn's estimator checks on the main configurations, no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_bp import BackpropClassifier, BackpropRegressor
from sklearn_bp.activations import LeakyReLU
from sklearn_bp.embeddings import PeriodicEmbedding
from sklearn_bp.losses import Huber, LogLoss
from sklearn_bp.optimizers import LBFGS, SGD, Adam, AdamW, RMSprop
from sklearn_bp.schedules import Cosine, StepDecay

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


# The toolbox (issue 16): per-layer activations, dropout, initializers, AdamW
# with clipping, label smoothing, schedules.
_TWO = dict(hidden_layer_sizes=(16, 8), max_iter=100, random_state=0,
            learning_rate_init=0.01)
DROPOUT = [
    BackpropClassifier(**_TWO, activation=("relu", "tanh"), dropout=(0.2, 0.1)),
    BackpropRegressor(**_TWO, activation=("elu", "relu"), dropout=0.1),
]
ESTIMATORS += DROPOUT + [
    BackpropClassifier(**_TWO, activation=["tanh", LeakyReLU(negative_slope=0.2)],
                       weight_init="he_normal"),
    BackpropRegressor(**_TWO, activation=("relu", "softplus"),
                      weight_init="orthogonal"),
    BackpropClassifier(**_COMMON, optimizer=AdamW(weight_decay=1e-2),
                       clip_grad_norm=1.0, learning_rate_init=0.01,
                       loss=LogLoss(label_smoothing=0.1)),
    BackpropRegressor(**_COMMON, optimizer=AdamW(weight_decay=1e-2), clip_grad_norm=0.5,
                      learning_rate_init=0.01),
    # numerical embeddings and TabM ensembles (issue 19)
    BackpropClassifier(**_COMMON, embedding=PeriodicEmbedding(n_frequencies=8),
                       learning_rate_init=0.01),
    BackpropRegressor(**_COMMON, embedding="piecewise_linear", learning_rate_init=0.01),
    BackpropClassifier(**_COMMON, ensemble_size=4, learning_rate_init=0.01),
    BackpropRegressor(**_COMMON, ensemble_size=4, ensemble_type="tabm-mini",
                      embedding=PeriodicEmbedding(n_frequencies=8),
                      learning_rate_init=0.01),
    BackpropClassifier(**_COMMON, learning_rate=Cosine(warmup=5),
                       learning_rate_init=0.01),
    BackpropRegressor(**_COMMON, optimizer=SGD(momentum=0.9, weight_decay=1e-3),
                      learning_rate=StepDecay(step_size=30, gamma=0.5),
                      learning_rate_init=0.01),
]


def _expected_failures(estimator):
    """The one premise a feature contradicts by definition, for that
    configuration only (never anything else)."""
    if any(estimator is other for other in DROPOUT):
        reason = (
            "dropout: a repeated row draws masks of its own, so fitting on repeated "
            "rows is a different random objective than fitting with integer "
            "sample weights"
        )
        return {
            "check_sample_weight_equivalence_on_dense_data": reason,
            "check_sample_weight_equivalence_on_sparse_data": reason,
        }
    return {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failures)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
