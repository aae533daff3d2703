"""One optimizer step, applied whole or rolled back and reported.

:class:`Step` computes a batch's loss and gradients (through the fused step of
:mod:`sklearn_bp._fused` when it applies, else the network's own functions) and
applies the optimizer's update in place on the live parameters. It keeps the
parameters from before the step: a step whose loss, gradient or result is not
finite is undone and raised as a :class:`DivergenceError`, the one place where
such messages are written.
"""

import math
from contextlib import nullcontext

import numpy as np

from ._flat import flat_base, packed_copy, packed_empty
from ._fused import FusedStep, fusable
from ._network import (
    Workspace,
    as_layers,
    clip_factor,
    draw_masks,
    loss_and_gradients,
    squared_norm,
    workspace_key,
)
from ._tabular import Scratch
from ._tabular import loss_and_gradients as tabular_loss_and_gradients
from ._threads import blas_threads_for, single_threaded_blas, thread_budget
from .optimizers import BUILTIN_OPTIMIZERS


class DivergenceError(ValueError):
    """Raised when a loss, a gradient or an update is not finite.

    The failing step is not applied, and the parameters are restored to their
    last values whose loss and gradient were finite: the model can still predict.
    """


def all_finite(arrays):
    """Whether every element of ``arrays`` is finite, one reduction per array.

    A sum propagates inf/nan and needs no temporary array (a sum of finite
    values that overflows also counts: such parameters have diverged anyway).
    Callers silence numpy's overflow warnings.
    """
    return all(math.isfinite(a.sum()) for a in arrays)


def divergence(what, *, alpha=0.0, penalty=(0.0, None)):
    """The :class:`DivergenceError` for ``what`` happened, with the usual advice.

    ``penalty`` is the largest ``(lr * alpha / batch weight, batch weight)``
    seen: when tiny sample weights blew the L2 term up, a learning rate cannot
    fix it, rescaling the weights can, and the message says so.
    """
    rate, batch_weight = penalty
    hint = ""
    if alpha and batch_weight is not None and rate >= 1:
        hint = (
            f" A batch's sample weights summed to {batch_weight:.3g}, so the L2 "
            "penalty's coefficient alpha / sum(sample_weight) was "
            f"{alpha / batch_weight:.3g}: scale sample_weight up (e.g. "
            "divide it by its mean) or lower alpha."
        )
    return DivergenceError(
        f"{what}; the parameters were restored to their last values with a "
        "finite loss and gradient. Try a smaller learning_rate_init or scale "
        "the inputs (e.g. with sklearn.preprocessing.StandardScaler)." + hint
    )


def _loss_message(value, where):
    return (
        "The training loss or its gradient became non-finite at epoch {}, "
        "batch {} (loss={!r})".format(*where, value)
    )


def workspace_for(coefs, layers, n_rows, workspace=None):
    """``workspace`` if it fits this network and batch size, else a new one."""
    units = [coefs[0].shape[0]] + [W.shape[1] for W in coefs]
    dtype = coefs[0].dtype
    layers = as_layers(layers, len(coefs) - 1)
    if (
        workspace is None
        or workspace.n_rows != n_rows
        or workspace.key != workspace_key(units, dtype, layers)
    ):
        workspace = Workspace(units, n_rows, dtype, layers)
    return workspace


