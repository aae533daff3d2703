"""Measurements: interleaved timings, peak extra memory, and the GEMM limit."""

import gc
import time
import tracemalloc
import warnings

import numpy as np
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning


def _quiet_fit(est, X, y):
    with warnings.catch_warnings():
        # max_iter is reached on purpose: the work is fixed.
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    return est


# Seconds between timed runs (OpenBLAS's idle threads spin for a few
# milliseconds before they sleep).
SETTLE = 0.2


def interleaved(funcs, repeats):
    """Time each callable ``repeats`` times, alternating the order.

    Round ``r`` runs ``A B`` when ``r`` is even and ``B A`` when it is odd, so
    that a slow phase of a shared machine hits both sides alike. Each run
    starts after a short pause (``SETTLE`` seconds), so that the BLAS threads
    the previous run left spinning have gone to sleep and do not slow the next
    one: measured on the L-BFGS rows, MLP's scipy threads spinning on made the
    fit that followed it up to 2x slower per iteration.

    Returns
    -------
    times : list of list of float
        ``times[k]`` holds the seconds of ``funcs[k]``'s runs.
    results : list
        The last return value of each callable.
    """
    times = [[] for _ in funcs]
    results = [None] * len(funcs)
    for r in range(repeats):
        order = range(len(funcs)) if r % 2 == 0 else reversed(range(len(funcs)))
        for k in order:
            gc.collect()
            time.sleep(SETTLE)
            start = time.perf_counter()
            results[k] = funcs[k]()
            times[k].append(time.perf_counter() - start)
    return times, results


def timed_fits(ours, theirs, X, y, repeats):
    """Interleaved fits of clones of both estimators; seconds and fitted models."""

    def fit(template):
        return lambda: _quiet_fit(clone(template), X, y)

    return interleaved([fit(ours), fit(theirs)], repeats)


def peak_fit_memory(template, X, y):
    """Peak bytes allocated during ``fit`` beyond what existed before it.

    Measured with :mod:`tracemalloc`, to which numpy reports every array data
    buffer it allocates (and Python reports its objects), so the peak covers
    parameters, optimizer state, workspaces and every temporary. Memory that
    OpenBLAS reserves for its own threads is not seen; it is the same for both
    estimators. The fit runs untimed: tracing slows Python allocations.
    """
    est = clone(template)
    return peak_call_memory(lambda: _quiet_fit(est, X, y))


def peak_call_memory(func):
    """Peak bytes allocated during ``func()`` beyond what existed before it
    (:mod:`tracemalloc`, see :func:`peak_fit_memory`)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        func()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def layer_shapes(n_features, hidden_layer_sizes, n_outputs):
    units = [n_features, *hidden_layer_sizes, n_outputs]
    return list(zip(units[:-1], units[1:], strict=False))


def gemm_rate(shapes, batch_size, dtype, min_seconds=0.3, rounds=5):
    """FLOP/s that ``numpy.matmul`` reaches on one training step's products.

    For every layer ``(fan_in, fan_out)`` the three products of a step at the
    same shapes and memory layouts the training loop uses: ``A @ W`` (forward),
    ``A.T @ delta`` (weight gradient) and ``delta @ W.T`` (backpropagated
    delta), ``2 * batch * fan_in * fan_out`` FLOPs each. Returns the median rate
    over ``rounds`` timings of at least ``min_seconds`` / ``rounds`` each.
    """
    rng = np.random.default_rng(0)
    ops = []
    flops = 0
    for fan_in, fan_out in shapes:
        A = rng.standard_normal((batch_size, fan_in)).astype(dtype)
        W = rng.standard_normal((fan_in, fan_out)).astype(dtype)
        delta = rng.standard_normal((batch_size, fan_out)).astype(dtype)
        Z = np.empty((batch_size, fan_out), dtype)
        G = np.empty((fan_in, fan_out), dtype)
        D = np.empty((batch_size, fan_in), dtype)
        ops += [(A, W, Z), (A.T, delta, G), (delta, W.T, D)]
        flops += 3 * 2 * batch_size * fan_in * fan_out

    def one_step():
        for a, b, out in ops:
            np.matmul(a, b, out=out)

    one_step()
    start = time.perf_counter()
    one_step()
    once = max(time.perf_counter() - start, 1e-6)
    n_steps = max(1, int(min_seconds / rounds / once))
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n_steps):
            one_step()
        rates.append(flops * n_steps / (time.perf_counter() - start))
    return float(np.median(rates))


def gemm_limit_seconds(n_samples, shapes, rate):
    """``6 * n_samples * sum(fan_in * fan_out)`` FLOPs at ``rate``: s/epoch."""
    return 6.0 * n_samples * sum(a * b for a, b in shapes) / rate


def performed_gemm_seconds(n_samples, shapes, rate):
    """The same, without the first layer's ``delta @ W.T``, which nobody computes."""
    first = shapes[0][0] * shapes[0][1]
    return (6.0 * sum(a * b for a, b in shapes) - 2.0 * first) * n_samples / rate


def timed_predicts(est_a, est_b, X, repeats):
    """Interleaved ``predict`` timings of two fitted estimators.

    One untimed call of each first: the first large product after a fit pays
    for page faults on fresh output memory (measured: 0.8 s instead of 0.45 s
    on W4), which with few repeats would land on whichever side runs first.
    """
    return timed_calls(est_a, est_b, "predict", X, repeats)


def timed_calls(est_a, est_b, method, X, repeats):
    """Interleaved timings of ``getattr(est, method)(X)`` on two estimators,
    after one untimed call of each (see :func:`timed_predicts`)."""
    funcs = [lambda: getattr(est_a, method)(X), lambda: getattr(est_b, method)(X)]
    interleaved(funcs, 1)
    return interleaved(funcs, repeats)[0]


def is_sparse(X):
    return sparse.issparse(X)
