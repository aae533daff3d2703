"""sklearn_bp: feed-forward neural networks trained by backpropagation.

Scikit-learn estimators on numpy and scipy, with pluggable activations, losses
and optimizers.
"""

from ._classifier import BackpropClassifier
from ._persistence import trusted_types
from ._regressor import BackpropRegressor

__version__ = "0.1.0.dev0"

# The estimators report their public module: pickle, skops and the API docs name
# them ``sklearn_bp.BackpropClassifier``, not by the private module that defines them.
BackpropClassifier.__module__ = BackpropRegressor.__module__ = __name__

#: The types to pass as ``skops.io.load(..., trusted=TRUSTED_TYPES)``: the two
#: estimators and every built-in component, all public (see
#: :func:`sklearn_bp.trusted_types`).
TRUSTED_TYPES = trusted_types()

__all__ = [
    "BackpropClassifier",
    "BackpropRegressor",
    "TRUSTED_TYPES",
    "trusted_types",
    "__version__",
]
