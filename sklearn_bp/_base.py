"""The estimator shared by BackpropClassifier and BackpropRegressor.

It validates, encodes the target, resolves the components, initialises or
checks the parameters, hands them with the data to
:func:`sklearn_bp._training.train` (with a solver from
:mod:`sklearn_bp._solvers`) and stores what comes back. ``fit`` and
``partial_fit`` share this one path (``partial_fit`` is one epoch of it).
"""

import inspect
from abc import ABCMeta, abstractmethod
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    is_regressor,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from ._callbacks import CallbackSupportMixin, Listeners
from ._init import WEIGHT_INITS
from ._parameters import ParametersMixin, _hidden_layers, _hidden_sizes, _is_sequence
from ._solvers import LBFGSSolver, StochasticSolver
from ._training import History, Monitor, Plan, train
from .activations import ACTIVATIONS, Activation
from .embeddings import EMBEDDINGS, Embedding
from .optimizers import LBFGS, OPTIMIZERS, SOLVERS, Optimizer, get_optimizer
from .schedules import SCHEDULES, Constant, Schedule, get_schedule

# The parameters that take components: the base class of their instances and an
# instance with a nested parameter, for the error on a nested parameter of a name.
_COMPONENT_PARAMS = {
    "activation": ("Activation", "sklearn_bp.activations.ELU(alpha=0.5)"),
    "loss": ("Loss", "sklearn_bp.losses.Huber(delta=2.0)"),
    "optimizer": ("Optimizer", "sklearn_bp.optimizers.Adam(beta_1=0.8)"),
    "learning_rate": ("Schedule", "sklearn_bp.schedules.StepDecay(step_size=10)"),
}

# MLPClassifier's parameter names that have another name here: a search grid
# written for MLP gets told what to write instead.
_MLP_NAMES = {
    "solver": "optimizer (e.g. optimizer='lbfgs' or optimizer='adam')",
    "momentum": "optimizer__momentum, with optimizer=SGD(...)",
    "nesterovs_momentum": "optimizer__nesterov, with optimizer=SGD(...)",
    "beta_1": "optimizer__beta_1, with optimizer=Adam(...)",
    "beta_2": "optimizer__beta_2, with optimizer=Adam(...)",
    "epsilon": "optimizer__epsilon, with optimizer=Adam(...) or RMSprop(...)",
}

# scikit-learn < 1.7 neither rejects all-zero weights nor has this switch; our own
# check in _fit covers those versions.
_HAS_ZERO_WEIGHT_KW = (
    "allow_all_zero_weights" in inspect.signature(_check_sample_weight).parameters
)


@contextmanager
def _numbers_too_large_are_value_errors():
    """Turn numpy's OverflowError on huge Python ints into a ValueError.

    Object arrays may hold ints beyond the float range (``10**400``);
    converting them raises ``OverflowError``, which is a bad-input error like
    scikit-learn's "Input X contains infinity" and should read as one.
    """
    try:
        yield
    except OverflowError as exc:
        raise ValueError(
            f"The input contains a number too large for a floating-point array "
            f"({exc}). Scale the data down, or drop the offending values."
        ) from exc


def _check_weight_sum(sample_weight, incremental):
    total = np.sum(sample_weight)
    if not np.isfinite(total):
        # Each weight is finite (checked by validation) but the batches'
        # weighted means divide by their sum, which must be finite too.
        raise ValueError(
            "The sample weights sum to more than the largest "
            f"{sample_weight.dtype} ({np.finfo(sample_weight.dtype).max:.3g}). "
            "Scale them down, e.g. divide them by their maximum."
        )
    if not total > 0 and not incremental:
        # Reached with scikit-learn < 1.7, or when class_weight zeroes
        # every sample; a partial_fit call like that changes nothing.
        raise ValueError(
            "The sample weights sum to zero: there is nothing to fit. "
            "Give at least one sample a positive weight."
        )