class Step:
    """Forward, backward and one optimizer update on a batch, all or nothing.

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
    workspace : Workspace
        Per-batch buffers.
    dropout_rng : numpy.random.Generator, default=None
        Source of the dropout masks (needed when a layer has dropout).
    clip_grad_norm : float, default=None
        Largest global L2 norm of the gradients (``None``: no clipping).
    extras : list of ndarray, default=()
        The tabular network's parameters beyond the dense layers (see
        :mod:`sklearn_bp._tabular`), after ``coefs + intercepts``.
    tabular : TabularNet, default=None
        The embedding and ensemble around the dense layers, if any.
    """

    def __init__(self, coefs, intercepts, *, layers, loss, optimizer,
                 optimizer_state, alpha, workspace, dropout_rng=None,
                 clip_grad_norm=None, extras=(), tabular=None):
        self.coefs = coefs
        self.intercepts = intercepts
        self.params = list(coefs) + list(intercepts) + list(extras)
        self.tabular = tabular
        self._tabular_grads = (
            None if tabular is None
            else packed_empty([p.shape for p in self.params], self.params[0].dtype)
        )
        self._tabular_scratch = Scratch()
        self.layers = layers
        self.dropout = any(layer.dropout for layer in layers)
        self.dropout_rng = dropout_rng
        self.clip_grad_norm = clip_grad_norm
        self.loss = loss
        self.optimizer = optimizer
        self.optimizer_state = optimizer_state
        self.alpha = float(alpha)
        self.workspace = workspace
        # Largest lr * alpha / (batch weight) seen, with that batch weight: a
        # step it made huge can make a later batch diverge (see divergence).
        self.penalty = (0.0, None)
        # The parameters before the last step. A step can leave parameters
        # that are finite but so large that the next forward pass overflows
        # (an absurd learning rate): the divergence shows one batch later, and
        # the model must go back to parameters whose loss was finite, or it
        # could not even predict. One copy per step, O(parameters), cheap next
        # to the batch's products.
        self.previous = packed_copy(self.params)
        # Packed lists (see sklearn_bp._flat) are copied and checked as one
        # array: one numpy call per step instead of one per layer.
        flat = flat_base(self.params)
        self._params_flat = self.params if flat is None else [flat]
        self._previous_flat = self.previous if flat is None else [self.previous[0].base]
        self._grads_flat = None  # found on the first generic step
        # the built-in optimizers (not subclasses: they may redefine step)
        # fuse the backup and the check into their update
        self._builtin = type(optimizer) in BUILTIN_OPTIMIZERS
        self._fused = None  # made by prepare() when the data qualify

    def prepare(self, X):
        """Set up the fused step for ``X``'s batches if it applies; return the
        context to run them in: one BLAS thread while the fused step's threads
        work, or when the step's products are too small to share (see
        :func:`~sklearn_bp._threads.blas_threads_for`)."""
        if self.tabular is not None or not fusable(self.coefs, self.intercepts,
                                                   self.optimizer, X):
            self.close()
            if self.tabular is not None:
                # (k members' products per layer, counted by no rule yet: BLAS
                # keeps its threads, as before the rule)
                return nullcontext()
            return blas_threads_for(self.coefs, X, self.workspace.n_rows)
        if self._fused is None:
            self._fused = FusedStep(
                self.coefs, self.intercepts, self.previous,
                layers=self.layers, loss=self.loss,
                optimizer=self.optimizer, optimizer_state=self.optimizer_state,
                alpha=self.alpha, workspace=self.workspace,
                n_threads=thread_budget(), dropout=self.dropout,
                clip_grad_norm=self.clip_grad_norm,
            )
        if self._fused.threads.n_threads > 1:
            return single_threaded_blas()
        return nullcontext()

    def close(self):
        """Release the fused step's threads (the step can still be used)."""
        if self._fused is not None:
            self._fused.close()
            self._fused = None

    def note_penalty(self, batch_weight, lr):
        """Remember the L2 coefficient of a weighted batch (see divergence)."""
        rate = float(lr) * self.alpha / batch_weight if batch_weight > 0 else np.inf
        if not rate <= self.penalty[0]:  # also inf
            self.penalty = (rate, batch_weight)

    def __call__(self, X, Y, sample_weight, lr, where=(1, 1)):
        """Apply one step on a batch; return its penalised loss.

        ``where`` is ``(epoch, batch)``, for a divergence message.
        """
        # Overflow is detected below and reported as one clear error; numpy's
        # RuntimeWarnings on the way there would only be noise. (One errstate
        # for the whole step: entering one costs as much as a small ufunc.)
        with np.errstate(over="ignore", invalid="ignore"):
            if self.dropout and self.tabular is None:
                # once per batch: the generic step, if it takes over from the
                # fused one, sees the same masks
                draw_masks(self.workspace.rows(X.shape[0]), self.layers,
                           self.dropout_rng)
            if self._fused is not None:
                # None: the gradients could not be proven finite without
                # computing them; nothing was changed, the generic step decides.
                value = self._fused.run(X, Y, sample_weight)
                if value is not None:
                    return self._fused_update(value, sample_weight, lr, where)
            return self._generic(X, Y, sample_weight, lr, where)

    def _fused_update(self, value, sample_weight, lr, where):
        if not math.isfinite(value):
            return self._checked(value, True, sample_weight, lr, where)
        try:
            finite = self._fused.update(lr)
        except BaseException:
            self.roll_back()  # (the fused update completed its backup)
            raise
        return self._checked(value, finite, sample_weight, lr, where)

    def _generic(self, X, Y, sample_weight, lr, where):
        if self.tabular is not None:
            grads = self._tabular_grads
            value = tabular_loss_and_gradients(
                self.tabular, self.params, X, Y, sample_weight, self.layers,
                self.loss, self.alpha, grads,
                masks=self._tabular_masks if self.dropout else None,
                scratch=self._tabular_scratch,
            )
        else:
            value, coef_grads, intercept_grads = loss_and_gradients(
                self.coefs, self.intercepts, X, Y, sample_weight,
                self.layers, self.loss, self.alpha, self.workspace, self.dropout,
            )
            grads = coef_grads + intercept_grads
        if self._grads_flat is None:
            flat = flat_base(grads)
            self._grads_flat = grads if flat is None else [flat]
        if not np.isfinite(value) or not all_finite(self._grads_flat):
            self._fail(_loss_message(value, where), sample_weight, lr)
        if self.clip_grad_norm is not None:
            factor = clip_factor(squared_norm(self._grads_flat), self.clip_grad_norm)
            if factor < 1.0:
                for g in self._grads_flat:
                    g *= factor
        try:
            finite = self._update(grads, lr)
        except BaseException:
            # An update interrupted half-way (KeyboardInterrupt between two
            # layers) leaves its backup complete (see optimizers._run): it is
            # undone, so the parameters are never half-stepped.
            self.roll_back()
            raise
        return self._checked(value, finite, sample_weight, lr, where)

    def _tabular_masks(self, i, shape, dtype):
        """A batch's dropout mask for hidden layer ``i`` of a tabular network
        (``None`` without dropout there): inverted dropout, as draw_masks."""
        rate = self.layers[i].dropout
        if not rate:
            return None
        # (into the step's scratch: a mask is needed only until the backward pass)
        mask = self._tabular_scratch.get(("mask", i), shape, dtype)
        self.dropout_rng.random(dtype=dtype, out=mask)
        np.greater_equal(mask, rate, out=mask)
        mask *= 1.0 / (1.0 - rate)
        return mask

    def _update(self, grads, lr):
        """The optimizer's update with the backup; whether the result is finite."""
        if self._builtin:
            # The built-ins copy each block into the backup and check it
            # within their own pass (see optimizers._run).
            return self.optimizer._step(
                self.params, grads, self.optimizer_state, lr, backup=self.previous
            )
        for saved, p in zip(self._previous_flat, self._params_flat, strict=True):
            np.copyto(saved, p)
        self.optimizer.step(self.params, grads, self.optimizer_state, lr)
        return all_finite(self._params_flat)

    def _checked(self, value, finite, sample_weight, lr, where):
        if finite and math.isfinite(value):
            return value
        if not math.isfinite(value):
            self._fail(_loss_message(value, where), sample_weight, lr)
        self._fail(
            "The update at epoch {}, batch {} made the parameters non-finite "
            "(loss before it={!r})".format(*where, value), sample_weight, lr,
        )

    def _fail(self, what, sample_weight, lr):
        self.roll_back()
        if sample_weight is not None and self.alpha:
            self.note_penalty(float(np.sum(sample_weight)), lr)
        raise divergence(what, alpha=self.alpha, penalty=self.penalty)

    def roll_back(self):
        """Restore the parameters from before the last step."""
        for p, saved in zip(self.params, self.previous, strict=True):
            np.copyto(p, saved)
