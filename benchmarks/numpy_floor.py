"""How fast can a small-batch step be in numpy? A hand-written W1 loop.

Target 3 of the second performance issue asks a W1 epoch (digits, (100,),
ReLU, softmax, Adam, batch 200) in at most half of MLPClassifier's time. A W1
step is a few small products and about forty numpy calls on arrays of a few
thousand elements, so its cost is the calls' own, not the arithmetic. This
script measures the floor of that cost: the same training written as the
shortest numpy loop we could write, timed side by side with our estimator and
MLP, interleaved, in one process.

The loop does the same work as ``fit``:

- the same initial weights and shuffles (drawn as ``fit`` draws them, see
  :func:`torch_loop.initial_params`), the same batches (the last one short);
- forward with ReLU, softmax cross-entropy, the L2 term ``alpha / n * W``,
  backward, ``torch.optim.Adam``'s update over one packed parameter vector;
- every array preallocated, every operation in place, one numpy call per
  operation.

It leaves out what an estimator must do and a throw-away loop need not: the
loss is ``log(sum exp)`` rather than the accurate ``log1p`` form (kept per
batch, as a loss curve needs); nothing is
checked for overflow (no divergence detection, no rollback copy of the
parameters, no finite checks); no loss per epoch, no stopping rule, no
callbacks. So it is a floor, not a competitor: what a step costs with numpy's
calls alone. The training accuracy it reaches is printed, to show that it
trains the same network.

Usage::

    python benchmarks/numpy_floor.py [--epochs 60] [--repeats 5] [--threads 1]
"""

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils import gen_batches
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import _quiet_fit, interleaved  # noqa: E402
from torch_loop import initial_params  # noqa: E402

from sklearn_bp import BackpropClassifier  # noqa: E402

HIDDEN, BATCH, ALPHA, LR = (100,), 200, 1e-4, 1e-3
BETA_1, BETA_2, EPS = 0.9, 0.999, 1e-8


def numpy_loop(X, y, epochs, random_state=0):
    """Train W1's network with the shortest numpy loop.

    Returns
    -------
    coefs, intercepts : list of ndarray
        The trained parameters, shaped as the estimator's ``coefs_`` and
        ``intercepts_`` (``tests/test_benchmark_floor.py`` checks that they are
        the estimator's, to rounding).
    """
    dtype = X.dtype
    n, n_features = X.shape
    classes = np.unique(y)
    Y = (y[:, None] == classes).astype(dtype)
    coefs, intercepts, rng = initial_params(
        HIDDEN, n_features, len(classes), random_state, dtype
    )
    # One packed vector for the parameters, another for the gradients: Adam
    # runs once over all of them.
    sizes = [a.size for a in coefs + intercepts]
    flat, grad = np.empty(sum(sizes), dtype), np.zeros(sum(sizes), dtype)
    views, gviews, start = [], [], 0
    for a in coefs + intercepts:
        views.append(flat[start : start + a.size].reshape(a.shape))
        gviews.append(grad[start : start + a.size].reshape(a.shape))
        views[-1][...] = a
        start += a.size
    W1, W2, b1, b2 = views
    gW1, gW2, gb1, gb2 = gviews
    m, v, s = np.zeros_like(flat), np.zeros_like(flat), np.empty_like(flat)
    Xb, Yb = (
        np.empty((BATCH, n_features), dtype),
        np.empty((BATCH, len(classes)), dtype),
    )
    Z1, Z2 = np.empty((BATCH, HIDDEN[0]), dtype), np.empty((BATCH, len(classes)), dtype)
    D1 = np.empty_like(Z1)
    mask = np.empty(Z1.shape, bool)
    penalty1, penalty2 = np.empty_like(W1), np.empty_like(W2)
    order, t, losses = np.arange(n), 0, []
    for _ in range(epochs):
        order = order[rng.permutation(n)]
        for rows in gen_batches(n, BATCH):
            k = rows.stop - rows.start
            x, yb, z1, z2, d1 = Xb[:k], Yb[:k], Z1[:k], Z2[:k], D1[:k]
            X.take(order[rows], axis=0, out=x)
            Y.take(order[rows], axis=0, out=yb)
            np.matmul(x, W1, out=z1)
            z1 += b1
            np.maximum(z1, 0, out=z1)
            np.matmul(z1, W2, out=z2)
            z2 += b2
            z2 -= z2.max(axis=1, keepdims=True)
            y_dot = np.einsum("ij,ij->i", yb, z2)
            np.exp(z2, out=z2)
            total = z2.sum(axis=1)
            loss = np.log(total)
            loss -= y_dot
            losses.append(float(loss.mean()))
            z2 /= total[:, None]
            z2 -= yb
            z2 *= 1.0 / k
            l2 = ALPHA / k
            np.matmul(z1.T, z2, out=gW2)
            gW2 += np.multiply(W2, l2, out=penalty2)
            z2.sum(axis=0, out=gb2)
            np.matmul(z2, W2.T, out=d1)
            d1 *= np.greater(z1, 0, out=mask[:k])
            np.matmul(x.T, d1, out=gW1)
            gW1 += np.multiply(W1, l2, out=penalty1)
            d1.sum(axis=0, out=gb1)
            t += 1
            m *= BETA_1
            m += np.multiply(grad, 1 - BETA_1, out=s)
            v *= BETA_2
            np.multiply(grad, grad, out=s)
            s *= 1 - BETA_2
            v += s
            # lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), one pass fewer:
            # (lr / bc1 * sqrt(bc2)) * m / (sqrt(v) + eps * sqrt(bc2))
            root_bc2 = (1 - BETA_2**t) ** 0.5
            np.sqrt(v, out=s)
            s += EPS * root_bc2
            np.divide(m, s, out=s)
            s *= LR / (1 - BETA_1**t) * root_bc2
            flat -= s
    return [W1.copy(), W2.copy()], [b1.copy(), b2.copy()]