def _check_param_names(estimator, params):
    """MLP's names and nested parameters of named components, explained."""
    for key in params:
        name, sep, sub = key.partition("__")
        if key in _MLP_NAMES:
            raise ValueError(
                f"{key!r} is MLPClassifier's parameter; {type(estimator).__name__} "
                f"calls it {_MLP_NAMES[key]}."
            )
        if sep and name in _COMPONENT_PARAMS:
            current = params.get(name, getattr(estimator, name, None))
            if isinstance(current, str):
                raise ValueError(
                    f"Cannot set {key!r} while {name}={current!r} is given by "
                    f"name: nested parameters need an instance. Pass e.g. "
                    f"{name}=<{_COMPONENT_PARAMS[name][0]} instance>({sub}=...) "
                    f"instead, such as {name}={_COMPONENT_PARAMS[name][1]}."
                )


def _validated_weights(sample_weight, X, incremental):
    # A partial_fit call whose weights are all zero is allowed (it changes
    # nothing); fit raises scikit-learn's own error.
    zero_ok = {"allow_all_zero_weights": incremental} if _HAS_ZERO_WEIGHT_KW else {}
    return _check_sample_weight(
        sample_weight, X, dtype=X.dtype, ensure_non_negative=True, **zero_ok
    )


def _copy(values):
    return None if values is None else list(values)


def _uses_lbfgs(estimator):
    """Whether ``estimator.optimizer`` names the full-batch L-BFGS solver."""
    optimizer = estimator.optimizer
    return isinstance(optimizer, LBFGS) or (
        isinstance(optimizer, str) and optimizer in SOLVERS
    )


def _check_deterministic(estimator):
    """L-BFGS's line search needs the same objective at every evaluation."""
    for name, off in (("dropout", 0.0), ("clip_grad_norm", None)):
        value = getattr(estimator, name)
        if any(v != off for v in (value if _is_sequence(value) else [value])):
            raise ValueError(
                f"{name}={value!r} does not work with optimizer='lbfgs': "
                + ("dropout makes the objective random, which breaks L-BFGS's "
                   "line search" if name == "dropout" else
                   "a clipped gradient is not the objective's gradient, which "
                   "L-BFGS's line search relies on")
                + f". Set {name}={off!r}, or use a stochastic optimizer "
                "('adam', 'sgd', 'rmsprop')."
            )


def _offers_partial_fit(estimator):
    # as MLP: no partial_fit with L-BFGS, hasattr(est, "partial_fit") is False
    return not _uses_lbfgs(estimator)


