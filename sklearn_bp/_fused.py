"""The fused training step for large dense networks.

The generic step (:func:`sklearn_bp._network.loss_and_gradients`, then the
optimizer over all parameters) writes every weight gradient to memory and
reads it back for the update, and runs the element-wise update on one core
while only the matrix products use BLAS's threads. For networks with large
layers that update costs a third of the step. This step, for the built-in
optimizers on dense input, instead:

* splits the forward products and the backpropagated deltas by batch rows or
  output columns across its own threads, each running a single-threaded GEMM
  followed by the bias and activation (or activation derivative) on the part
  it computed. BLAS is limited to one thread meanwhile, as scikit-learn's
  KMeans does for its own threads: an idle OpenBLAS worker spins and would
  take the core from the element-wise work;
* computes every delta before any parameter changes, and proves every weight
  gradient finite before the first update with a cheap bound, so a step is
  applied whole or not at all, as in the generic step;
* cuts each weight matrix into chunks of rows; a thread computes a chunk's
  gradient ``A[:, rows].T @ delta`` into a small private buffer, adds the L2
  term, saves the chunk for rollback and applies the optimizer's kernel to it
  while it is in that core's cache. No weight-sized gradient exists.

The arithmetic is the generic step's (the same update kernels, the same
gradient formulas); only the summation order inside the matrix products may
differ in the last bits, as it does between BLAS thread counts.
"""

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._network import (
    clip_factor,
    drop,
    hidden_delta,
    layer_output,
    squared_norm,
    weight_gradient_into,
    weight_squares,
)
from .activations import ACTIVATIONS

# Networks with fewer weights keep the generic step. Measured on two cores:
# 0.3 million weights ((512, 512) on 100 features) break even, 0.8 million
# gain 5 to 15 %, the (1024, 1024) benchmark network on 784 features 20 to 30
# %; a (256, 128) network loses 40 % to thread hand-offs.
_MIN_WEIGHTS = 1 << 19

# Bytes per update chunk: small enough that the chunk's blocks (gradient,
# parameters, optimizer buffers, scratch) stay in cache between its GEMM and
# its update, large enough for an efficient GEMM. Measured on the benchmark's
# 1024-wide layers: 256 KiB to 2 MiB are within 5 % of each other, 512 KiB
# the fastest.
_CHUNK_BYTES = 1 << 19

# Products below this many multiply-adds run whole on the calling thread:
# splitting them costs more than it saves (a hand-off to a worker thread and
# back takes about 55 microseconds on the benchmark machine; the (256, 1024) x
# (1024, 10) products of the benchmark's output layer run faster unsplit).
_MIN_SPLIT = 1 << 23

# How the forward and backward products are split across the threads: by
# batch rows or by output columns. Measured in the W4 training step on the
# 2-core development machine (OpenBLAS SkylakeX kernels on AMD EPYC), three
# interleaved runs each: rows 1-4 % faster in float64, columns 5-7 % faster
# in float32 (OpenBLAS's single-threaded float32 GEMM is slow on 128-row
# blocks).
_ROW_SPLIT = frozenset({np.dtype(np.float64)})

_BUILTIN_ACTIVATIONS = frozenset(ACTIVATIONS.values())

# Products are split into parts of at least this many rows or columns (the
# benchmark networks' layers have about a thousand).
_MIN_PART = 64


def fusable(coefs, intercepts, optimizer, X):
    """Whether the fused step applies to these parameters and this data.

    Built-in optimizer (a subclass may redefine ``step``), dense input,
    C-contiguous parameters, and enough weights to gain from it.
    """
    from .optimizers import BUILTIN_OPTIMIZERS

    return (
        type(optimizer) in BUILTIN_OPTIMIZERS
        and isinstance(X, np.ndarray)
        and all(p.flags.c_contiguous for p in coefs + intercepts)
        and sum(W.size for W in coefs) >= _MIN_WEIGHTS
    )


