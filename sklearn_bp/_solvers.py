"""Solvers: how the parameters move, given the data and the loop's hooks.

A solver runs iterations (epochs of mini-batches, or quasi-Newton iterations)
on parameters it does not own, and after each one hands the iteration's loss
to ``hooks.end_iteration``, which records it, checks the held-out set, applies
the stopping rule and returns whether to stop. Everything that is the same for
every solver (validation split, best-weight snapshot, verbose lines,
callbacks, warnings) lives in :mod:`sklearn_bp._training`; nothing here calls
back into the estimator.
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import minimize
from sklearn.utils import gen_batches

from ._flat import flat_base, packed_empty
from ._network import loss_and_gradients
from ._step import DivergenceError, Step, all_finite, workspace_for
from ._tabular import Scratch
from ._tabular import loss_and_gradients as tabular_loss_and_gradients
from ._threads import single_threaded_scipy_blas


@dataclass
class Outcome:
    """How a solver's run ended.

    Attributes
    ----------
    converged : bool
        Whether it stopped by itself (a stopping rule, a callback, nothing to
        learn) rather than on ``max_iter`` or ``max_fun``.
    warning : str or None
        Why it did not converge, for the ``ConvergenceWarning``.
    loss : float or None
        The final loss, when the solver knows a better value than its last
        iteration's (L-BFGS: the loss at the returned parameters).
    """

    converged: bool
    warning: str = None
    loss: float = None


class StochasticSolver:
    """Epochs of mini-batch steps (SGD, Adam, RMSprop, user optimizers).

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Live parameters, updated in place.
    layers : list of Layer
        The hidden layers (activations, dropout rates).
    loss, optimizer : component instances
        Resolved private components.
    optimizer_state : dict
        The optimizer's state, updated in place.
    alpha : float
        L2 penalty.
    batch_size : int or "auto"
        Rows per batch (``"auto"``: ``min(200, n_samples)``).
    shuffle : bool
        Whether to visit the rows in a new random order each epoch.
    rng : numpy.random.RandomState
        Source of the shuffling order.
    dropout_rng : numpy.random.Generator, default=None
        Source of the dropout masks (needed when a layer has dropout).
    clip_grad_norm : float, default=None
        Largest global gradient norm (``None``: no clipping).
    extras, tabular
        The tabular network's further parameters and description (see
        :class:`sklearn_bp._step.Step`).
    """

    #: what an iteration is called in messages and callbacks
    unit = "epoch"
    #: the learning-rate schedule and the training-loss stopping rule apply
    #: (MLP's stochastic solvers)
    stepwise = True

    def __init__(self, coefs, intercepts, *, layers, loss, optimizer,
                 optimizer_state, alpha, batch_size, shuffle, rng, dropout_rng=None,
                 clip_grad_norm=None, extras=(), tabular=None):
        self.coefs = coefs
        self.intercepts = intercepts
        self.components = dict(layers=layers, loss=loss, optimizer=optimizer,
                               optimizer_state=optimizer_state, alpha=alpha,
                               dropout_rng=dropout_rng, clip_grad_norm=clip_grad_norm,
                               extras=extras, tabular=tabular)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = rng
        self.step = None
        self._batch_buffers = None
        self._target_buffer = None

    def prepare(self, n_samples, workspace=None):
        """Resolve the batch size for ``n_samples`` rows and make the step
        (reusing ``workspace`` if it fits)."""
        if self.batch_size == "auto":
            self.batch_size = min(200, n_samples)
        elif self.batch_size > n_samples:
            warnings.warn(
                f"Got batch_size={self.batch_size} larger than the {n_samples} "
                "training samples; it is clipped to the number of samples.",
                UserWarning,
            )
            self.batch_size = n_samples
        layers = self.components["layers"]
        self.step = Step(
            self.coefs, self.intercepts, **self.components,
            workspace=None if self.components["tabular"] is not None
            else workspace_for(self.coefs, layers, self.batch_size, workspace),
        )
        return self

    def run(self, X, Y, sample_weight, *, max_iter, hooks):
        """Up to ``max_iter`` epochs; the :class:`Outcome`."""
        n_samples = X.shape[0]
        if self.step is None:
            self.prepare(n_samples)
        order = np.arange(n_samples)
        try:
            with self.step.prepare(X):
                for _ in range(max_iter):
                    if self.shuffle:
                        # MLP's order: each epoch permutes the previous one
                        # (sklearn.utils.shuffle on the indices), so the same
                        # random_state gives the same batches.
                        order = order[self.rng.permutation(n_samples)]
                    hooks.begin_iteration()
                    loss, n_seen = self.run_epoch(
                        X, Y, sample_weight, hooks.learning_rate,
                        hooks.n_iter + 1, order if self.shuffle else None,
                    )
                    if loss is None:
                        hooks.skip_iteration()
                        return Outcome(True)  # every batch had zero weight
                    if hooks.end_iteration(loss, n_seen):
                        return Outcome(True)
        finally:
            self.step.close()
        return Outcome(
            False,
            f"Stochastic optimizer: maximum iterations ({max_iter}) reached and "
            "the optimization hasn't converged yet.",
        )

    def run_epoch(self, X, Y, sample_weight, lr, epoch, order=None):
        """One pass over the data in ``order`` (``None``: row order).

        Returns
        -------
        mean_loss : float or None
            Weighted mean of the batches' losses, ``None`` if every batch had
            zero total weight.
        n_seen : int
            Rows in the batches that were used (``t_`` grows by this).
        """
        n_samples = X.shape[0]
        # Batches are weighted by their share of the epoch's total weight, in
        # (0, 1]: value * batch_weight could overflow with huge sample weights.
        total = n_samples if sample_weight is None else float(np.sum(sample_weight))
        loss_sum = weight_sum = 0.0
        n_seen = 0
        for batch, rows in enumerate(gen_batches(n_samples, self.batch_size), 1):
            Xb, Yb, swb = self._gather(X, Y, sample_weight, rows, order)
            batch_weight = Xb.shape[0] if swb is None else float(np.sum(swb))
            if batch_weight <= 0:
                continue  # nothing to learn from; no step, no loss, t_ unchanged
            if swb is not None and self.step.alpha:
                self.step.note_penalty(batch_weight, lr)
            value = self.step(Xb, Yb, swb, lr, (epoch, batch))
            share = batch_weight / total
            loss_sum += value * share
            weight_sum += share
            n_seen += Xb.shape[0]
        if weight_sum == 0:
            return None, 0
        return loss_sum / weight_sum, n_seen

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
            Xb = X.take(idx, axis=0, out=self._batch_buffers[0][: idx.shape[0]])
        if self._batch_buffers is None:
            Yb = Y[idx]
        else:
            Yb = Y.take(idx, axis=0, out=self._batch_buffers[1][: idx.shape[0]])
        sw = None if sample_weight is None else sample_weight[idx]
        return Xb, self._in_param_dtype(Yb), sw

    def _in_param_dtype(self, Yb):
        """The batch's targets in the parameters' dtype.

        A classifier keeps its 0/1 targets compactly (uint8); the loss gets
        each batch converted into a buffer of the parameters' dtype.
        """
        dtype = self.step.coefs[0].dtype
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


def pack(arrays):
    """The arrays' elements, in order, as a new float64 vector (scipy's dtype)."""
    flat = flat_base(arrays)
    if flat is not None:
        return flat.astype(np.float64)
    out = np.empty(sum(a.size for a in arrays), dtype=np.float64)
    start = 0
    for a in arrays:
        out[start : start + a.size] = a.reshape(-1)
        start += a.size
    return out


def unpack(vector, arrays):
    """Copy ``vector`` into ``arrays`` (cast to their dtype), in order."""
    flat = flat_base(arrays)
    if flat is not None:
        np.copyto(flat, vector, casting="same_kind")
        return
    start = 0
    for a in arrays:
        np.copyto(a, vector[start : start + a.size].reshape(a.shape),
                  casting="same_kind")
        start += a.size


class LBFGSSolver:
    """Full-batch L-BFGS: :func:`scipy.optimize.minimize` over the packed
    parameters, as :class:`~sklearn.neural_network.MLPClassifier` does.

    The vector scipy works on is float64; each evaluation copies it into the
    live parameters (cast to their dtype, float32 stays float32), computes the
    loss and gradient there, and returns the gradient as a new float64 vector.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Live parameters, set to the solution in place.
    layers : list of Layer
        The hidden layers (no dropout: L-BFGS needs a deterministic objective).
    loss : Loss
        Resolved private loss.
    spec : sklearn_bp.optimizers.LBFGS
        History size and line-search limit.
    alpha : float
        L2 penalty.
    max_fun : int
        Most loss evaluations.
    tol : float
        scipy's ``gtol``, as MLP passes it.
    workspace : Workspace or None
        Buffers from a previous fit to reuse, if they fit.
    extras, tabular
        The tabular network's further parameters and description (see
        :class:`sklearn_bp._step.Step`).
    """

    unit = "iteration"
    #: no learning rate, and only scipy's own tests end the run (unless early
    #: stopping is on), as with MLP's solver="lbfgs"
    stepwise = False

    def __init__(self, coefs, intercepts, *, layers, loss, spec, alpha, max_fun,
                 tol, workspace=None, extras=(), tabular=None):
        self.coefs = coefs
        self.intercepts = intercepts
        self.params = list(coefs) + list(intercepts) + list(extras)
        self.tabular = tabular
        self.layers = layers
        self.loss = loss
        self.spec = spec
        self.alpha = float(alpha)
        self.max_fun = max_fun
        self.tol = tol
        self.workspace = workspace
        self._iterate = None  # the last accepted iterate (float64)

    def run(self, X, Y, sample_weight, *, max_iter, hooks):
        """Up to ``max_iter`` L-BFGS iterations; the :class:`Outcome`."""
        if self.tabular is None:
            self.workspace = workspace_for(self.coefs, self.layers, X.shape[0],
                                           self.workspace)
        Y = Y.astype(self.coefs[0].dtype, copy=False)
        self._iterate = pack(self.params)
        objective = self._objective(X, Y, sample_weight, hooks)

        def callback(intermediate_result):
            # (a copy: scipy goes on to change its x in place)
            self._iterate = intermediate_result.x.copy()
            unpack(self._iterate, self.params)
            if hooks.end_iteration(float(intermediate_result.fun), X.shape[0]):
                raise StopIteration

        try:
            with single_threaded_scipy_blas():
                result = minimize(
                    objective, self._iterate.copy(), method="L-BFGS-B", jac=True,
                    callback=callback, options=self._options(max_iter),
                )
        except BaseException:
            self.roll_back()
            raise
        finally:
            hooks.skip_iteration()  # evaluations after the last iterate
        return self._finish(result, max_iter)

    def _options(self, max_iter):
        return {
            "maxfun": self.max_fun,
            "maxiter": max_iter,
            "gtol": self.tol,
            "maxcor": self.spec.history_size,
            "maxls": self.spec.max_linesearch,
        }

    def _objective(self, X, Y, sample_weight, hooks):
        """The loss and gradient at a float64 vector, for scipy."""

        def objective(x):
            hooks.begin_iteration()
            unpack(x, self.params)
            with np.errstate(over="ignore", invalid="ignore"):
                grads = self._gradients(X, Y, sample_weight)
                value = grads.pop()
                if not (np.isfinite(value) and all_finite(grads)):
                    # An overflowing trial point of the line search: an
                    # infinite loss makes scipy step back; a divergence is
                    # reported only if the run ends there.
                    return np.inf, np.zeros_like(x)
            return value, pack(grads)  # a new vector: scipy keeps it

        return objective

    def _gradients(self, X, Y, sample_weight):
        """The gradients at the live parameters, then the loss, in one list."""
        if self.tabular is not None:
            if getattr(self, "_tabular_grads", None) is None:
                self._tabular_grads = packed_empty([p.shape for p in self.params],
                                                   self.params[0].dtype)
                self._tabular_scratch = Scratch()
            value = tabular_loss_and_gradients(
                self.tabular, self.params, X, Y, sample_weight, self.layers,
                self.loss, self.alpha, self._tabular_grads,
                scratch=self._tabular_scratch,
            )
            return [*self._tabular_grads, value]
        value, coef_grads, intercept_grads = loss_and_gradients(
            self.coefs, self.intercepts, X, Y, sample_weight,
            self.layers, self.loss, self.alpha, self.workspace,
        )
        return [*coef_grads, *intercept_grads, value]

    def _finish(self, result, max_iter):
        unpack(result.x, self.params)
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(result.fun) and all_finite(self.params)
        if not finite:
            self.roll_back()
            # (scipy's own message is no help here: it saw an infinite loss
            # with a zero gradient, see _objective)
            raise DivergenceError(
                f"The L-BFGS loss is not finite at any point it tried (loss="
                f"{result.fun!r}, {result.nit} iteration(s)); the parameters "
                "were restored to the last iterate it accepted (finite, the "
                "initial ones if none). The inputs are probably far too large: "
                "scale them (e.g. with sklearn.preprocessing.StandardScaler); a "
                "larger alpha keeps the weights smaller too."
            )
        if result.status in (0, 99):  # converged, or stopped by our callback
            return Outcome(True, loss=float(result.fun))
        return Outcome(
            False,
            f"lbfgs failed to converge after {result.nit} iteration(s) "
            f"(status={result.status}): {result.message}. Increase max_iter "
            f"(now {max_iter}) or max_fun (now {self.max_fun}), or scale the "
            "inputs (e.g. with sklearn.preprocessing.StandardScaler).",
            float(result.fun),
        )

    def roll_back(self):
        """Go back to the last accepted iterate (finite parameters: the initial
        ones, or a point where the loss was finite)."""
        if self._iterate is not None:
            unpack(self._iterate, self.params)