class BaseBackprop(
    ParametersMixin,
    CallbackSupportMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
    metaclass=ABCMeta,
):
    """Base class of the backpropagation estimators. Not for direct use.

    The estimators are also transformers: :meth:`transform` returns the last
    hidden layer's activations, so a fitted network can feed another estimator.
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(Integral, 1, None, closed="left"),
        ],
        "activation": [StrOptions(set(ACTIVATIONS)), Activation, "array-like"],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "weight_init": [StrOptions(set(WEIGHT_INITS)), callable],
        "embedding": [None, StrOptions(set(EMBEDDINGS)), Embedding],
        "ensemble_size": [Interval(Integral, 1, None, closed="left")],
        "ensemble_type": [StrOptions({"tabm", "tabm-mini"})],
        "optimizer": [StrOptions(set(OPTIMIZERS) | set(SOLVERS)), Optimizer, LBFGS],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions(set(SCHEDULES)), Schedule],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "clip_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [
            Interval(Integral, 1, None, closed="left"),
            Options(Real, {np.inf}),
        ],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    @abstractmethod
    def __init__(self, hidden_layer_sizes, activation, dropout, weight_init,
                 embedding, ensemble_size, ensemble_type, loss, optimizer,
                 learning_rate_init, learning_rate, power_t, alpha, clip_grad_norm,
                 batch_size, max_iter, max_fun, shuffle, random_state, tol,
                 n_iter_no_change, early_stopping, validation_fraction, warm_start,
                 verbose):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.weight_init = weight_init
        self.embedding = embedding
        self.ensemble_size = ensemble_size
        self.ensemble_type = ensemble_type
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.alpha = alpha
        self.clip_grad_norm = clip_grad_norm
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.max_fun = max_fun
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.verbose = verbose

    # -- parameters -------------------------------------------------------------

    def set_params(self, **params):
        """Set the parameters of this estimator.

        Nested component parameters (``optimizer__beta_1=0.8``) need the
        component to be an instance, not a name. MLP's names for the
        optimizer's settings (``solver``, ``momentum``, ``beta_1``, ...) raise a
        ValueError that gives the name to use here.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        _check_param_names(self, params)
        return super().set_params(**params)

    # -- abstract hooks (classifier / regressor) --------------------------------

    @abstractmethod
    def _resolve_loss(self):
        """Private loss instance for ``self.loss``."""

    @abstractmethod
    def _encode_target(self, y, *, reset, classes, dtype, incremental):
        """Return ``(Y, stratify)``: the 2-D encoded target and what stratifies
        the held-out split; may replace ``self._loss`` by its fitted form."""

    @abstractmethod
    def _score_raw(self, raw, Y, sample_weight):
        """Held-out score used by early stopping, from raw outputs and encoded Y."""

    def _apply_class_weight(self, sample_weight, y, dtype):
        return sample_weight

    # -- fit: validate, resolve, initialise, train, store ----------------------

    def _fit(self, X, y, sample_weight=None, *, incremental=False, classes=None):
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: it has no "
                "held-out set to stop on. Use fit, or set early_stopping=False."
            )
        first_call = not hasattr(self, "coefs_") or not (self.warm_start or incremental)
        X, y, sample_weight = self._validate_input(X, y, sample_weight, first_call,
                                                   incremental)
        self._layers = _hidden_layers(self.activation, self.dropout,
                                      len(_hidden_sizes(self.hidden_layer_sizes)))
        self._optimizer = get_optimizer(self.optimizer)
        self._loss = self._resolve_loss()
        Y, stratify = self._encode_target(y, reset=first_call, classes=classes,
                                          dtype=X.dtype, incremental=incremental)
        self._loss._check_target(Y)
        sample_weight = self._apply_class_weight(sample_weight, y, X.dtype)
        if sample_weight is not None:
            _check_weight_sum(sample_weight, incremental)
        # MLP's order of draws: a fresh generator per call, then the initial
        # weights, the held-out split, the shuffles.
        rng = check_random_state(self.random_state)
        self._prepare_parameters(X, Y.shape[1], first_call, rng, sample_weight)
        history = self._history(first_call, incremental)
        dropout_rng = self._dropout_generator(rng, incremental)
        solver = self._solver(rng, incremental, dropout_rng)
        monitor = self._monitor_for(solver, incremental)
        plan = self._plan(solver, rng, incremental)
        listeners = Listeners(self, plan.max_iter, task_name=plan.unit)
        try:
            train(plan, solver, self._params(),
                  (X, Y, sample_weight, y, stratify), monitor=monitor,
                  history=history, listeners=listeners)
        finally:
            self._store(history, monitor)
        return self

    def _validate_input(self, X, y, sample_weight, first_call, incremental):
        dtype = (np.float64, np.float32) if first_call else self.coefs_[0].dtype
        with _numbers_too_large_are_value_errors():
            X, y = validate_data(self, X, y, accept_sparse="csr", dtype=dtype,
                                 multi_output=True, y_numeric=is_regressor(self),
                                 reset=first_call)
            if sample_weight is not None:
                sample_weight = _validated_weights(sample_weight, X, incremental)
        return X, y, sample_weight

    def _history(self, first_call, incremental):
        """Where this call's record starts: t_ and loss_curve_ accumulate,
        n_iter_ only over partial_fit calls (MLP)."""
        if first_call:
            return History()
        return History(
            n_iter=self.n_iter_ if incremental else 0, t=self.t_,
            loss_curve=list(self.loss_curve_), loss=self.loss_,
            # (held-out curves go on with early stopping, as loss_curve_ does)
            **(dict(validation_scores=_copy(self.validation_scores_),
                    validation_loss_curve=_copy(self.validation_loss_curve_))
               if self.early_stopping and not incremental else {}),
        )

    def _monitor_for(self, solver, incremental):
        """The stopping rule and schedule. partial_fit calls share one; a warm
        start keeps the best values and the count of iterations without
        improvement, with the learning rate starting afresh (MLP)."""
        schedule = get_schedule(self.learning_rate, power_t=self.power_t)
        previous = getattr(self, "_monitor", None)
        if incremental and previous is not None:
            return previous
        monitor = Monitor(
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change
            if solver.stepwise or self.early_stopping
            else np.inf,
            early_stopping=self.early_stopping,
            # (L-BFGS has no learning rate)
            schedule=schedule if solver.stepwise else Constant(),
            learning_rate_init=self.learning_rate_init,
            max_iter=self.max_iter,
            samples_seen=getattr(self, "t_", 0),  # (a warm start continues t_)
        )
        if previous is not None:  # (a first call has none)
            monitor.carry_over(previous)
        return monitor

    def _plan(self, solver, rng, incremental):
        return Plan(
            loss=self._loss, forward=self._raw_output, score=self._score_raw,
            max_iter=1 if incremental else self.max_iter,
            early_stopping=self.early_stopping,
            validation_fraction=self.validation_fraction, rng=rng,
            verbose=bool(self.verbose), incremental=incremental,
            unit=solver.unit,
        )

    def _solver(self, rng, incremental, dropout_rng):
        net = self._tabular_net()
        components = dict(layers=self._layers, loss=self._loss, alpha=self.alpha,
                          extras=self._params()[2 * len(self.coefs_):], tabular=net)
        if isinstance(self._optimizer, LBFGS):
            _check_deterministic(self)
            return LBFGSSolver(self.coefs_, self.intercepts_, spec=self._optimizer,
                               max_fun=self.max_fun, tol=self.tol, **components)
        if (
            not incremental
            or not hasattr(self, "_optimizer_state")
            or self._optimizer_kind is not type(self._optimizer)
        ):
            # fit, or a first partial_fit, or another kind of optimizer
            self._optimizer_state = self._optimizer.init_state(self._params())
            self._optimizer_kind = type(self._optimizer)
        return StochasticSolver(
            self.coefs_, self.intercepts_, optimizer=self._optimizer,
            optimizer_state=self._optimizer_state, batch_size=self.batch_size,
            shuffle=self.shuffle, rng=rng, dropout_rng=dropout_rng,
            clip_grad_norm=self.clip_grad_norm, **components,
        )

    def _store(self, history, monitor):
        self._monitor = monitor
        self.n_iter_ = history.n_iter
        self.t_ = history.t
        self.loss_ = history.loss
        self.loss_curve_ = history.loss_curve
        self.validation_scores_ = history.validation_scores
        self.validation_loss_curve_ = history.validation_loss_curve
        self.best_loss_ = None if self.early_stopping else monitor.best_loss
        self.best_validation_score_ = (
            monitor.best_validation_score if self.early_stopping else None
        )

    # -- prediction -------------------------------------------------------------

    def _forward(self, X):
        """Raw network output for validated ``X``, computed in chunks (an
        ensemble's members combined, see :func:`_tabular.combine_members`)."""
        return self._raw_output(X)

    def _validate_for_predict(self, X):
        check_is_fitted(self)
        with _numbers_too_large_are_value_errors():
            return validate_data(
                self, X, accept_sparse="csr", dtype=self.coefs_[0].dtype, reset=False
            )

    # (defined in this class's body so that scikit-learn's set_output wraps
    # it: it wraps only the methods a TransformerMixin subclass defines itself)
    transform = ParametersMixin.transform

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- persistence: pickle, joblib and skops (see sklearn_bp._persistence) ----

    def __getstate__(self):
        from ._persistence import saved_state  # (it imports this module)

        return saved_state(self, super().__getstate__())

    def __setstate__(self, state):
        from ._persistence import restore

        restore(self, state, super().__setstate__)
