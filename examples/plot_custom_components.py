"""
==================================================
A custom activation and a custom loss, with checks
==================================================

An activation is a class with ``forward(Z)`` and ``derivative(Z, A)``; a loss is
a class with ``link(raw)``, ``loss(y, raw, sample_weight)`` and
``gradient(y, raw)``. Here we write the Swish activation
``f(z) = z * sigmoid(beta * z)`` and the log-cosh loss
``mean(log(cosh(raw - y)))``, which is quadratic near the target and linear far
from it, check both derivatives against central finite differences, then train a
regressor with them.

A wrong derivative does not raise an error: the network just learns badly. A
finite-difference check is the cheap way to know.
"""

# %%
# The activation
# --------------
# Hyper-parameters are keyword-only constructor arguments stored under their
# own names: ``beta`` becomes the nested parameter ``activation__beta``.
import numpy as np
from scipy.special import expit

from sklearn_bp.activations import Activation


class Swish(Activation):
    """Swish (SiLU for beta=1): f(z) = z * sigmoid(beta * z)."""

    def __init__(self, *, beta=1.0):
        self.beta = beta

    def forward(self, Z):
        return Z * expit(float(self.beta) * Z)

    def derivative(self, Z, A):
        # f'(z) = s + beta * z * s * (1 - s) with s = sigmoid(beta * z).
        # A = z * s cannot give s back where z == 0, so recompute s from Z.
        beta = float(self.beta)
        s = expit(beta * Z)
        return s + beta * Z * s * (1 - s)


# %%
# The loss
# --------
# ``raw`` and ``y`` have shape ``(n_samples, n_outputs)``. ``loss`` returns the
# sample-weighted mean of the per-sample losses (each the mean over outputs);
# ``gradient`` returns, row by row, the gradient of each sample's own loss with
# respect to its raw output. The estimator does the weighting and the division
# by the batch's weight sum.
from sklearn_bp.losses import Loss


class LogCosh(Loss):
    """Log-cosh loss: mean over outputs of log(cosh(raw - y))."""

    def link(self, raw):
        return raw  # identity: predictions are the raw outputs

    def loss(self, y, raw, sample_weight=None):
        r = np.abs(raw - y)
        # log(cosh(r)) = r + log(1 + exp(-2 r)) - log(2), finite for any r
        per_sample = np.mean(
            r + np.log1p(np.exp(-2 * r)) - np.log(2), axis=1
        )
        return float(np.average(per_sample, weights=sample_weight))

    def gradient(self, y, raw):
        return np.tanh(raw - y) / raw.shape[1]


# %%
# Check the activation's derivative
# ---------------------------------
# Central differences ``(f(z + h) - f(z - h)) / 2h`` have an error of order
# ``h**2``; with ``h = 1e-6`` in float64 the agreement should be around 1e-9.
import matplotlib.pyplot as plt

swish = Swish(beta=1.5)
z = np.linspace(-4, 4, 81).reshape(-1, 1)
h = 1e-6
numerical = (swish.forward(z + h) - swish.forward(z - h)) / (2 * h)
analytic = swish.derivative(z, swish.forward(z))
print("activation: max |analytic - numerical| =", np.max(np.abs(analytic - numerical)))

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(z, swish.forward(z), label="Swish(beta=1.5).forward")
ax.plot(z, analytic, label="derivative (analytic)")
ax.plot(z[::4], numerical[::4], "k.", label="derivative (finite differences)")
ax.set(xlabel="z", title="A custom activation and its checked derivative")
ax.legend()

# %%
# Check the loss's gradient
# -------------------------
# The contract: the gradient of ``loss(y, raw, w)`` with respect to ``raw[i]``
# is ``w[i] * gradient(y, raw)[i] / sum(w)``. Check it with weights, entry by
# entry.
rng = np.random.RandomState(0)
y = rng.normal(size=(5, 2))
raw = rng.normal(scale=3, size=(5, 2))
w = rng.uniform(0.5, 2, size=5)
log_cosh = LogCosh()
numerical = np.zeros_like(raw)
for index in np.ndindex(*raw.shape):
    step = np.zeros_like(raw)
    step[index] = h
    numerical[index] = (
        log_cosh.loss(y, raw + step, w) - log_cosh.loss(y, raw - step, w)
    ) / (2 * h)
analytic = w[:, None] * log_cosh.gradient(y, raw) / w.sum()
print("loss: max |analytic - numerical| =", np.max(np.abs(analytic - numerical)))

# %%
# Check the whole network's gradient
# ----------------------------------
# The components are right on their own; :func:`sklearn_bp.utils.check_gradients`
# checks that they fit the estimator's contract together: it builds a small
# network with them, backpropagates, and compares every weight's and bias's
# gradient with central finite differences (L2 term included). About 1e-8 or
# less means correct; a wrong derivative gives something near 1.
from sklearn_bp.utils import check_gradients

error = check_gradients(swish, log_cosh, alpha=0.1, hidden_layer_sizes=(4, 3))
print(f"network: relative gradient error = {error:.1e}")

# %%
# Train with them
# ---------------
# Both are passed as instances; ``beta`` is now a parameter of the estimator,
# which a grid search could tune as ``activation__beta``.
from sklearn_bp import BackpropRegressor

X = np.sort(rng.uniform(-3, 3, size=(200, 1)), axis=0)
y = np.sin(2 * X[:, 0]) + rng.normal(scale=0.1, size=200)
y[rng.choice(200, size=15, replace=False)] += rng.normal(scale=3, size=15)

reg = BackpropRegressor(
    hidden_layer_sizes=(32, 32),
    activation=Swish(beta=1.5),
    loss=LogCosh(),
    learning_rate_init=0.01,
    max_iter=400,
    random_state=0,
).fit(X, y)
print(reg.get_params()["activation__beta"], reg.n_iter_)

fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter(X, y, s=8, color="grey", label="data (with outliers)")
ax.plot(X, np.sin(2 * X), "k--", label="sin(2x)")
ax.plot(X, reg.predict(X), lw=2, label="Swish network, log-cosh loss")
ax.set(xlabel="x", ylim=(-3, 3))
ax.legend()
plt.show()
