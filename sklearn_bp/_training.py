"""The epoch loop and the monitor that decides, after each epoch, what comes next.

:class:`Trainer` runs one epoch of mini-batch steps on parameters it does not
own (the estimator's live ``coefs_`` and ``intercepts_``). :class:`Monitor`
keeps the stopping bookkeeping (best loss or validation score, epochs without
improvement, the learning-rate schedule) and returns a decision instead of
raising, so that a real exception is never mistaken for a stop.
"""

import math
from contextlib import nullcontext

import numpy as np
from scipy import sparse
from sklearn.utils import gen_batches

from ._flat import flat_base, packed_copy
from ._fused import FusedStep, fusable, single_threaded_blas, thread_budget
from ._network import Workspace, loss_and_gradients, needs_pre_activations
from .optimizers import SGD, Adam, RMSprop

CONTINUE, LOWER_LR, STOP = "continue", "lower_lr", "stop"

# The adaptive schedule stops once the learning rate would fall below this
# (MLPClassifier's threshold).
MIN_ADAPTIVE_LR = 1e-6


def _all_finite(arrays):
    # A sum propagates inf/nan and needs no temporary array (a sum of finite
    # values that overflows also counts: such parameters have diverged anyway).
    # Callers silence numpy's overflow warnings (Trainer.step does, once).
    return all(math.isfinite(a.sum()) for a in arrays)


class DivergenceError(ValueError):
    """Raised when a batch's loss or gradient, or an update, is not finite.

    The failing step is not applied, and the parameters are restored to their
    last values whose loss and gradient were finite (those before the previous
    step, which made them overflow): the model can still predict.
    """


