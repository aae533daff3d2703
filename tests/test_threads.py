"""The thread policy: small steps and predictions run with one BLAS thread.

Their products are too small to share between threads, and on a machine
whose other cores are busy every threaded product waits for a descheduled
BLAS thread (see sklearn_bp._threads). Large ones keep BLAS's threads, and
every limit is lifted when the fit or prediction ends.
"""

import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info, threadpool_limits

from sklearn_bp import BackpropClassifier
from sklearn_bp._threads import _MIN_THREADED_STEP, blas_threads_for
from sklearn_bp.activations import ReLU


def blas_threads():
    return {info["filepath"]: info["num_threads"] for info in threadpool_info()
            if info["user_api"] == "blas"}


class RecordingReLU(ReLU):
    """ReLU that records BLAS's thread counts whenever it runs."""

    seen = []

    def _forward_into(self, Z, out):
        RecordingReLU.seen.append(blas_threads())
        return super()._forward_into(Z, out)


def _fit(hidden, n_samples, n_features, batch_size):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((n_samples, n_features))
    y = np.arange(n_samples) % 3
    clf = BackpropClassifier(hidden_layer_sizes=hidden, activation=RecordingReLU(),
                             batch_size=batch_size, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(X, y), X


@pytest.mark.parametrize(
    "hidden, batch_size, small",
    [((16,), 32, True),  # 3 * 32 * (20*16 + 16*3) multiply-adds: tiny
     ((1024,), 200, False)],  # 3 * 200 * (20*1024 + 1024*3): 14 million
)
def test_small_steps_run_with_one_blas_thread_and_restore_it(hidden, batch_size, small):
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        RecordingReLU.seen = []
        clf, X = _fit(hidden, 400, 20, batch_size)
        during_fit = RecordingReLU.seen
        assert during_fit
        expected = {path: 1 for path in before} if small else before
        assert all(threads == expected for threads in during_fit)
        assert blas_threads() == before
        # prediction follows the same rule, on its chunks
        RecordingReLU.seen = []
        clf.predict(X)
        assert RecordingReLU.seen
        # (400 rows in one chunk: 400 * (20*16 + 16*3) is small; the wide
        # network's 400 * 23,552 = 9.4 million is not)
        assert all(threads == expected for threads in RecordingReLU.seen)
        assert blas_threads() == before


def test_the_count_leaves_out_a_sparse_first_layer():
    coefs = [np.zeros((100_000, 64)), np.zeros((64, 3))]
    n_rows = 200
    # dense: 3 * 200 * 6.4 million multiply-adds, far above the limit
    assert 3 * n_rows * coefs[0].size > _MIN_THREADED_STEP
    dense_X = np.zeros((1, 100_000))
    sparse_X = sparse.csr_matrix(dense_X)
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        with blas_threads_for(coefs, dense_X, n_rows):
            assert blas_threads() == before
        # sparse X: the first product is scipy's, not BLAS's; the rest is small
        with blas_threads_for(coefs, sparse_X, n_rows):
            assert set(blas_threads().values()) == {1}
        assert blas_threads() == before
