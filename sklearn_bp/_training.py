"""The training loop that every solver shares, and its stopping monitor.

:func:`train` takes what the estimator resolved (a :class:`Plan`, a solver,
the live parameters, the data) and does what happens around each iteration,
the same for every solver: the held-out split and early stopping with the
best-weight restore, the stopping rule and the learning-rate schedule
(:class:`Monitor`), verbose lines, the ``sklearn.callback`` subtasks,
KeyboardInterrupt handling and the convergence warning. It writes what the fit
learned into a :class:`History` the estimator stores; nothing here calls back
into the estimator.
"""

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ._callbacks import fitted_state
from ._step import DivergenceError, divergence

__all__ = ["DivergenceError", "History", "Monitor", "Plan", "train"]

CONTINUE, LOWER_LR, STOP = "continue", "lower_lr", "stop"


class Monitor:
    """End-of-iteration bookkeeping: improvement, stopping and learning rate.

    Follows MLPClassifier's rules: an iteration "does not improve" when the
    training loss is not below ``best_loss - tol`` (or, with early stopping, the
    validation score not above ``best_score + tol``); after more than
    ``n_iter_no_change`` such iterations in a row the schedule's
    ``on_plateau`` decides: stop (every built-in but ``"adaptive"``), or go on
    at another rate. ``n_iter_no_change=np.inf`` never stops.

    The monitor is the schedule's state: the epoch count and the current rate
    (the estimator keeps it between ``partial_fit`` calls; the schedule spec
    stays stateless).

    Parameters
    ----------
    tol : float
    n_iter_no_change : int or float
    early_stopping : bool
    schedule : sklearn_bp.schedules.Schedule
        A private, validated instance.
    learning_rate_init : float
    max_iter : int
        The estimator's ``max_iter``: the default length of a schedule.
    samples_seen : int, default=0
        ``t_`` before this fit (a warm start continues it).
    """

    def __init__(self, *, tol, n_iter_no_change, early_stopping, schedule,
                 learning_rate_init, max_iter, samples_seen=0):
        self.tol = float(tol)
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.schedule = schedule
        self.learning_rate_init = float(learning_rate_init)
        self.max_iter = int(max_iter)
        self.epoch = 0  # of the schedule: the next iteration's number
        self.learning_rate = self._scheduled(self.learning_rate_init, samples_seen)
        self.no_improvement_count = 0
        self.best_loss = np.inf
        self.best_validation_score = -np.inf

    def update(self, train_loss, validation_score, t):
        """Record one iteration and decide what comes next.

        Parameters
        ----------
        train_loss : float
            The iteration's mean training loss.
        validation_score : float or None
            Held-out score when early stopping is on, else ``None``: the
            iteration is judged on ``train_loss``.
        t : int
            Training samples seen so far (for the ``"invscaling"`` schedule).

        Returns
        -------
        decision : {"continue", "lower_lr", "stop"}
        improved : bool
            Whether the validation score is a new best (the caller keeps a
            copy of the parameters then).
        """
        if self.early_stopping and validation_score is not None:
            improved = self._count(validation_score, self.best_validation_score)
            if improved:
                self.best_validation_score = validation_score
        else:
            improved = False
            if self._count(-train_loss, -self.best_loss):
                self.best_loss = train_loss
        self.epoch += 1
        self.learning_rate = self._scheduled(self.learning_rate, t)
        if self.no_improvement_count <= self.n_iter_no_change:
            return CONTINUE, improved
        self.no_improvement_count = 0
        lowered = self.schedule.on_plateau(self.learning_rate)
        if lowered is None:
            return STOP, improved
        self.learning_rate = self._checked(lowered, "on_plateau")
        return LOWER_LR, improved

    def _scheduled(self, last_rate, samples_seen):
        rate = self.schedule.rate(
            self.epoch, last_rate=last_rate,
            learning_rate_init=self.learning_rate_init, max_iter=self.max_iter,
            samples_seen=samples_seen,
        )
        return self._checked(rate, "rate")

    def _checked(self, rate, method):
        # A Python float: a numpy scalar would turn float32 updates into
        # float64 ones.
        try:
            value = float(rate)
        except (TypeError, ValueError):
            value = None
        if value is None or not (math.isfinite(value) and value >= 0):
            raise ValueError(
                f"learning_rate={self.schedule!r} returned {rate!r} from "
                f"{method}() for epoch {self.epoch}: a learning rate must be a "
                "finite number >= 0."
            )
        return value

    def carry_over(self, previous):
        """Continue ``previous``'s bests and count (a warm start)."""
        self.no_improvement_count = previous.no_improvement_count
        self.best_loss = previous.best_loss
        self.best_validation_score = previous.best_validation_score

    def _count(self, value, best):
        """Count an iteration without improvement by ``tol``; whether ``value``
        beats ``best`` (larger is better)."""
        if value < best + self.tol:
            self.no_improvement_count += 1
        else:
            self.no_improvement_count = 0
        return value > best