class Trainer:
    """Run epochs of mini-batch backpropagation on the given parameters.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Live parameters, updated in place.
    activation, loss, optimizer : component instances
        Resolved private components.
    optimizer_state : dict
        The optimizer's state, updated in place.
    alpha : float
        L2 penalty.
    batch_size : int
        Rows per batch.
    shuffle : bool
        Whether to visit the rows in a new random order each epoch.
    rng : numpy.random.RandomState
        Source of the shuffling order.
    workspace : Workspace or None
        Buffers from a previous epoch to reuse, if they still fit.
    """

    def __init__(self, coefs, intercepts, *, activation, loss, optimizer,
                 optimizer_state, alpha, batch_size, shuffle, rng, workspace=None):
        self.coefs = coefs
        self.intercepts = intercepts
        self.params = list(coefs) + list(intercepts)
        self.activation = activation
        self.loss = loss
        self.optimizer = optimizer
        self.optimizer_state = optimizer_state
        self.alpha = float(alpha)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = rng
        units = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
        dtype = coefs[0].dtype
        keep_Z = needs_pre_activations(activation)
        scratch_dtype = getattr(activation, "_scratch_dtype", None)
        if (
            workspace is None
            or workspace.n_rows != batch_size
            or not workspace.matches(units, dtype, keep_Z, scratch_dtype)
        ):
            workspace = Workspace(units, batch_size, dtype, keep_Z, scratch_dtype)
        self.workspace = workspace
        self._batch_buffers = None
        self._target_buffer = None
        # Largest lr * alpha / (batch weight) seen, with that batch weight: a
        # step it made huge can make a later batch diverge (_penalty_hint).
        self._penalty_rate = (0.0, None)
        # The parameters before the last step. A step can leave parameters
        # that are finite but so large that the next forward pass overflows
        # (an absurd learning rate): the divergence shows one batch later, and
        # the model must go back to parameters whose loss was finite, or it
        # could not even predict. One copy per step, O(parameters), cheap next
        # to the batch's products.
        self._previous = packed_copy(self.params)
        # Packed lists (see sklearn_bp._flat) are copied and checked as one
        # array: one numpy call per step instead of one per layer.
        flat_params = flat_base(self.params)
        self._params_flat = self.params if flat_params is None else [flat_params]
        self._previous_flat = (
            self._previous if flat_params is None else [self._previous[0].base]
        )
        self._grads_flat = None  # found on the first generic step
        # the built-in optimizers (not subclasses: they may redefine step)
        # fuse the backup and the check into their update
        self._fused = type(optimizer) in (SGD, Adam, RMSprop)
        # The fused multi-threaded step (see sklearn_bp._fused), made on the
        # first epoch whose data qualify; close() stops its threads.
        self._fused_step = None

    def close(self):
        """Release the fused step's threads (the trainer can still be used)."""
        if self._fused_step is not None:
            self._fused_step.close()
            self._fused_step = None

    def _prepare_fused(self, X):
        """Set up the fused step for ``X``'s batches if it applies; the context
        to run the epoch in (one BLAS thread while the step's threads work)."""
        if not fusable(self.coefs, self.intercepts, self.optimizer, X):
            self.close()
            return nullcontext()
        if self._fused_step is None:
            self._fused_step = FusedStep(
                self.coefs, self.intercepts, self._previous,
                activation=self.activation, loss=self.loss,
                optimizer=self.optimizer, optimizer_state=self.optimizer_state,
                alpha=self.alpha, workspace=self.workspace,
                n_threads=thread_budget(),
            )
        if self._fused_step.threads.n_threads > 1:
            return single_threaded_blas()
        return nullcontext()

    def run_epoch(self, X, Y, sample_weight, lr, epoch):
        """One pass over the data.

        Parameters
        ----------
        X : {ndarray, CSR matrix} of shape (n_samples, n_features)
        Y : ndarray of shape (n_samples, n_outputs)
        sample_weight : ndarray of shape (n_samples,) or None
        lr : float
            Learning rate for every step of this epoch.
        epoch : int
            1-based epoch number, for error messages.

        Returns
        -------
        mean_loss : float or None
            Weighted mean of the batches' losses, ``None`` if every batch had
            zero total weight.
        n_seen : int
            Rows in the batches that were used (``t_`` grows by this).
        """
        n_samples = X.shape[0]
        order = self.rng.permutation(n_samples) if self.shuffle else None
        # Batches are weighted by their share of the epoch's total weight, in
        # (0, 1]: value * batch_weight could overflow with huge sample weights.
        total_weight = (
            n_samples if sample_weight is None else float(np.sum(sample_weight))
        )
        loss_sum = weight_sum = 0.0
        n_seen = 0
        with self._prepare_fused(X):
            for batch, rows in enumerate(
                gen_batches(n_samples, self.batch_size), start=1
            ):
                Xb, Yb, swb = self._gather(X, Y, sample_weight, rows, order)
                batch_weight = Xb.shape[0] if swb is None else float(np.sum(swb))
                if batch_weight <= 0:
                    continue  # nothing to learn from; no step, no loss, t_ unchanged
                if swb is not None and self.alpha:
                    self._note_penalty(batch_weight, lr)
                value = self.step(Xb, Yb, swb, lr, epoch, batch)
                share = batch_weight / total_weight
                loss_sum += value * share
                weight_sum += share
                n_seen += Xb.shape[0]
        if weight_sum == 0:
            return None, 0
        return loss_sum / weight_sum, n_seen

    def step(self, X, Y, sample_weight, lr, epoch=1, batch=1):
        """Forward, backward and one optimizer step on one batch; return its loss."""
        # Overflow is detected below and reported as one clear error; numpy's
        # RuntimeWarnings on the way there would only be noise. (One errstate
        # for the whole step: entering one costs as much as a small ufunc.)
        with np.errstate(over="ignore", invalid="ignore"):
            return self._step(X, Y, sample_weight, lr, epoch, batch)

    def _step(self, X, Y, sample_weight, lr, epoch, batch):
        where = (epoch, batch, sample_weight, lr)
        if self._fused_step is not None:
            result = self._fused_step.run(X, Y, sample_weight, lr)
            # None: the gradients could not be proven finite without computing
            # them; nothing was changed, and the generic step below decides.
            if result is not None:
                value, finite = result
                if not math.isfinite(value):
                    self._fail_loss(value, *where)
                if not finite:
                    self._fail_update(value, *where)
                return value
        value, coef_grads, intercept_grads = loss_and_gradients(
            self.coefs, self.intercepts, X, Y, sample_weight,
            self.activation, self.loss, self.alpha, self.workspace,
        )
        grads = coef_grads + intercept_grads
        if self._grads_flat is None:
            flat_grads = flat_base(grads)
            self._grads_flat = grads if flat_grads is None else [flat_grads]
        if not np.isfinite(value) or not _all_finite(self._grads_flat):
            self._fail_loss(value, *where)
        try:
            if self._fused:
                # The built-ins copy each block into the backup and check it
                # within their own pass (see optimizers._run).
                finite = self.optimizer._step(
                    self.params, grads, self.optimizer_state, lr, backup=self._previous
                )
            else:
                for saved, p in zip(
                    self._previous_flat, self._params_flat, strict=True
                ):
                    np.copyto(saved, p)
                self.optimizer.step(self.params, grads, self.optimizer_state, lr)
                finite = _all_finite(self._params_flat)
        except BaseException:
            # An update interrupted half-way (KeyboardInterrupt between two
            # layers) is undone, so the parameters are never half-stepped.
            self._roll_back()
            raise
        if not finite:
            self._fail_update(value, *where)
        return value

    def _fail_loss(self, value, epoch, batch, sample_weight, lr):
        self._roll_back()
        raise self._divergence(
            f"The training loss or its gradient became non-finite at epoch "
            f"{epoch}, batch {batch} (loss={value!r})", sample_weight, lr,
        )

    def _fail_update(self, value, epoch, batch, sample_weight, lr):
        self._roll_back()
        raise self._divergence(
            f"The update at epoch {epoch}, batch {batch} made the parameters "
            f"non-finite (loss before it={value!r})", sample_weight, lr,
        )

    def _roll_back(self):
        """Restore the parameters from before the last step (see __init__)."""
        for p, saved in zip(self.params, self._previous, strict=True):
            np.copyto(p, saved)

    def _divergence(self, what, sample_weight, lr):
        return DivergenceError(
            f"{what}; the parameters were restored to their last values with a "
            "finite loss and gradient. Try a smaller learning_rate_init or scale "
            "the inputs (e.g. with sklearn.preprocessing.StandardScaler)."
            + self._penalty_hint(sample_weight, lr)
        )

    def _penalty_hint(self, sample_weight, lr):
        """Name the L2 term as the cause when tiny sample weights blew it up.

        The penalty is ``alpha / (2 * sum of the batch's weights) * ||W||^2``,
        so weights that sum to ~1e-300 make it (and its gradient) astronomical:
        a learning rate cannot fix that, rescaling the weights can.
        """
        if sample_weight is None or not self.alpha:
            return ""
        self._note_penalty(float(np.sum(sample_weight)), lr)
        rate, batch_weight = self._penalty_rate
        if rate < 1:  # each step shrinks the weights by less than lr * l2 < 1
            return ""
        return (
            f" A batch's sample weights summed to {batch_weight:.3g}, so the L2 "
            "penalty's coefficient alpha / sum(sample_weight) was "
            f"{self.alpha / batch_weight:.3g}: scale sample_weight up (e.g. "
            "divide it by its mean) or lower alpha."
        )

    def _note_penalty(self, batch_weight, lr):
        rate = float(lr) * self.alpha / batch_weight if batch_weight > 0 else np.inf
        if not rate <= self._penalty_rate[0]:  # also inf
            self._penalty_rate = (rate, batch_weight)

    def _gather(self, X, Y, sample_weight, rows, order):
        """The batch's rows: views when not shuffled, else copies into buffers."""
        if order is None:
            sw = None if sample_weight is None else sample_weight[rows]
            return X[rows], self._in_param_dtype(Y[rows]), sw
        idx = order[rows]
        if sparse.issparse(X):
            Xb = X[idx]
        else:
            if self._batch_buffers is None or self._batch_buffers[0].dtype != X.dtype:
                self._batch_buffers = (
                    np.empty((self.batch_size, X.shape[1]), dtype=X.dtype),
                    np.empty((self.batch_size, Y.shape[1]), dtype=Y.dtype),
                )
            n = idx.shape[0]
            Xb = np.take(X, idx, axis=0, out=self._batch_buffers[0][:n])
        if self._batch_buffers is None:
            Yb = Y[idx]
        else:
            Yb = np.take(Y, idx, axis=0, out=self._batch_buffers[1][: idx.shape[0]])
        sw = None if sample_weight is None else sample_weight[idx]
        return Xb, self._in_param_dtype(Yb), sw

    def _in_param_dtype(self, Yb):
        """The batch's targets in the parameters' dtype.

        A classifier keeps its 0/1 targets compactly (uint8); the loss gets
        each batch converted into a buffer of the parameters' dtype.
        """
        dtype = self.coefs[0].dtype
        if Yb.dtype == dtype:
            return Yb
        buffer = self._target_buffer
        if buffer is None or buffer.shape[1] != Yb.shape[1] or buffer.dtype != dtype:
            buffer = self._target_buffer = np.empty(
                (self.batch_size, Yb.shape[1]), dtype=dtype
            )
        out = buffer[: Yb.shape[0]]
        np.copyto(out, Yb)
        return out