def _loop_accuracy(X, y, epochs):
    (W1, W2), (b1, b2) = numpy_loop(X, y, epochs)
    Z = np.maximum(X @ W1 + b1, 0) @ W2 + b2
    return float(np.mean(np.unique(y)[Z.argmax(axis=1)] == y))


def estimator_params(epochs):
    """The settings both estimators are fitted with: the loop's work, a fixed
    number of epochs (no stopping rule)."""
    return dict(
        hidden_layer_sizes=HIDDEN,
        batch_size=BATCH,
        alpha=ALPHA,
        learning_rate_init=LR,
        max_iter=epochs,
        tol=0.0,
        n_iter_no_change=10**9,
        random_state=0,
    )


def _score(est, X, y):
    return _quiet_fit(est, X, y).score(X, y)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="BLAS threads (default: the library's own setting)",
    )
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    params = estimator_params(args.epochs)
    print(
        f"W1 ({X.shape[0]}x{X.shape[1]} digits, {HIDDEN}, adam, batch {BATCH}), "
        f"{args.epochs} epochs, median of {args.repeats} interleaved fits, "
        f"BLAS threads: {args.threads or 'default'}"
    )
    print(
        f"{'dtype':8} {'floor s/ep':>10} {'ours s/ep':>10} {'MLP s/ep':>10} "
        f"{'floor/MLP':>9} {'ours/MLP':>9} {'ours/floor':>10}   accuracy floor/ours/MLP"
    )
    with threadpool_limits(args.threads):
        for dtype in (np.float64, np.float32):
            Xd = X.astype(dtype)
            runs = {
                "floor": lambda Xd=Xd: _loop_accuracy(Xd, y, args.epochs),
                "ours": lambda Xd=Xd: _score(BackpropClassifier(**params), Xd, y),
                "MLP": lambda Xd=Xd: _score(MLPClassifier(**params), Xd, y),
            }
            seconds, results = interleaved(list(runs.values()), args.repeats)
            med = {
                name: statistics.median(ts) / args.epochs
                for name, ts in zip(runs, seconds, strict=True)
            }
            scores = dict(zip(runs, results, strict=True))
            print(
                f"{np.dtype(dtype).name:8} {med['floor']:10.5f} {med['ours']:10.5f} "
                f"{med['MLP']:10.5f} {med['floor'] / med['MLP']:9.3f} "
                f"{med['ours'] / med['MLP']:9.3f} {med['ours'] / med['floor']:10.3f}   "
                f"{scores['floor']:.4f}/{scores['ours']:.4f}/{scores['MLP']:.4f}"
            )


if __name__ == "__main__":
    main()