@dataclass
class History:
    """What a fit reports: the fitted attributes that describe training.

    ``n_iter`` counts this fit's iterations (``partial_fit`` calls carry it
    over); ``t`` and ``loss_curve`` accumulate over warm starts.
    """

    n_iter: int = 0
    t: int = 0
    loss_curve: list = field(default_factory=list)
    loss: float = None
    validation_scores: list = None
    validation_loss_curve: list = None


@dataclass
class Plan:
    """What the estimator decided, for the loop.

    Attributes
    ----------
    loss : Loss
        For the held-out loss.
    forward : callable
        ``forward(X) -> raw``, the whole network's raw output (no dropout;
        an ensemble's members combined), for the held-out set: passed down by
        the estimator.
    score : callable
        ``score(raw, Y, sample_weight) -> float``, the held-out score (accuracy
        or R^2) from raw outputs: passed down by the estimator.
    max_iter : int
        Most iterations of this call (1 for ``partial_fit``).
    early_stopping : bool
        Hold out ``validation_fraction`` of the rows and keep the best weights.
    validation_fraction : float
    rng : numpy.random.RandomState
        For the held-out split.
    verbose : bool
    incremental : bool
        ``partial_fit``: no convergence warning, no stopping.
    unit : str
        What an iteration is called in messages (``"epoch"``, ``"iteration"``).
    """

    loss: object
    forward: object
    score: object
    max_iter: int
    early_stopping: bool = False
    validation_fraction: float = 0.1
    rng: object = None
    verbose: bool = False
    incremental: bool = False
    unit: str = "epoch"


