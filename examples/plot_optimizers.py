"""
=================================
SGD, Adam and RMSprop loss curves
=================================

The three built-in optimizers train the same network, from the same initial
weights (the initialisation depends only on ``random_state`` and the
architecture), on the digits data. ``loss_curve_`` holds one mean training loss
per epoch. Each optimizer gets a learning rate in its usual range: Adam and
RMSprop scale each parameter's step by a running estimate of its gradient's
magnitude, so they need much smaller rates than SGD.

The update rules, and their equality with ``torch.optim``, are in the user
guide's :ref:`optimizers` section.
"""

# %%
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier
from sklearn_bp.optimizers import SGD, Adam, RMSprop

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

optimizers = {
    "SGD (lr=0.01)": (SGD(momentum=0.0, nesterov=False), 0.01),
    "SGD + Nesterov momentum 0.9 (lr=0.01)": (SGD(momentum=0.9), 0.01),
    "Adam (lr=0.001)": (Adam(), 0.001),
    "RMSprop (lr=0.001)": (RMSprop(rho=0.9), 0.001),
}

# %%
# Train each for 40 epochs of mini-batches of 64 samples. ``tol=0`` and a large
# ``n_iter_no_change`` switch off the stopping rule so that every curve has all
# 40 epochs; the resulting ``ConvergenceWarning`` is expected.
fig, ax = plt.subplots(figsize=(7, 4.5))
for label, (optimizer, lr) in optimizers.items():
    clf = BackpropClassifier(
        hidden_layer_sizes=(64,),
        optimizer=optimizer,
        learning_rate_init=lr,
        batch_size=64,
        max_iter=40,
        tol=0.0,
        n_iter_no_change=1000,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    accuracy = clf.score(X_test, y_test)
    epochs = range(1, clf.n_iter_ + 1)
    ax.plot(epochs, clf.loss_curve_, label=f"{label}: {accuracy:.3f}")
    print(f"{label:40s} final loss {clf.loss_:.4f}, test accuracy {accuracy:.3f}")
ax.set(
    xlabel="epoch",
    ylabel="mean training loss (log scale)",
    yscale="log",
    title="Digits, 64 hidden ReLU units (legend: test accuracy)",
)
ax.legend()
plt.show()

# %%
# Momentum multiplies plain SGD's progress: with Nesterov momentum it is the
# fastest in the first epochs here. RMSprop keeps going down fastest later, and
# Adam sits in between. The lowest training loss is not the goal, though: the
# test accuracies are close, and each optimizer's learning rate deserves tuning
# (see :ref:`sphx_glr_auto_examples_plot_grid_search.py`).
