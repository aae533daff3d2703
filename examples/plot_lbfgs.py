"""
==================================================
L-BFGS and Adam, next to MLP's ``solver="lbfgs"``
==================================================

``optimizer="lbfgs"`` trains on the whole training set at once with scipy's
L-BFGS-B, as :class:`~sklearn.neural_network.MLPClassifier` does with
``solver="lbfgs"``: each iteration is one pass (or a few, during line searches)
over all the rows, and ``max_iter`` counts iterations. Adam takes a step after
every mini-batch instead. On a small data set that fits in memory, which gets
to a low training loss sooner?

The three models start from the same initial weights (same ``random_state``
and architecture); our L-BFGS follows MLP's iteration for iteration, so the
difference between those two is the time an iteration takes. More in the user
guide's :ref:`lbfgs` section.
"""

# %%
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

# alpha=0: every curve below is the plain mean log-loss, without an L2 term
common = dict(hidden_layer_sizes=(64,), alpha=0.0, random_state=0)


def quiet_fit(est):
    """Fit, without the warning of a max_iter that is small on purpose."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X_train, y_train)


def timed_fit(est, repeats=3):
    """Fit ``repeats`` times; the shortest time (the others met a busy CPU)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        quiet_fit(est)
        times.append(time.perf_counter() - start)
    return min(times)


# %%
# With L-BFGS, ``tol`` is scipy's gradient tolerance (``gtol``), as in MLP: the
# run ends when no component of the gradient exceeds it. Adam runs 100 epochs
# of mini-batches of 200 rows.
#
# Our two optimizers record ``loss_curve_``, one entry per L-BFGS iteration or
# per Adam epoch; each curve is spread evenly over its fit's wall time. MLP's
# L-BFGS keeps no curve: a few refits with a smaller ``max_iter`` give its
# loss after 5, 10, ... iterations, placed at that many times its own seconds
# per iteration.
lbfgs = BackpropClassifier(optimizer="lbfgs", max_iter=200, tol=1e-6, **common)
adam = BackpropClassifier(optimizer="adam", max_iter=100, tol=0.0, **common)
mlp = MLPClassifier(solver="lbfgs", max_iter=200, tol=1e-6, **common)
seconds = {
    "ours, L-BFGS": timed_fit(lbfgs),
    "ours, Adam": timed_fit(adam),
    "MLP, L-BFGS": timed_fit(mlp),
}

fig, ax = plt.subplots(figsize=(7, 4.5))
for label, est, unit in (
    ("ours, L-BFGS", lbfgs, "iterations"),
    ("ours, Adam", adam, "epochs"),
):
    curve = np.asarray(est.loss_curve_)
    elapsed = seconds[label] * np.arange(1, curve.size + 1) / curve.size
    ax.plot(elapsed, curve, label=f"{label}: {est.n_iter_} {unit}")
steps = np.arange(5, mlp.n_iter_ + 1, 5)
mlp_losses = [
    quiet_fit(clone(mlp).set_params(max_iter=int(k))).loss_ for k in steps
]
ax.plot(steps * seconds["MLP, L-BFGS"] / mlp.n_iter_, mlp_losses, "ko--",
        label=f"MLP, L-BFGS: {mlp.n_iter_} iterations")
ax.set(xlabel="wall time (s)", ylabel="training log-loss (log scale)",
       yscale="log", title="Digits, 64 hidden ReLU units")
ax.legend()
plt.show()

# %%
# The final models, judged by the same yardstick: the log-loss on the whole
# training set computed by scikit-learn from ``predict_proba`` (Adam's
# ``loss_curve_`` averages the batches' losses while the weights move), and
# the accuracies.
models = {"ours, L-BFGS": lbfgs, "ours, Adam": adam, "MLP, L-BFGS": mlp}
print(f"{'model':14s} {'iters':>5s} {'fit s':>6s} {'train loss':>10s} "
      f"{'train acc':>9s} {'test acc':>8s}")
for label, est in models.items():
    train_loss = log_loss(y_train, est.predict_proba(X_train))
    print(f"{label:14s} {est.n_iter_:5d} {seconds[label]:6.2f} {train_loss:10.2e} "
          f"{est.score(X_train, y_train):9.3f} {est.score(X_test, y_test):8.3f}")

# %%
# Adam moves first (it updates the weights after every mini-batch, several
# times per pass), but L-BFGS, whose steps use the curvature seen in its last
# iterations, soon falls geometrically and ends orders of magnitude lower. Both
# L-BFGS implementations take the same path (the same loss after the same
# iterations); they differ in the time an iteration takes (timings on a busy
# machine vary, see :ref:`performance` for measured ones).
#
# The test accuracies are much closer than the training losses: a training
# loss near zero is memorisation. With L-BFGS, regularise with ``alpha`` or
# ``early_stopping=True`` (which, unlike MLP's, works with L-BFGS). On large
# data, or with ``partial_fit``, Adam is the tool.
