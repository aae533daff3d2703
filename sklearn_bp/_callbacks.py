"""Bridge to scikit-learn's callback API (``sklearn.callback``, scikit-learn >= 1.9).

With an older scikit-learn the estimators simply have no ``set_callbacks`` and
the training loop talks to a context that does nothing.
"""

import copy

try:
    from sklearn.callback import CallbackSupportMixin
except ImportError:  # scikit-learn < 1.9

    class CallbackSupportMixin:  # noqa: D101 - empty stand-in
        pass

    HAS_CALLBACKS = False
else:
    HAS_CALLBACKS = True


class _NoCallbacks:
    """Stands in for a ``CallbackContext`` when callbacks are unavailable."""

    def subcontext(self, **kwargs):
        return self

    def call_on_fit_task_begin(self, **kwargs):
        return self

    def call_on_fit_task_end(self, **kwargs):
        return False


def root_context(estimator, max_subtasks):
    """The fit task's callback context (one subtask per epoch)."""
    if HAS_CALLBACKS:
        return estimator._init_callback_context(max_subtasks=max_subtasks)
    return _NoCallbacks()


def fitted_state(estimator):
    """A callable giving the attributes that make a ready-to-predict copy.

    Passed as ``reconstruction_attributes``: evaluated only if a callback asks
    for a ``fitted_estimator`` (e.g. ``ScoringMonitor``), and copied because the
    live parameters keep changing after the hook returns.
    """
    return lambda: {
        "coefs_": [W.copy() for W in estimator.coefs_],
        "intercepts_": [b.copy() for b in estimator.intercepts_],
        "loss_curve_": list(estimator.loss_curve_),
        "_loss": copy.deepcopy(estimator._loss),
    }
