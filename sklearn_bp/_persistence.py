"""What a fitted estimator saves, and how it is rebuilt when loaded.

pickle, joblib and :mod:`skops.io` all save an estimator through its
``__getstate__`` and load it through ``__setstate__``; both are thin calls into
this module. What is saved:

* the constructor parameters, as given (names, or public component instances
  such as ``sklearn_bp.optimizers.Adam(beta_1=0.8)``);
* the public fitted attributes (``coefs_``, ``intercepts_``, ``classes_``, ...);
* plain private state: numbers, strings, arrays and lists, tuples and dicts of
  them (the optimizer's moments and step count), scikit-learn objects and
  public component instances. The monitor (the stopping rule's counters and the
  schedule's epoch and rate) and the dropout generator are saved as plain dicts.

Private machinery (the resolved copies of the components, the per-layer specs,
the monitor's schedule, workspaces, caches) is not saved: it is resolved again
from the parameters on load, as ``fit`` resolves it. A loaded estimator
therefore holds no object of a private class, and a skops file names only public
types (:data:`sklearn_bp.TRUSTED_TYPES`). ``partial_fit`` after loading continues
exactly where the saved estimator stood.

Compatibility: the state carries ``STATE_VERSION``. A later release loads the
files of this one: a parameter that did not exist when the file was written
takes its default value.
"""

import importlib
import inspect
from types import SimpleNamespace

import numpy as np
from sklearn.base import is_classifier
from sklearn.utils.multiclass import type_of_target

from ._flat import packed_copy
from ._spec import Spec
from ._training import Monitor

# Raised when a layout change makes old files need a conversion step.
STATE_VERSION = 1

# Resolved from the parameters on load (never saved).
_REBUILT = ("_activation", "_layers", "_optimizer", "_loss", "_optimizer_kind")

_PLAIN = (type(None), bool, int, float, complex, str, bytes, np.generic, np.ndarray)

# The modules whose public classes can be found in a saved estimator.
_PUBLIC_MODULES = (
    "sklearn_bp.activations",
    "sklearn_bp.embeddings",
    "sklearn_bp.losses",
    "sklearn_bp.optimizers",
    "sklearn_bp.schedules",
)


def trusted_types():
    """The types a skops file of a sklearn_bp estimator may name.

    Returns
    -------
    names : list of str
        ``"module.Class"`` of the two estimators and of every built-in
        component (activations, embeddings, losses, optimizers, schedules),
        sorted. The
        components' base classes are not listed: no saved estimator holds one.

    See Also
    --------
    skops.io.load : Pass ``trusted=sklearn_bp.trusted_types()`` (or
        :data:`sklearn_bp.TRUSTED_TYPES`, the same list).

    Examples
    --------
    >>> import sklearn_bp
    >>> "sklearn_bp.BackpropClassifier" in sklearn_bp.trusted_types()
    True
    >>> sklearn_bp.trusted_types() == sklearn_bp.TRUSTED_TYPES
    True
    """
    names = ["sklearn_bp.BackpropClassifier", "sklearn_bp.BackpropRegressor"]
    for module_name in _PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, Spec)
                and obj.__module__ == module_name
                and obj not in _bases()
            ):
                names.append(f"{module_name}.{name}")
    return sorted(names)


def _bases():
    from .activations import Activation
    from .embeddings import Embedding
    from .losses import Loss
    from .optimizers import Optimizer
    from .schedules import Schedule

    return (Activation, Embedding, Loss, Optimizer, Schedule)