class Threads:
    """A small pool: ``run(fn, parts)`` calls ``fn(part)`` for each part, the
    first on the calling thread, and returns the results once all are done.

    Whatever happens (an exception in a worker, an interrupt of the calling
    thread), ``run`` returns or raises only after every worker has finished,
    so that no worker still writes to the parameters when the caller cleans
    up; ``stopping`` tells the workers to end early.
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads
        self.stopping = False
        self._pool = (
            ThreadPoolExecutor(n_threads - 1, thread_name_prefix="sklearn_bp")
            if n_threads > 1
            else None
        )

    def run(self, fn, parts):
        if self._pool is None or len(parts) == 1:
            return [fn(part) for part in parts]
        # numpy's floating-point error settings are per thread: the workers
        # take the caller's (the training step silences overflow warnings and
        # reports divergence itself).
        errors = np.geterr()
        futures = [
            self._pool.submit(_with_errstate, errors, fn, part) for part in parts[1:]
        ]
        error = None
        results = [None] * len(parts)
        try:
            results[0] = fn(parts[0])
        except BaseException as exc:
            error = exc
            self.stopping = True
        for k, future in enumerate(futures, start=1):
            while True:
                try:
                    results[k] = future.result()
                    break
                except BaseException as exc:
                    if error is None:
                        error = exc
                        self.stopping = True
                    if future.done():
                        break
                    # interrupted while waiting: keep waiting for the worker
        self.stopping = False
        if error is not None:
            raise error
        return results

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _with_errstate(errors, fn, part):
    with np.errstate(**errors):
        return fn(part)


def _parts(width, n_parts):
    """At most ``n_parts`` slices covering ``range(width)``, cut at multiples of
    16, each at least ``_MIN_PART`` wide (unless there is only one)."""
    n_parts = max(1, min(n_parts, width // _MIN_PART))
    bounds = {min(width, (width * k // n_parts + 8) // 16 * 16) for k in range(n_parts)}
    bounds = sorted(bounds | {width})
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _norm(a):
    """Frobenius norm as a Python float; ``inf`` if it overflows or is NaN."""
    flat = a.reshape(-1)
    square = float(np.dot(flat, flat))
    return math.sqrt(square) if square < math.inf else math.inf


class FusedStep:
    """The fused step (see the module docstring) on a trainer's parameters.

    Parameters
    ----------
    coefs, intercepts : list of ndarray
        Live parameters (C-contiguous), updated in place.
    backup : list of ndarray
        Shaped like ``coefs + intercepts``. Each chunk is saved into it just
        before its update, so after a step it holds the parameters from before
        the step (the trainer's rollback copy).
    layers, loss, optimizer, optimizer_state, alpha
        As for :class:`sklearn_bp._step.Step`.
    workspace : Workspace
        Per-batch buffers (its weight-gradient buffers are not used).
    n_threads : int
        Threads to use, the calling one included.
    dropout : bool, default=False
        Apply the workspace's dropout masks (drawn by the caller per batch).
    clip_grad_norm : float, default=None
        Clip the global gradient norm to this (``None``: no clipping). The
        norm is needed before the first update, so the weight gradients are
        computed twice: once for the norm, once for the update.
    """

    def __init__(self, coefs, intercepts, backup, *, layers, loss, optimizer,
                 optimizer_state, alpha, workspace, n_threads, dropout=False,
                 clip_grad_norm=None):
        self.coefs = coefs
        self.intercepts = intercepts
        self.backup = backup
        self.layers = layers
        self.dropout = dropout
        self.clip_grad_norm = clip_grad_norm
        self.loss = loss
        self.optimizer = optimizer
        self.optimizer_state = optimizer_state
        self.alpha = float(alpha)
        self.workspace = workspace
        self.threads = Threads(n_threads)
        self.n_layers = len(coefs)
        dtype = coefs[0].dtype
        # The built-in activations are element-wise and keep no state: each
        # thread applies them to the part of the product it computed.
        self.threaded = all(
            type(layer.activation) in _BUILTIN_ACTIVATIONS for layer in layers
        )
        # No weight gradient can overflow below this bound (see run).
        self.limit = 0.25 * float(np.finfo(dtype).max)
        # Row chunks of every weight matrix, taken by whichever thread is free
        # (a chunk's result does not depend on the thread that computes it).
        self.chunks = []
        for i, W in enumerate(coefs):
            fan_in, fan_out = W.shape
            rows = max(1, _CHUNK_BYTES // (dtype.itemsize * fan_out))
            self.chunks += [
                (i, r0, min(fan_in, r0 + rows)) for r0 in range(0, fan_in, rows)
            ]
        size = max((r1 - r0) * coefs[i].shape[1] for i, r0, r1 in self.chunks)
        size = max(size, max(b.size for b in intercepts))
        # Per thread: a chunk's gradient, the kernel's scratch, and ones for
        # the finiteness check (a dot product with ones sums a block about
        # three times faster than ndarray.sum in float32).
        self.buffers = [
            (np.empty(size, dtype), np.empty(size, dtype), np.ones(size, dtype))
            for _ in range(n_threads)
        ]
        self.intercept_grads = [np.empty_like(b) for b in intercepts]
        self._pending = None  # what run() prepared for update()

    def close(self):
        """Stop the worker threads."""
        self.threads.close()

    def _product(self, A, B, out, then=None):
        """``out[...] = A @ B``, split across the threads.

        Split by rows of ``A`` (the batch) in the dtypes of ``_ROW_SPLIT``,
        else by columns of ``B``. ``then(rows, cols)``, if given, is applied to
        each part by the thread that computed it, while it is in its cache.
        Returns whether the parts were row blocks.
        """
        n_parts = self.threads.n_threads
        everything = slice(None)
        if n_parts == 1 or A.shape[0] * A.shape[1] * B.shape[1] < _MIN_SPLIT:
            np.matmul(A, B, out=out)
            if then is not None:
                then(everything, everything)
            return False
        if out.dtype in _ROW_SPLIT:

            def rows_part(rows):
                np.matmul(A[rows], B, out=out[rows])
                if then is not None:
                    then(rows, everything)

            self.threads.run(rows_part, _parts(A.shape[0], n_parts))
            return True

        def cols_part(cols):
            np.matmul(A, B[:, cols], out=out[:, cols])
            if then is not None:
                then(everything, cols)

        self.threads.run(cols_part, _parts(B.shape[1], n_parts))
        return False

    def run(self, X, Y, sample_weight):
        """Forward and backward on one batch, nothing updated yet.

        Returns
        -------
        value : float or None
            The penalised batch loss. ``None`` when the gradients could not be
            proven finite: the caller must take the generic step, which
            computes and checks them. When the value is finite, :meth:`update`
            applies the step.
        """
        n = X.shape[0]
        buffers = self.workspace.rows(n)
        weight_sum = n if sample_weight is None else float(np.sum(sample_weight))
        raw = self._forward(X, buffers)
        value = self.loss._loss_and_delta(Y, raw, sample_weight, weight_sum, out=raw)
        l2 = self.alpha / weight_sum
        squares = weight_squares(self.coefs) if l2 else None
        if l2:
            value += 0.5 * l2 * sum(squares)
        if not math.isfinite(value):
            return value
        # Every delta before any parameter changes: the products need the old
        # weights, and the bound below needs every delta.
        layer_deltas = self._backward(raw, buffers)
        outputs = buffers.out if self.dropout else buffers.A
        layer_inputs = [X] + list(outputs[: self.n_layers - 1])
        if not self._bounded(layer_inputs, layer_deltas, l2, squares):
            return None
        self._pending = (layer_inputs, layer_deltas, l2)
        return value

    def update(self, lr):
        """Apply the step :meth:`run` prepared; whether the result is finite.

        Each chunk is saved into the backup just before its update; if the
        update is interrupted, the backup is completed before re-raising, so
        that it holds the parameters from before the step (the caller
        restores them from it).
        """
        layer_inputs, layer_deltas, l2 = self._pending
        self._pending = None
        factor = 1.0
        if self.clip_grad_norm is not None:
            squared = self._gradient_squares(layer_inputs, layer_deltas, l2)
            factor = clip_factor(squared + squared_norm(self.intercept_grads),
                                 self.clip_grad_norm)
            if factor < 1.0:
                for g in self.intercept_grads:
                    g *= factor
        return self._update(layer_inputs, layer_deltas, l2, lr, factor)

    def _forward(self, X, buffers):
        """The forward pass, each layer's bias, activation and dropout mask
        applied by the thread that computed that part of its product; the raw
        output."""
        Z, A, mask, out = buffers.Z, buffers.A, buffers.mask, buffers.out
        last = self.n_layers - 1
        inputs = X
        for i in range(self.n_layers):
            hidden = i < last
            masked = hidden and self.dropout and mask[i] is not None

            def finish(rows, cols, i=i, hidden=hidden, masked=masked):
                result = layer_output(
                    Z[i][rows, cols], self.intercepts[i][cols],
                    A[i][rows, cols] if hidden else None,
                    self.layers[i].activation if hidden else None, hidden,
                )
                if masked:
                    drop(result, mask[i][rows, cols], out[i][rows, cols])

            self._split_product(inputs, self.coefs[i], Z[i], finish)
            inputs = (out[i] if masked else A[i]) if hidden else Z[i]
        return Z[last]

    def _backward(self, raw, buffers):
        """Every layer's delta (``raw`` holds the output's) and the bias
        gradients, which are the deltas' column sums, taken by the thread
        that computed whole columns."""
        Z, A, deltas, scratch, mask = (buffers.Z, buffers.A, buffers.delta,
                                       buffers.scratch, buffers.mask)
        intercept_grads = self.intercept_grads
        last = self.n_layers - 1
        layer_deltas = [None] * self.n_layers
        layer_deltas[last] = raw
        raw.sum(axis=0, out=intercept_grads[last])
        for i in range(last, 0, -1):

            def derive(rows, cols, j=i - 1):
                if self.dropout and mask[j] is not None:
                    deltas[j][rows, cols] *= mask[j][rows, cols]
                delta = hidden_delta(Z[j][rows, cols], A[j][rows, cols],
                                     deltas[j][rows, cols], scratch[j][rows, cols],
                                     self.layers[j].activation)
                if rows == slice(None):
                    delta.sum(axis=0, out=intercept_grads[j][cols])

            by_rows = self._split_product(layer_deltas[i], self.coefs[i].T,
                                          deltas[i - 1], derive)
            if by_rows:
                deltas[i - 1].sum(axis=0, out=intercept_grads[i - 1])
            layer_deltas[i - 1] = deltas[i - 1]
        return layer_deltas

    def _split_product(self, A, B, out, then):
        """:meth:`_product` with ``then`` applied per part by the thread that
        computed it (the built-in activations are element-wise and stateless),
        or to the whole result after it for a user activation."""
        if self.threaded:
            return self._product(A, B, out, then)
        self._product(A, B, out)
        then(slice(None), slice(None))
        return False

    def _bounded(self, layer_inputs, layer_deltas, l2, squares):
        """Whether no weight gradient can overflow (see below)."""
        # |(A.T @ delta)[j, k]| <= ||A[:, j]|| ||delta[:, k]|| <= ||A|| ||delta||
        # (Cauchy-Schwarz), and so is every partial sum of that product: below
        # this bound no weight gradient, nor the L2 term added to it, can
        # overflow or be NaN. Above it (or with non-finite deltas), the
        # generic step takes over and checks the gradients themselves.
        for i in range(self.n_layers):
            bound = _norm(layer_inputs[i]) * _norm(layer_deltas[i])
            if l2:
                bound += l2 * math.sqrt(squares[i])
            if not bound < self.limit:
                return False
        return math.isfinite(sum(float(g.sum()) for g in self.intercept_grads))

    def _gradient_squares(self, layer_inputs, layer_deltas, l2):
        """``sum ||dL/dW||^2`` over the weight matrices, chunk by chunk on the
        threads (for clipping: the update computes the chunks again)."""
        pending = iter(self.chunks)

        def work(k):
            grad_buffer, scratch_buffer, _ = self.buffers[k]
            total = 0.0
            for i, r0, r1 in pending:
                p = self.coefs[i][r0:r1]
                g = grad_buffer[: p.size].reshape(p.shape)
                weight_gradient_into(layer_inputs[i][:, r0:r1], layer_deltas[i], p,
                                     l2, g, scratch_buffer[: p.size])
                flat = g.reshape(-1)
                total += float(np.dot(flat, flat))
            return total

        return sum(self.threads.run(work, list(range(self.threads.n_threads))))

    def _update(self, layer_inputs, layer_deltas, l2, lr, factor=1.0):
        """The optimizer's step, chunk by chunk; whether the result is finite."""
        params = self.coefs + self.intercepts
        kernel, buffers = self.optimizer._kernel(params, self.optimizer_state, lr)
        pending = iter(self.chunks)
        done = set()

        def work(k):
            grad_buffer, scratch_buffer, ones = self.buffers[k]
            total = 0.0
            # A shared list iterator hands each chunk to exactly one thread.
            for chunk in pending:
                if self.threads.stopping:
                    break
                i, r0, r1 = chunk
                p = self.coefs[i][r0:r1]
                g = grad_buffer[: p.size].reshape(p.shape)
                s = scratch_buffer[: p.size]
                weight_gradient_into(layer_inputs[i][:, r0:r1], layer_deltas[i], p,
                                     l2, g, s)
                if factor < 1.0:
                    g *= factor
                np.copyto(self.backup[i][r0:r1], p)
                done.add(chunk)
                kernel(p, g, *(b[i][r0:r1] for b in buffers), s.reshape(p.shape))
                total += float(np.dot(p.reshape(-1), ones[: p.size]))
            return total

        try:
            total = sum(self.threads.run(work, list(range(self.threads.n_threads))))
            return math.isfinite(total + self._update_biases(kernel, buffers, done))
        except BaseException:
            self._complete_backup(done)
            raise

    def _update_biases(self, kernel, buffers, done):
        """The biases: small, one kernel call each, on this thread; their sum."""
        _, scratch_buffer, _ = self.buffers[0]
        total = 0.0
        offset = self.n_layers
        for i, (b, g) in enumerate(zip(self.intercepts, self.intercept_grads,
                                       strict=True)):
            np.copyto(self.backup[offset + i], b)
            done.add(offset + i)
            kernel(b, g, *(buf[offset + i] for buf in buffers),
                   scratch_buffer[: b.size])
            total += float(b.sum())
        return total

    def _complete_backup(self, done):
        """After an interrupted update: back up what was not yet updated, so
        that the backup holds the parameters from before the step."""
        for chunk in self.chunks:
            if chunk not in done:
                i, r0, r1 = chunk
                np.copyto(self.backup[i][r0:r1], self.coefs[i][r0:r1])
        for i, b in enumerate(self.intercepts):
            if self.n_layers + i not in done:
                np.copyto(self.backup[self.n_layers + i], b)
