"""
=============================================
Decision boundaries of the hidden activations
=============================================

The hidden activation shapes the functions a network can draw. Here the same
small network (two hidden layers of 16 units, same seed, same optimizer) learns
the two-moons problem with each built-in activation. The identity makes the
whole network linear, so its boundary is a straight line; the others bend it,
the ReLU family with corners, ``tanh``, ``logistic``, ``elu`` and ``softplus``
with smooth curves.
"""

# %%
# The activations
# ---------------
# Each one is an :class:`~sklearn_bp.activations.Activation` object with a
# ``forward`` method, available by name. One panel each: ``relu``,
# ``leaky_relu`` and ``elu`` all equal the identity for ``z > 0`` and would hide
# one another on a shared plot; the dotted grey line is the identity, for
# reference.
import matplotlib.pyplot as plt
import numpy as np

from sklearn_bp.activations import ACTIVATIONS, get_activation

names = ["identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus"]
z = np.linspace(-3, 3, 200).reshape(-1, 1)
fig, axes = plt.subplots(2, 4, figsize=(10, 5), sharex=True, sharey=True)
for i, (ax, name) in enumerate(zip(axes.ravel(), names, strict=False)):
    ax.axhline(0, color="grey", lw=0.5)
    ax.axvline(0, color="grey", lw=0.5)
    if name != "identity":
        ax.plot(z, z, ":", color="grey", lw=1)
    ax.plot(z, get_activation(name).forward(z), color=f"C{i}", lw=2)
    ax.set(title=name, ylim=(-1.5, 3))
for ax in axes[-1]:
    ax.set(xlabel="z")
for ax in axes[:, 0]:
    ax.set(ylabel="f(z)")
axes.ravel()[-1].set_visible(False)
axes[0, -1].xaxis.set_tick_params(labelbottom=True)  # above the hidden panel
axes[0, -1].set(xlabel="z")
fig.suptitle("Built-in activations")
fig.tight_layout()
print(", ".join(sorted(ACTIVATIONS)))

# %%
# The same network with each activation
# --------------------------------------
# 300 noisy points in two interleaving half-moons, scaled; the colour shows the
# predicted probability of the red class. Every network trains for 500 epochs:
# ``tol=0`` and ``n_iter_no_change=500`` turn the stopping rule off (hence the
# silenced ``ConvergenceWarning``), because the logistic and softplus networks
# learn slowly at first and the default rule would stop them on that plateau.
import warnings

from sklearn.datasets import make_moons
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import DecisionBoundaryDisplay
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier

X, y = make_moons(n_samples=300, noise=0.25, random_state=0)
X = StandardScaler().fit_transform(X)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

fig, axes = plt.subplots(2, 4, figsize=(12, 6), sharex=True, sharey=True)
for ax, name in zip(axes.ravel(), names, strict=False):
    clf = BackpropClassifier(
        hidden_layer_sizes=(16, 16),
        activation=name,
        learning_rate_init=0.01,
        max_iter=500,
        tol=0.0,
        n_iter_no_change=500,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X_train, y_train)
    DecisionBoundaryDisplay.from_estimator(
        clf, X, response_method="predict_proba", cmap="RdBu_r", alpha=0.7, ax=ax
    )
    ax.scatter(*X_train.T, c=y_train, cmap="RdBu_r", edgecolor="k", s=15)
    ax.set_title(f"{name}: test accuracy {clf.score(X_test, y_test):.2f}")
axes.ravel()[-1].set_visible(False)
fig.tight_layout()
plt.show()
# sphinx_gallery_thumbnail_number = 2