def _saveable(value):
    """Whether ``value`` is plain data, a public component or a scikit-learn
    object: what a skops file can hold without naming a private type."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (list, tuple)):
        return all(_saveable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _saveable(v) for k, v in value.items())
    if isinstance(value, Spec):
        return True
    return type(value).__module__.split(".")[0] == "sklearn"


def saved_state(estimator, state):
    """The state to save for ``estimator``.

    Parameters
    ----------
    estimator : BaseBackprop
        The estimator being saved.
    state : dict
        Its attributes (from ``BaseEstimator.__getstate__``).

    Returns
    -------
    state : dict
        Parameters, public fitted attributes and plain private state.
    """
    from . import __version__  # (the package imports this module first)

    saved = {"_sklearn_bp_state": STATE_VERSION, "_sklearn_bp_version": __version__}
    for name, value in state.items():
        if not name.startswith("_"):
            saved[name] = value  # a parameter or a public fitted attribute
        elif name == "_monitor":
            # its counters and rate; its schedule is resolved again on load
            saved[name] = {
                k: v for k, v in vars(value).items()
                if _saveable(v) and not isinstance(v, Spec)
            }
        elif isinstance(value, np.random.Generator):
            saved[name] = {"generator": value.bit_generator.state}
        elif name == "_optimizer_state":
            saved[name] = value
            saved["_optimizer_kind"] = _qualified_name(state["_optimizer_kind"])
        elif name not in _REBUILT and _saveable(value):
            saved[name] = value
    return saved


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def restore(estimator, state, set_attributes):
    """Load ``state`` into ``estimator`` and rebuild its private machinery.

    Parameters
    ----------
    estimator : BaseBackprop
        A new, empty instance (made by ``cls.__new__``).
    state : dict
        What :func:`saved_state` returned (or, for files written before it
        existed, the plain ``__dict__``).
    set_attributes : callable
        ``BaseEstimator.__setstate__`` of the estimator: stores the attributes.
    """
    from . import __version__

    state = dict(state)
    version = state.pop("_sklearn_bp_state", None)
    state.pop("_sklearn_bp_version", None)
    if version is not None and version > STATE_VERSION:
        raise ValueError(
            f"This {type(estimator).__name__} was saved by a newer sklearn_bp (state "
            f"format {version}; this version {__version__} reads up to "
            f"{STATE_VERSION}). Upgrade sklearn_bp to load it."
        )
    # Parameters added after the file was written take their defaults.
    signature = inspect.signature(type(estimator).__init__)
    for name, parameter in signature.parameters.items():
        if name != "self" and name not in state:
            state[name] = parameter.default
    monitor = state.pop("_monitor", None)
    generator = state.pop("_dropout_rng", None)
    kind = state.pop("_optimizer_kind", None)
    set_attributes(state)
    if not hasattr(estimator, "coefs_"):
        return  # unfitted: nothing to rebuild
    _resolve_components(estimator)
    _repack(estimator)
    if monitor is not None:
        estimator._monitor = _monitor(estimator, monitor)
    if isinstance(generator, dict):
        generator = _generator(generator["generator"])
    if generator is not None:
        estimator._dropout_rng = generator
    if hasattr(estimator, "_optimizer_state"):
        if not isinstance(kind, str):
            kind = None if kind is None else _qualified_name(kind)
        if kind == _qualified_name(type(estimator._optimizer)):
            estimator._optimizer_kind = type(estimator._optimizer)
        else:
            # (the optimizer was changed after fitting: the next partial_fit
            # starts a fresh state, as it would have without saving)
            del estimator._optimizer_state


def _monitor(estimator, counters):
    """The estimator's monitor as a fit makes it, with the saved counters."""
    from ._base import _uses_lbfgs

    if isinstance(counters, Monitor):  # (written before this module existed)
        return counters
    # (a solver's only property the monitor depends on: whether it steps with
    # a learning rate, so that the schedule applies)
    solver = SimpleNamespace(stepwise=not _uses_lbfgs(estimator))
    monitor = estimator._monitor_for(solver, incremental=False)
    vars(monitor).update(counters)
    return monitor


def _generator(state):
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _resolve_components(estimator):
    """The private component copies, resolved from the parameters as in fit."""
    # (imported here: _base imports this module, and _parameters _base's)
    from ._parameters import _hidden_layers
    from .optimizers import get_optimizer

    estimator._layers = _hidden_layers(
        estimator.activation, estimator.dropout, len(estimator.coefs_) - 1
    )
    estimator._optimizer = get_optimizer(estimator.optimizer)
    loss = estimator._resolve_loss()
    if is_classifier(estimator):
        # the output link chosen for the target, as _encode_target chose it
        loss = loss._for_target(
            "multilabel-indicator" if estimator._multilabel
            else type_of_target(estimator.classes_)
        )
    estimator._loss = loss


def _repack(estimator):
    """Parameters and optimizer buffers as views of one flat buffer again.

    Saving does not keep views (see :mod:`sklearn_bp._flat`): packing them again
    restores the one-pass updates of a freshly fitted estimator.
    """
    net = estimator._tabular_net()
    params = packed_copy(estimator._params())
    if net is None:
        n = len(estimator.coefs_)
        estimator.coefs_, estimator.intercepts_ = params[:n], params[n:]
    else:  # (the embedding's and the ensemble's arrays too, see _tabular)
        estimator._set_params(net, params)
    state = getattr(estimator, "_optimizer_state", None)
    if not isinstance(state, dict):
        return
    shapes = [p.shape for p in params]
    for key, value in state.items():
        if (
            isinstance(value, list)
            and [getattr(v, "shape", None) for v in value] == shapes
        ):
            state[key] = packed_copy(value)
