"""sklearn_bp: feed-forward neural networks trained by backpropagation.

Scikit-learn estimators on numpy and scipy, with pluggable activations, losses
and optimizers.
"""

from ._classifier import BackpropClassifier
from ._regressor import BackpropRegressor

__version__ = "0.1.0.dev0"

__all__ = ["BackpropClassifier", "BackpropRegressor", "__version__"]
