"""
==================================================================
Robust regression: squared, Huber and absolute error with outliers
==================================================================

The squared error punishes a residual ``r`` by ``r**2 / 2``, so a few large
outliers pull the whole fit towards them. The absolute error grows like ``|r|``
and the Huber loss is quadratic up to ``delta`` and linear beyond: both give
each outlier a bounded pull (the gradient of the loss is capped), and the fit
follows the bulk of the data.

The three networks are identical apart from ``loss``.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np

from sklearn_bp import BackpropRegressor
from sklearn_bp.losses import Huber

rng = np.random.RandomState(0)
X = np.sort(rng.uniform(-3, 3, size=(300, 1)), axis=0)
y_clean = np.sin(X[:, 0]) + 0.3 * X[:, 0]
y = y_clean + rng.normal(scale=0.15, size=300)
outliers = rng.choice(300, size=30, replace=False)  # 10% of the targets
y[outliers] += rng.uniform(4, 8, size=30)  # all pushed up

losses = {
    "squared_error": "squared_error",
    "huber (delta=1)": "huber",
    "huber (delta=0.2)": Huber(delta=0.2),
    "absolute_error": "absolute_error",
}
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.scatter(X, y, s=8, color="grey", label="data, 10% outliers")
ax.plot(X, y_clean, "k--", label="true function")
for label, loss in losses.items():
    reg = BackpropRegressor(
        hidden_layer_sizes=(32, 32), loss=loss, learning_rate_init=0.01,
        max_iter=300, random_state=0,
    ).fit(X, y)
    error = np.mean((reg.predict(X) - y_clean) ** 2)
    ax.plot(X, reg.predict(X), lw=2, label=f"{label}: MSE to truth {error:.3f}")
    print(f"{label:18s} mean squared error to the true function: {error:.3f}")
ax.set(xlabel="x", ylabel="y", ylim=(-3, 9))
ax.legend(loc="upper left")
plt.show()

# %%
# The squared error shifts its curve up towards the outliers. A smaller Huber
# ``delta`` caps each residual's pull sooner and behaves more like the absolute
# error, which estimates a conditional *median* rather than a mean.
