"""Who may use how many threads: BLAS's pools and the fused step's.

One policy for the whole package, through :mod:`threadpoolctl`: the fused
step (:mod:`sklearn_bp._fused`) takes as many threads as BLAS may use and
limits BLAS to one meanwhile; steps and predictions whose products are too
small to share run with one BLAS thread; L-BFGS keeps scipy's own OpenBLAS
pool to one thread. Limits are process-wide and counted, so that fits running
at the same time in several threads restore them in the right order.
"""

import threading
from contextlib import contextmanager, nullcontext

from scipy import sparse
from threadpoolctl import ThreadpoolController

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


# At most this many threads for the fused step: its products are split into
# parts of at least 64 rows or columns, and the benchmark networks' layers
# have about a thousand. (Only 2 cores were available to measure; more threads
# than that are untested.)
_MAX_THREADS = 8


def thread_budget():
    """Threads the fused step may use: as many as BLAS may use right now.

    This follows ``threadpoolctl.threadpool_limits``, the ``OMP_NUM_THREADS``
    and ``OPENBLAS_NUM_THREADS`` variables and joblib's limits in its workers:
    one knob for both. At most ``_MAX_THREADS``.
    """
    blas_threads = min((lib.num_threads for lib in _blas().lib_controllers), default=1)
    return max(1, min(blas_threads, _MAX_THREADS))


_limit_lock = threading.Lock()
_limited = {}  # library path -> [fits inside the limit, its original thread count]


@contextmanager
def _one_thread(libraries):
    """Limit ``libraries`` (threadpoolctl controllers) to one thread meanwhile.

    The limit is process-wide and counted per library: fits running at the
    same time in several threads share it (also when their limits cover
    different libraries), and each library gets its original thread count
    back when the last fit that limited it ends. (Nested
    ``threadpool_limits`` calls from several threads would restore each
    other's limits in the wrong order.)
    """
    libraries = list(libraries)
    with _limit_lock:
        for lib in libraries:
            entry = _limited.setdefault(lib.filepath, [0, lib.num_threads])
            if entry[0] == 0:
                entry[1] = lib.num_threads
                lib.set_num_threads(1)
            entry[0] += 1
    try:
        yield
    finally:
        with _limit_lock:
            for lib in libraries:
                entry = _limited[lib.filepath]
                entry[0] -= 1
                if entry[0] == 0:
                    lib.set_num_threads(entry[1])


def single_threaded_blas():
    """Limit BLAS to one thread while the fused step's threads run."""
    return _one_thread(_blas().lib_controllers)


def _blas_besides_numpys():
    """The BLAS libraries loaded besides numpy's own (none if unknown).

    scipy's wheels ship an OpenBLAS of their own, which L-BFGS-B's vector
    operations use while numpy's pool serves the network's products.
    """
    libraries = _blas().lib_controllers
    others = [lib for lib in libraries if "numpy" not in lib.filepath]
    if len(others) == len(libraries):
        return []  # one shared library, or none known to be numpy's
    return others


def single_threaded_scipy_blas():
    """One thread for the BLAS libraries besides numpy's, during L-BFGS.

    Measured on the L-BFGS benchmark rows (2 cores): with both OpenBLAS pools
    threaded, an iteration takes 3.5 to 4 times as long (digits, (100,): 12.0
    ms instead of 3.0 ms, fits run alone), the two pools' idle threads
    spinning against each other; numpy's products keep their threads.
    """
    return _one_thread(_blas_besides_numpys())


# Steps whose dense matrix products do fewer multiply-adds than this run with
# one BLAS thread. Their products are too small to split well. On the
# benchmark machine (2 cores, OpenBLAS): load_digits' (100,) network at batch
# 200 (4.4 million a step, counted as blas_threads_for does) took as long with two
# threads as with one on a quiet machine, and 20 to 60 times longer with
# another process busy on the second core (each product waits for a
# descheduled BLAS thread: 0.07 to 0.21 s an epoch instead of 0.0035). W2's
# (256, 128) network is 1.7 times faster on two threads at batch 200 (36
# million); at batch 32 (5.7 million) one thread and two are even.
_MIN_THREADED_STEP = 1 << 23


def blas_threads_for(coefs, X, n_rows, passes=3):
    """The context for products on ``n_rows`` rows of ``X`` with ``coefs``:
    one BLAS thread when they are small (``_MIN_THREADED_STEP``), else no limit.

    ``passes`` is the products' multiply-adds per weight and row: about 3 for
    a training step (forward, weight gradient, backpropagated delta), 1 for a
    forward pass.
    """
    dense = coefs[1:] if sparse.issparse(X) else coefs
    if passes * n_rows * sum(W.size for W in dense) < _MIN_THREADED_STEP:
        return single_threaded_blas()
    return nullcontext()
