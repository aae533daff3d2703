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


def fitted_state(coefs, intercepts, loss_curve, loss):
    """A callable giving the attributes that make a ready-to-predict copy.

    Passed as ``reconstruction_attributes``: evaluated only if a callback asks
    for a ``fitted_estimator`` (e.g. ``ScoringMonitor``), and copied because the
    live parameters keep changing after the hook returns.
    """
    return lambda: {
        "coefs_": [W.copy() for W in coefs],
        "intercepts_": [b.copy() for b in intercepts],
        "loss_curve_": list(loss_curve),
        "_loss": copy.deepcopy(loss),
    }


class Listeners:
    """The fit's ``sklearn.callback`` hooks: one task, one subtask per iteration.

    Made by the estimator (the callbacks' API names it) and passed down to the
    training loop, which calls these methods; they only forward to the
    callback contexts.

    Parameters
    ----------
    estimator : BaseBackprop
        The estimator being fitted, as the callbacks expect to see it.
    max_subtasks : int
        Most iterations this fit may run.
    task_name : str
        Name of one iteration's subtask (``"epoch"`` or ``"iteration"``).
    """

    def __init__(self, estimator, max_subtasks, task_name="epoch"):
        self._estimator = estimator
        self._max_subtasks = max_subtasks
        self._task_name = task_name
        self._root = None
        self._data = {}
        self._open = None

    def begin_fit(self, X, y, sample_weight):
        """Start the fit task; what callbacks see of the (training) data."""
        self._root = root_context(self._estimator, self._max_subtasks)
        # scorers receive the weights too
        metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        self._data = dict(X=X, y=y, metadata=metadata)
        self._root.call_on_fit_task_begin(estimator=self._estimator, **self._data)

    def begin_iteration(self):
        """Start an iteration's subtask, unless one is open."""
        if self._open is None:
            self._open = self._root.subcontext(task_name=self._task_name)
            self._open.call_on_fit_task_begin(estimator=self._estimator, **self._data)

    def end_iteration(self, state):
        """End the open subtask; whether a callback asks to stop."""
        context, self._open = self._open, None
        return bool(
            context.call_on_fit_task_end(
                estimator=self._estimator, reconstruction_attributes=state, **self._data
            )
        )

    def skip_iteration(self):
        """End the open subtask, if any, without a result."""
        if self._open is not None:
            context, self._open = self._open, None
            context.call_on_fit_task_end(estimator=self._estimator)

    def end_fit(self, state):
        """End the fit task."""
        self._root.call_on_fit_task_end(
            estimator=self._estimator, reconstruction_attributes=state, **self._data
        )
