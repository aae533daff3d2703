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
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from threadpoolctl import ThreadpoolController

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

_controller = None
_controller_lock = threading.Lock()


def _blas():
    """The BLAS libraries' controllers (the process's libraries are inspected
    once: that takes milliseconds)."""
    global _controller
    with _controller_lock:
        if _controller is None:
            _controller = ThreadpoolController()
    return _controller.select(user_api="blas")


# At most this many threads: the products are split into parts of at least
# _MIN_PART rows or columns, and the benchmark networks' layers have about a
# thousand. (Only 2 cores were available to measure; more threads than that
# are untested.)
_MAX_THREADS = 8
_MIN_PART = 64


def thread_budget():
    """Threads the fused step may use: as many as BLAS may use right now.

    This follows ``threadpoolctl.threadpool_limits``, the ``OMP_NUM_THREADS``
    and ``OPENBLAS_NUM_THREADS`` variables and joblib's limits in its workers:
    one knob for both. At most ``_MAX_THREADS``.
    """
    blas_threads = min((lib.num_threads for lib in _blas().lib_controllers), default=1)
    return max(1, min(blas_threads, _MAX_THREADS))


_limit_lock = threading.Lock()
_limit = {"depth": 0, "limiter": None}


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread while the step's threads run.

    The limit is process-wide: fits running at the same time in several
    threads share it, and the original limits come back when the last one
    ends (nested ``threadpool_limits`` calls from several threads would
    restore each other's limits in the wrong order).
    """
    with _limit_lock:
        if _limit["depth"] == 0:
            _limit["limiter"] = _blas().limit(limits=1)
        _limit["depth"] += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit["depth"] -= 1
            if _limit["depth"] == 0:
                _limit.pop("limiter").restore_original_limits()
                _limit["limiter"] = None


def fusable(coefs, intercepts, optimizer, X):
    """Whether the fused step applies to these parameters and this data.

    Built-in optimizer (a subclass may redefine ``step``), dense input,
    C-contiguous parameters, and enough weights to gain from it.
    """
    from .optimizers import SGD, Adam, RMSprop

    return (
        type(optimizer) in (SGD, Adam, RMSprop)
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
    activation, loss, optimizer, optimizer_state, alpha
        As for :class:`sklearn_bp._training.Trainer`.
    workspace : Workspace
        Per-batch buffers (its weight-gradient buffers are not used).
    n_threads : int
        Threads to use, the calling one included.
    """

    def __init__(self, coefs, intercepts, backup, *, activation, loss, optimizer,
                 optimizer_state, alpha, workspace, n_threads):
        self.coefs = coefs
        self.intercepts = intercepts
        self.backup = backup
        self.activation = activation
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
        self.threaded = type(activation) in _BUILTIN_ACTIVATIONS
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

    def run(self, X, Y, sample_weight, lr):
        """Forward, backward and update on one batch.

        Returns
        -------
        None
            When the gradients could not be proven finite: nothing was changed
            (parameters, optimizer state), and the caller must take the
            generic step, which computes and checks them.
        (value, finite) : (float, bool)
            The penalised batch loss, and whether the updated parameters are
            all finite. With a non-finite ``value`` nothing was updated.
        """
        coefs, intercepts, activation = self.coefs, self.intercepts, self.activation
        n = X.shape[0]
        Z, A, deltas, scratch = self.workspace.rows(n)
        weight_sum = n if sample_weight is None else float(np.sum(sample_weight))
        last = self.n_layers - 1
        threaded = self.threaded
        inputs = X
        for i in range(self.n_layers):

            def finish(rows, cols, i=i):
                Z[i][rows, cols] += intercepts[i][cols]
                if i < last:
                    activation._forward_into(Z[i][rows, cols], A[i][rows, cols])

            self._product(inputs, coefs[i], Z[i], finish if threaded else None)
            if not threaded:
                finish(slice(None), slice(None))
            inputs = A[i] if i < last else Z[i]
        raw = Z[last]
        value = self.loss._loss_and_delta(Y, raw, sample_weight, weight_sum, out=raw)
        l2 = self.alpha / weight_sum
        if l2:
            squares = [float(np.dot(W.reshape(-1), W.reshape(-1))) for W in coefs]
            value += 0.5 * l2 * sum(squares)
        if not math.isfinite(value):
            return value, True
        # Every delta before any parameter changes: the products need the old
        # weights, and the bound below needs every delta.
        # The bias gradients are the deltas' column sums, taken by the thread
        # that computed whole columns.
        intercept_grads = self.intercept_grads
        layer_deltas = [None] * self.n_layers
        layer_deltas[last] = raw
        raw.sum(axis=0, out=intercept_grads[last])
        for i in range(last, 0, -1):

            def derive(rows, cols, j=i - 1):
                delta = deltas[j][rows, cols]
                activation._backprop_into(
                    Z[j][rows, cols], A[j][rows, cols], delta, scratch[j][rows, cols]
                )
                if rows == slice(None):
                    delta.sum(axis=0, out=intercept_grads[j][cols])

            by_rows = self._product(
                layer_deltas[i], coefs[i].T, deltas[i - 1], derive if threaded else None
            )
            if not threaded:
                derive(slice(None), slice(None))
            elif by_rows:
                deltas[i - 1].sum(axis=0, out=intercept_grads[i - 1])
            layer_deltas[i - 1] = deltas[i - 1]
        layer_inputs = [X] + list(A[:last])
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
                return None
        if not math.isfinite(sum(float(g.sum()) for g in intercept_grads)):
            return None
        return value, self._update(layer_inputs, layer_deltas, l2, lr)

    def _update(self, layer_inputs, layer_deltas, l2, lr):
        """The optimizer's step, chunk by chunk; whether the result is finite."""
        coefs, intercepts, backup = self.coefs, self.intercepts, self.backup
        n_layers = self.n_layers
        params = coefs + intercepts
        kernel, buffers = self.optimizer._kernel(params, self.optimizer_state, lr)
        threads = self.threads
        pending = iter(self.chunks)
        done = set()

        def work(k):
            grad_buffer, scratch_buffer, ones = self.buffers[k]
            total = 0.0
            # A shared list iterator hands each chunk to exactly one thread.
            for chunk in pending:
                if threads.stopping:
                    break
                i, r0, r1 = chunk
                p = coefs[i][r0:r1]
                size = p.size
                g = grad_buffer[:size].reshape(p.shape)
                s = scratch_buffer[:size].reshape(p.shape)
                np.matmul(layer_inputs[i][:, r0:r1].T, layer_deltas[i], out=g)
                if l2:
                    g += np.multiply(p, l2, out=s)
                np.copyto(backup[i][r0:r1], p)
                done.add(chunk)
                kernel(p, g, *(b[i][r0:r1] for b in buffers), s)
                total += float(np.dot(p.reshape(-1), ones[:size]))
            return total

        try:
            total = sum(threads.run(work, list(range(threads.n_threads))))
            # The biases: small, one kernel call each, on this thread.
            _, scratch_buffer, _ = self.buffers[0]
            grads = self.intercept_grads
            for i, (b, g) in enumerate(zip(intercepts, grads, strict=True)):
                np.copyto(backup[n_layers + i], b)
                done.add(n_layers + i)
                kernel(
                    b, g, *(buf[n_layers + i] for buf in buffers),
                    scratch_buffer[: b.size],
                )
                total += float(b.sum())
        except BaseException:
            # Interrupted: complete the backup, which then holds the parameters
            # from before the step, and restore them from it, so that the
            # step is applied whole or not at all.
            for chunk in self.chunks:
                if chunk not in done:
                    i, r0, r1 = chunk
                    np.copyto(backup[i][r0:r1], coefs[i][r0:r1])
            for i, b in enumerate(intercepts):
                if n_layers + i not in done:
                    np.copyto(backup[n_layers + i], b)
            for p, saved in zip(params, backup, strict=True):
                np.copyto(p, saved)
            raise
        return math.isfinite(total)