def _groups(X, Y, positive):
    """Group identical ``(X, Y)`` rows among ``positive``: a group id per row,
    numbered in the order of the rows' contents (not of their positions), and
    each group's first row."""
    rows = X[positive]
    rows = rows.toarray() if sparse.issparse(rows) else rows
    table = np.ascontiguousarray(
        np.hstack([rows.astype(np.float64), Y[positive].astype(np.float64)])
    )
    keys = table.view(np.dtype((np.void, table.itemsize * table.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return inverse.reshape(-1), positive[first]


def _rows_of(groups, group_of_row, rows):
    """The rows of ``groups``, group by group in that order."""
    position = np.full(group_of_row.max(initial=-1) + 1, -1)
    position[groups] = np.arange(groups.shape[0])
    pos = position[group_of_row]
    chosen = np.flatnonzero(pos >= 0)
    return rows[chosen[np.argsort(pos[chosen], kind="stable")]]


def _split(n_groups, stratify, fraction, rng):
    try:
        return train_test_split(np.arange(n_groups), random_state=rng,
                                test_size=fraction, stratify=stratify)
    except ValueError:
        if stratify is None:
            raise
        # Too few rows to stratify (a class with one member, fewer held-out
        # rows than classes): held out at random instead. The stratified
        # splitter checks the counts before it draws: the generator is where
        # it was.
        return train_test_split(np.arange(n_groups), random_state=rng,
                                test_size=fraction)


def hold_out(X, Y, sample_weight, stratify, *, fraction, rng):
    """Split off ``fraction`` of the rows for early stopping.

    The split (``train_test_split``, stratified if ``stratify`` is given, as
    MLP's) draws groups of identical ``(X, y)`` rows, taken in the order of
    their contents: a duplicated row is never on both sides (its copies in the
    held-out set would score the training set), a row of integer weight ``k``
    goes where its ``k`` copies would (weights and repeated rows give the same
    fit), and the order of the rows does not matter. Rows of zero weight are
    never held out. On data too small to stratify (a class with one member,
    fewer held-out rows than classes) the split is not stratified.

    Returns ``(train_rows, (X_val, Y_val, sw_val))``; the held-out part is in
    the parameters' dtype (``Y`` may be stored compactly, e.g. uint8).
    """
    n_samples = X.shape[0]
    positive = (
        np.arange(n_samples) if sample_weight is None
        else np.flatnonzero(sample_weight > 0)
    )
    group_of_row, firsts = _groups(X, Y, positive)
    strata = None if stratify is None else np.asarray(stratify)[firsts]
    try:
        train_groups, val_groups = _split(firsts.shape[0], strata, fraction, rng)
    except ValueError as exc:
        raise ValueError(
            f"early_stopping=True cannot hold out validation_fraction={fraction} "
            f"of {n_samples} samples: {exc} Use more data, another "
            "validation_fraction or early_stopping=False."
        ) from exc
    val = _rows_of(val_groups, group_of_row, positive)
    if val.shape[0] < 2:
        # one row has no R^2, and one correct answer says nothing
        raise ValueError(
            f"early_stopping=True holds out {val.shape[0]} of {n_samples} "
            f"samples (validation_fraction={fraction}): the validation set is "
            "too small to score, it needs at least 2. Increase "
            "validation_fraction or the size of the dataset, or set "
            "early_stopping=False."
        )
    train = _rows_of(train_groups, group_of_row, positive)
    if positive.shape[0] < n_samples:
        zero = np.setdiff1d(np.arange(n_samples), positive)
        train = np.concatenate([train, zero])
    sw_val = None if sample_weight is None else sample_weight[val]
    return train, (X[val], Y[val].astype(X.dtype, copy=False), sw_val)


class _Loop:
    """One call's loop state; the solver sees it as ``hooks``."""

    def __init__(self, plan, params, n_layers, monitor, history, listeners,
                 validation):
        self.plan = plan
        self.params = params
        self.n_layers = n_layers
        self.monitor = monitor
        self.history = history
        self.listeners = listeners
        self.validation = validation
        self.best = [p.copy() for p in params] if validation else None
        self.iterations = 0  # of this call
        self.held_out_diverged = False
        self._started = time.perf_counter()

    @property
    def coefs(self):
        return self.params[: self.n_layers]

    @property
    def intercepts(self):
        return self.params[self.n_layers :]

    @property
    def n_iter(self):
        return self.history.n_iter

    @property
    def learning_rate(self):
        return self.monitor.learning_rate

    def begin_iteration(self):
        self.listeners.begin_iteration()

    def skip_iteration(self):
        self.listeners.skip_iteration()

    def end_iteration(self, loss, n_seen):
        """Record an iteration; whether training should stop."""
        history, monitor = self.history, self.monitor
        lr = monitor.learning_rate
        history.n_iter += 1
        history.t += n_seen
        history.loss = loss
        history.loss_curve.append(loss)
        self.iterations += 1
        score = self._validate()
        decision, improved = monitor.update(loss, score, history.t)
        if improved:
            for saved, p in zip(self.best, self.params, strict=True):
                np.copyto(saved, p)
        self._report(lr)
        stop_requested = self.listeners.end_iteration(self.state())
        if decision == LOWER_LR and self.plan.verbose:
            print(f"Learning rate lowered to {monitor.learning_rate:.3g}.")
        if decision == STOP and not self.plan.incremental:
            if self.plan.verbose:
                print(self._stop_message())
            return True
        return stop_requested

    def _validate(self):
        """Score and loss on the held-out set; the score (``None`` without)."""
        if self.validation is None:
            return None
        X_val, Y_val, sw_val = self.validation
        try:
            raw = self.plan.forward(X_val)
            score = self.plan.score(raw, Y_val, sw_val)
            loss = self.plan.loss.loss(Y_val, raw, sw_val)
        except ValueError as exc:  # the forward pass's overflow
            raise self._diverged(exc) from exc
        if not (math.isfinite(score) and math.isfinite(loss)):
            raise self._diverged(f"score={score!r}, loss={loss!r}")
        self.history.validation_scores.append(score)
        self.history.validation_loss_curve.append(loss)
        return score

    def _diverged(self, why):
        # (train restores the best parameters once the solver has unwound:
        # a solver may first roll back to its own last state)
        self.held_out_diverged = True
        return divergence(
            f"The held-out pass of early stopping became non-finite at "
            f"{self.plan.unit} {self.history.n_iter} ({why}); the training "
            "batches were finite"
        )

    def restore_best(self):
        """Put the best held-out parameters back, in place (coefs_ stay live)."""
        for saved, p in zip(self.best, self.params, strict=True):
            np.copyto(p, saved)

    def state(self):
        """The ``reconstruction_attributes`` callable for callbacks."""
        return fitted_state(self.coefs, self.intercepts, self.history.loss_curve,
                            self.plan.loss)

    def _report(self, lr):
        if not self.plan.verbose:
            return
        history = self.history
        parts = [f"{self.plan.unit.capitalize()} {history.n_iter}",
                 f"loss = {history.loss:.8f}"]
        if history.validation_scores:
            parts.append(f"validation loss = {history.validation_loss_curve[-1]:.8f}")
            parts.append(f"validation score = {history.validation_scores[-1]:.6f}")
        if self.plan.unit == "epoch":
            parts.append(f"lr = {lr:.3g}")
        now = time.perf_counter()
        parts.append(f"{now - self._started:.3f} s")
        self._started = now
        print(", ".join(parts))

    def _stop_message(self):
        what = "Validation score" if self.plan.early_stopping else "Training loss"
        return (
            f"{what} did not improve more than tol={self.monitor.tol} for "
            f"{self.monitor.n_iter_no_change} consecutive {self.plan.unit}s. "
            "Stopping."
        )


def train(plan, solver, params, data, *, monitor, history, listeners):
    """Run ``solver`` on the live ``params`` under the shared loop.

    Parameters
    ----------
    plan : Plan
    solver : StochasticSolver or LBFGSSolver
        See :mod:`sklearn_bp._solvers`.
    params : list of ndarray
        ``coefs + intercepts``, updated in place.
    data : tuple
        ``(X, Y, sample_weight, y, stratify)``: the training data, its encoded
        target, and the user's ``y`` (what callbacks see).
    monitor : Monitor
        Stopping rule and schedule (kept across ``partial_fit`` calls).
    history : History
        Filled in place, also when an exception ends the fit.
    listeners : sklearn_bp._callbacks.Listeners
    """
    X, Y, sample_weight, y, stratify = data
    validation = None
    if plan.early_stopping:
        rows, validation = hold_out(X, Y, sample_weight, stratify,
                                    fraction=plan.validation_fraction, rng=plan.rng)
        X, Y = X[rows], Y[rows]
        y = y[rows] if hasattr(y, "shape") else np.asarray(y)[rows]
        sample_weight = None if sample_weight is None else sample_weight[rows]
        if history.validation_scores is None:
            history.validation_scores, history.validation_loss_curve = [], []
    loop = _Loop(plan, params, len(params) // 2, monitor, history, listeners,
                 validation)
    listeners.begin_fit(X, y, sample_weight)
    try:
        outcome = solver.run(X, Y, sample_weight, max_iter=plan.max_iter, hooks=loop)
    except KeyboardInterrupt:
        _interrupted(loop)
        raise
    except DivergenceError:
        if loop.held_out_diverged:
            # the held-out pass overflowed on parameters whose training loss
            # was finite: back to the best ones, which it scored
            loop.restore_best()
        raise
    _finish(loop, outcome)
    listeners.end_fit(loop.state())


def _interrupted(loop):
    # The parameters stay finite and usable (an interrupted step is undone
    # whole); say so and let the interrupt reach the caller: it is not ours to
    # swallow. With early stopping the fit ends as it would have: on the best
    # weights.
    kept = "the parameters reached so far"
    if loop.validation is not None and loop.iterations > 0:
        loop.restore_best()
        kept = "the best parameters found so far (early stopping)"
    warnings.warn(
        f"Training interrupted by the user after {loop.history.n_iter} complete "
        f"{loop.plan.unit}s; the estimator keeps {kept}.",
        UserWarning,
    )


def _finish(loop, outcome):
    if outcome.loss is not None:
        # (L-BFGS: the loss at the returned parameters, MLP's loss_)
        loop.history.loss = outcome.loss
        loop.monitor.best_loss = min(loop.monitor.best_loss, outcome.loss)
    if not outcome.converged and not loop.plan.incremental:
        warnings.warn(outcome.warning, ConvergenceWarning)
    if loop.validation is not None and loop.iterations > 0:
        loop.restore_best()
