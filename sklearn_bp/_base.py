"""The estimator shared by BackpropClassifier and BackpropRegressor.

It validates, resolves the components, initialises or checks the parameters,
and hands epochs to :class:`~sklearn_bp._training.Trainer`; end-of-epoch
decisions come from :class:`~sklearn_bp._training.Monitor`. ``fit`` and
``partial_fit`` share this one path (``partial_fit`` is one epoch of it).
"""

import inspect
import time
import warnings
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
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from . import _network
from ._callbacks import CallbackSupportMixin, fitted_state, root_context
from ._training import LOWER_LR, STOP, DivergenceError, Monitor, Trainer
from .activations import ACTIVATIONS, Activation, get_activation
from .optimizers import OPTIMIZERS, Optimizer, get_optimizer

_COMPONENT_PARAMS = ("activation", "loss", "optimizer")

# scikit-learn < 1.7 neither rejects all-zero weights nor has this switch; our own
# check in _fit covers those versions.
_HAS_ZERO_WEIGHT_KW = (
    "allow_all_zero_weights" in inspect.signature(_check_sample_weight).parameters
)


def _take_rows(y, rows):
    return y[rows] if hasattr(y, "shape") else np.asarray(y)[rows]


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


class BaseBackprop(
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
        "activation": [StrOptions(set(ACTIVATIONS)), Activation],
        "optimizer": [StrOptions(set(OPTIMIZERS)), Optimizer],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [
            StrOptions({"auto"}),
            Interval(Integral, 1, None, closed="left"),
        ],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    @abstractmethod
    def __init__(
        self,
        hidden_layer_sizes,
        activation,
        loss,
        optimizer,
        learning_rate_init,
        learning_rate,
        power_t,
        alpha,
        batch_size,
        max_iter,
        shuffle,
        random_state,
        tol,
        n_iter_no_change,
        early_stopping,
        validation_fraction,
        warm_start,
        verbose,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate_init = learning_rate_init
        self.learning_rate = learning_rate
        self.power_t = power_t
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.warm_start = warm_start
        self.verbose = verbose

    def __getstate__(self):
        # The training workspace holds only scratch buffers (batch x width,
        # several per layer: often larger than the parameters). A resumed
        # partial_fit rebuilds it; the optimizer state and the generator,
        # which a resumed run does need, stay.
        state = super().__getstate__()
        state.pop("_workspace", None)
        return state

    # -- parameters -------------------------------------------------------------

    def set_params(self, **params):
        """Set the parameters of this estimator.

        Nested component parameters (``optimizer__beta_1=0.8``) need the
        component to be an instance, not a name.

        Parameters
        ----------
        **params : dict
            Estimator parameters.

        Returns
        -------
        self : estimator instance
            Estimator instance.
        """
        for key in params:
            name, sep, sub = key.partition("__")
            if sep and name in _COMPONENT_PARAMS:
                current = params.get(name, getattr(self, name, None))
                if isinstance(current, str):
                    raise ValueError(
                        f"Cannot set {key!r} while {name}={current!r} is given by "
                        f"name: nested parameters need an instance. Pass e.g. "
                        f"{name}=<{name.capitalize()} instance>({sub}=...) instead, "
                        f"such as optimizer=sklearn_bp.optimizers.Adam(beta_1=0.8)."
                    )
        return super().set_params(**params)

    # -- abstract hooks (classifier / regressor) --------------------------------

    @abstractmethod
    def _resolve_loss(self):
        """Private loss instance for ``self.loss``."""

    @abstractmethod
    def _encode_target(self, y, *, reset, classes, dtype, incremental):
        """Return ``(Y, y_for_split)``: 2-D encoded target and what stratifies."""

    @abstractmethod
    def _score_raw(self, raw, Y, sample_weight):
        """Held-out score used by early stopping, from raw outputs and encoded Y."""

    # -- fit orchestration ------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, *, incremental=False, classes=None):
        first_call = not hasattr(self, "coefs_") or not (self.warm_start or incremental)
        X, y, sample_weight = self._validate_input(
            X, y, sample_weight, first_call, incremental
        )
        Y, stratify = self._encode_target(
            y,
            reset=first_call,
            classes=classes,
            dtype=X.dtype,
            incremental=incremental,
        )
        self._loss._check_target(Y)
        sample_weight = self._apply_class_weight(sample_weight, y, X.dtype)
        if sample_weight is not None:
            self._check_weight_sum(sample_weight, incremental)
        layer_units = self._layer_units(X.shape[1], Y.shape[1])
        if first_call:
            self._initialize(layer_units, X.dtype)
        else:
            self._check_architecture(layer_units)
        if not incremental or not hasattr(self, "_optimizer_state"):
            self._reset_training_state()
        self._train(X, Y, sample_weight, stratify, incremental, y)
        return self

    @staticmethod
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

    def _validate_input(self, X, y, sample_weight, first_call, incremental):
        dtype = (np.float64, np.float32) if first_call else self.coefs_[0].dtype
        with _numbers_too_large_are_value_errors():
            X, y = validate_data(
                self,
                X,
                y,
                accept_sparse="csr",
                dtype=dtype,
                multi_output=True,
                y_numeric=is_regressor(self),
                reset=first_call,
            )
        if sample_weight is not None:
            # A partial_fit call whose weights are all zero is allowed (it
            # changes nothing); fit raises scikit-learn's own error.
            zero_ok = (
                {"allow_all_zero_weights": incremental} if _HAS_ZERO_WEIGHT_KW else {}
            )
            with _numbers_too_large_are_value_errors():
                sample_weight = _check_sample_weight(
                    sample_weight, X, dtype=X.dtype, ensure_non_negative=True, **zero_ok
                )
        self._activation = get_activation(self.activation)
        self._optimizer = get_optimizer(self.optimizer)
        self._loss = self._resolve_loss()
        return X, y, sample_weight

    def _apply_class_weight(self, sample_weight, y, dtype):
        return sample_weight

    def _layer_units(self, n_features, n_outputs):
        hidden = np.atleast_1d(np.asarray(self.hidden_layer_sizes))
        if hidden.ndim != 1 or (
            hidden.size and not np.issubdtype(hidden.dtype, np.integer)
        ):
            raise ValueError(
                "hidden_layer_sizes must be an int or a sequence of ints; got "
                f"{self.hidden_layer_sizes!r}."
            )
        if np.any(hidden <= 0):
            raise ValueError(
                "hidden_layer_sizes must contain only positive sizes; got "
                f"{self.hidden_layer_sizes!r}."
            )
        return [n_features, *map(int, hidden), n_outputs]

    def _initialize(self, layer_units, dtype):
        self._rng = check_random_state(self.random_state)
        self.coefs_, self.intercepts_ = _network.init_params(
            layer_units, self._activation, self._rng, dtype
        )
        self.n_layers_ = len(layer_units)
        self.n_outputs_ = layer_units[-1]
        self.n_iter_ = 0
        self.t_ = 0
        self.loss_curve_ = []
        for name in ("_optimizer_state", "_monitor", "_workspace"):
            self.__dict__.pop(name, None)

    def _check_architecture(self, layer_units):
        current = [self.coefs_[0].shape[0]] + [W.shape[1] for W in self.coefs_]
        if current != layer_units:
            raise ValueError(
                "The network's layer sizes changed from "
                f"{current} to {layer_units} (n_features, hidden_layer_sizes, "
                "n_outputs). warm_start and partial_fit continue training the "
                "existing weights and need the same architecture: set "
                "warm_start=False (or clone the estimator) to fit a new network."
            )

    def _reset_training_state(self):
        """Fresh optimizer state and monitor (fit; first partial_fit)."""
        params = self.coefs_ + self.intercepts_
        self._optimizer_state = self._optimizer.init_state(params)
        self._optimizer_kind = type(self._optimizer)
        self._monitor = Monitor(
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=self.early_stopping,
            schedule=self.learning_rate,
            learning_rate_init=self.learning_rate_init,
            power_t=self.power_t,
        )
        if not hasattr(self, "_rng"):
            self._rng = check_random_state(self.random_state)

    def _batch_size(self, n_samples):
        if self.batch_size == "auto":
            return min(200, n_samples)
        if self.batch_size > n_samples:
            warnings.warn(
                f"Got batch_size={self.batch_size} larger than the {n_samples} "
                "training samples; it is clipped to the number of samples.",
                UserWarning,
            )
        return min(self.batch_size, n_samples)

    def _train(self, X, Y, sample_weight, stratify, incremental, y):
        early_stopping = self.early_stopping and not incremental
        validation = None
        if early_stopping:
            X, Y, sample_weight, y, validation = self._split_validation(
                X, Y, sample_weight, y, stratify
            )
            self.validation_scores_, self.validation_loss_curve_ = [], []
        else:
            self.validation_scores_ = self.validation_loss_curve_ = None
        trainer = self._make_trainer(X.shape[0])
        best_params = [p.copy() for p in trainer.params] if early_stopping else None
        n_epochs = 1 if incremental else self.max_iter
        ctx = root_context(self, max_subtasks=n_epochs)
        # What callbacks see of the data: scorers receive the weights too.
        data = dict(
            X=X,
            y=y,
            metadata=None
            if sample_weight is None
            else {"sample_weight": sample_weight},
        )
        ctx.call_on_fit_task_begin(estimator=self, **data)
        try:
            converged = self._run_epochs(
                trainer,
                X,
                Y,
                sample_weight,
                validation,
                best_params,
                ctx,
                data,
                n_epochs=n_epochs,
                incremental=incremental,
            )
        except (DivergenceError, KeyboardInterrupt) as exc:
            self._sync_monitor_attributes(early_stopping)
            if isinstance(exc, KeyboardInterrupt):
                # The parameters stay finite and usable (an interrupted step is
                # undone whole, see Trainer.step); say so and let the interrupt
                # reach the caller: it is not ours to swallow. With early
                # stopping the fit ends as it would have: on the best weights.
                kept = "the parameters reached so far"
                if early_stopping and self.n_iter_ > 0:
                    for saved, p in zip(best_params, trainer.params, strict=True):
                        np.copyto(p, saved)
                    kept = "the best parameters found so far (early stopping)"
                warnings.warn(
                    f"Training interrupted by the user after {self.n_iter_} "
                    f"complete epochs; the estimator keeps {kept}.",
                    UserWarning,
                )
            raise
        finally:
            trainer.close()
        if not converged and not incremental:
            warnings.warn(
                f"Stochastic optimizer: maximum iterations ({self.max_iter}) "
                "reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
            )
        if early_stopping and self.n_iter_ > 0:
            # Restore the best parameters in place: coefs_ stay the live arrays.
            for saved, p in zip(best_params, trainer.params, strict=True):
                np.copyto(p, saved)
        self._sync_monitor_attributes(early_stopping)
        ctx.call_on_fit_task_end(
            estimator=self, reconstruction_attributes=fitted_state(self), **data
        )

    def _make_trainer(self, n_samples):
        if self._optimizer_kind is not type(self._optimizer):
            # A different kind of optimizer cannot use the old buffers.
            params = self.coefs_ + self.intercepts_
            self._optimizer_state = self._optimizer.init_state(params)
            self._optimizer_kind = type(self._optimizer)
        trainer = Trainer(
            self.coefs_,
            self.intercepts_,
            activation=self._activation,
            loss=self._loss,
            optimizer=self._optimizer,
            optimizer_state=self._optimizer_state,
            alpha=self.alpha,
            batch_size=self._batch_size(n_samples),
            shuffle=self.shuffle,
            rng=self._rng,
            workspace=getattr(self, "_workspace", None),
        )
        self._workspace = trainer.workspace
        return trainer

    def _run_epochs(
        self,
        trainer,
        X,
        Y,
        sample_weight,
        validation,
        best_params,
        ctx,
        data,
        *,
        n_epochs,
        incremental,
    ):
        """Run up to ``n_epochs`` epochs; return whether training stopped by itself."""
        monitor = self._monitor
        for _ in range(n_epochs):
            start = time.perf_counter()
            epoch_ctx = ctx.subcontext(task_name="epoch")
            epoch_ctx.call_on_fit_task_begin(estimator=self, **data)
            lr = monitor.learning_rate
            epoch_loss, n_seen = trainer.run_epoch(
                X, Y, sample_weight, lr, self.n_iter_ + 1
            )
            if epoch_loss is None:
                epoch_ctx.call_on_fit_task_end(estimator=self)
                return True  # every batch had zero weight: nothing to learn
            self.n_iter_ += 1
            self.t_ += n_seen
            self.loss_ = epoch_loss
            self.loss_curve_.append(epoch_loss)
            val_score = self._record_validation(validation)
            decision, improved = monitor.update(epoch_loss, val_score, self.t_)
            if improved:
                for saved, p in zip(best_params, trainer.params, strict=True):
                    np.copyto(saved, p)
            self._report_epoch(self.n_iter_, lr, time.perf_counter() - start)
            stop_requested = epoch_ctx.call_on_fit_task_end(
                estimator=self, reconstruction_attributes=fitted_state(self), **data
            )
            if decision == LOWER_LR and self.verbose:
                print(f"Learning rate lowered to {monitor.learning_rate:.3g}.")
            if decision == STOP and not incremental:
                if self.verbose:
                    print(self._stop_message())
                return True
            if stop_requested:
                return True
        return False

    def _record_validation(self, validation):
        """Score and loss on the held-out set (early stopping); its score."""
        if validation is None:
            return None
        X_val, Y_val, sw_val = validation
        raw = self._forward(X_val)  # one pass serves both the score and the loss
        score = self._score_raw(raw, Y_val, sw_val)
        self.validation_scores_.append(score)
        self.validation_loss_curve_.append(self._loss.loss(Y_val, raw, sw_val))
        return score

    def _sync_monitor_attributes(self, early_stopping):
        monitor = self._monitor
        if early_stopping:
            self.best_loss_ = None
            self.best_validation_score_ = monitor.best_validation_score
        else:
            self.best_loss_ = monitor.best_loss
            self.best_validation_score_ = None
        if not hasattr(self, "loss_"):
            self.loss_ = None

    def _split_validation(self, X, Y, sample_weight, y, stratify):
        """Hold out ``validation_fraction`` of the rows (stratified if asked)."""
        n_samples = X.shape[0]
        try:
            train, val = train_test_split(
                np.arange(n_samples),
                random_state=self._rng,
                test_size=self.validation_fraction,
                stratify=stratify,
            )
        except ValueError as exc:
            raise ValueError(
                f"early_stopping=True cannot hold out validation_fraction="
                f"{self.validation_fraction} of {n_samples} samples: {exc} Use more "
                "data, another validation_fraction or early_stopping=False."
            ) from exc
        sw_train = None if sample_weight is None else sample_weight[train]
        sw_val = None if sample_weight is None else sample_weight[val]
        # (Y may be stored compactly, e.g. uint8 indicators: the held-out
        # part is given to the loss and the score in the parameters' dtype)
        validation = (X[val], Y[val].astype(X.dtype, copy=False), sw_val)
        return X[train], Y[train], sw_train, _take_rows(y, train), validation

    def _report_epoch(self, epoch, lr, seconds):
        if not self.verbose:
            return
        parts = [f"Epoch {epoch}", f"loss = {self.loss_:.8f}"]
        if self.validation_scores_:
            parts.append(f"validation loss = {self.validation_loss_curve_[-1]:.8f}")
            parts.append(f"validation score = {self.validation_scores_[-1]:.6f}")
        parts.append(f"lr = {lr:.3g}")
        parts.append(f"{seconds:.3f} s")
        print(", ".join(parts))

    def _stop_message(self):
        what = "Validation score" if self.early_stopping else "Training loss"
        return (
            f"{what} did not improve more than tol={self.tol} for "
            f"{self.n_iter_no_change} consecutive epochs. Stopping."
        )

    # -- prediction -------------------------------------------------------------

    def _forward(self, X):
        """Raw network output for validated ``X``, computed in chunks."""
        return _network.predict_raw(self.coefs_, self.intercepts_, X, self._activation)

    def _validate_for_predict(self, X):
        check_is_fitted(self)
        with _numbers_too_large_are_value_errors():
            return validate_data(
                self, X, accept_sparse="csr", dtype=self.coefs_[0].dtype, reset=False
            )

    def transform(self, X):
        """Return the last hidden layer's activations, learned features of ``X``.

        Lets a fitted network feed another estimator, e.g. in a
        :class:`~sklearn.pipeline.Pipeline` or a
        :class:`~sklearn.pipeline.FeatureUnion`. With no hidden layer
        (``hidden_layer_sizes=()``) the input is returned as a dense array.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        features : ndarray of shape (n_samples, hidden_layer_sizes[-1])
            Hidden activations, same dtype as the parameters.
        """
        X = self._validate_for_predict(X)
        n_hidden = len(self.coefs_) - 1
        if n_hidden == 0:
            return X.toarray() if hasattr(X, "toarray") else np.array(X)
        return _network.predict_raw(
            self.coefs_, self.intercepts_, X, self._activation, n_layers=n_hidden
        )

    @property
    def _n_features_out(self):
        """Width of the features returned by :meth:`transform`."""
        return self.coefs_[-1].shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