class Monitor:
    """End-of-epoch bookkeeping: improvement, stopping and learning rate.

    Follows MLPClassifier's rules: an epoch "does not improve" when the training
    loss is not below ``best_loss - tol`` (or, with early stopping, the
    validation score not above ``best_score + tol``); after more than
    ``n_iter_no_change`` such epochs in a row, training stops, or with the
    ``"adaptive"`` schedule the learning rate is divided by 5 (and training stops
    once it is below 1e-6).

    Parameters
    ----------
    tol : float
    n_iter_no_change : int
    early_stopping : bool
    schedule : {"constant", "invscaling", "adaptive"}
    learning_rate_init : float
    power_t : float
    """

    def __init__(self, *, tol, n_iter_no_change, early_stopping, schedule,
                 learning_rate_init, power_t):
        self.tol = float(tol)
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.schedule = schedule
        self.learning_rate_init = float(learning_rate_init)
        self.power_t = float(power_t)
        self.learning_rate = self.learning_rate_init
        self.no_improvement_count = 0
        self.best_loss = np.inf
        self.best_validation_score = -np.inf

    def update(self, train_loss, validation_score, t):
        """Record one epoch and decide what comes next.

        Parameters
        ----------
        train_loss : float
            The epoch's mean training loss.
        validation_score : float or None
            Held-out score when early stopping is on; ``None`` for an epoch
            without held-out data (``partial_fit`` never holds data out, even
            with ``early_stopping=True``), which is judged on ``train_loss``.
        t : int
            Training samples seen so far (for the ``"invscaling"`` schedule).

        Returns
        -------
        decision : {"continue", "lower_lr", "stop"}
        improved : bool
            Whether the validation score is a new best (the caller keeps a
            copy of the parameters then).
        """
        improved = False
        if self.early_stopping and validation_score is not None:
            if validation_score < self.best_validation_score + self.tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            if validation_score > self.best_validation_score:
                self.best_validation_score = validation_score
                improved = True
        else:
            if train_loss > self.best_loss - self.tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            if train_loss < self.best_loss:
                self.best_loss = train_loss
        if self.schedule == "invscaling":
            self.learning_rate = self.learning_rate_init / (t + 1) ** self.power_t
        if self.no_improvement_count <= self.n_iter_no_change:
            return CONTINUE, improved
        self.no_improvement_count = 0
        if self.schedule == "adaptive" and self.learning_rate > MIN_ADAPTIVE_LR:
            self.learning_rate /= 5.0
            return LOWER_LR, improved
        return STOP, improved
