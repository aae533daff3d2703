"""
======================================================
Tuning the optimizer's own parameters in a grid search
======================================================

An optimizer given as an instance exposes its hyper-parameters as nested
parameters of the estimator: ``optimizer__beta_1`` for
:class:`~sklearn_bp.optimizers.Adam`, ``optimizer__rho`` for
:class:`~sklearn_bp.optimizers.RMSprop`. Inside a pipeline they get the step's
prefix, so a :class:`~sklearn.model_selection.GridSearchCV` can search them next
to the estimator's own parameters, and can even search over the optimizer
itself with one sub-grid per optimizer.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier
from sklearn_bp.optimizers import Adam, RMSprop

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

pipe = Pipeline(
    [
        ("scale", StandardScaler()),
        (
            "net",
            BackpropClassifier(
                hidden_layer_sizes=(32,), optimizer=Adam(), max_iter=20,
                batch_size=64, random_state=0,
            ),
        ),
    ]
)
# The optimizer's nested parameters, one per line:
for key in sorted(pipe.get_params()):
    if key.startswith("net__optimizer"):
        print(key)

# %%
# One sub-grid per optimizer: a nested parameter can only be set on an
# instance that has it (setting ``optimizer__rho`` while the optimizer is
# ``"adam"`` or an ``Adam`` raises a clear error). The learning rate is searched
# in both.
param_grid = [
    {
        "net__optimizer": [Adam()],
        "net__optimizer__beta_1": [0.5, 0.9],
        "net__learning_rate_init": [0.001, 0.01],
    },
    {
        "net__optimizer": [RMSprop()],
        "net__optimizer__rho": [0.9, 0.99],
        "net__learning_rate_init": [0.001, 0.01],
    },
]
search = GridSearchCV(pipe, param_grid, cv=3)
with warnings.catch_warnings():
    # 20 epochs keep the example fast; the networks have not fully converged.
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)
print("best parameters:")
for key, value in search.best_params_.items():
    print(f"  {key} = {value!r}")
print(f"cross-validated accuracy {search.best_score_:.3f}, "
      f"test accuracy {search.score(X_test, y_test):.3f}")

# %%
# The results table
# -----------------
# Each optimizer setting (rows) against the learning rate (columns).
rates = [0.001, 0.01]
rows, scores = [], {}
results = search.cv_results_
for params, score in zip(results["params"], results["mean_test_score"], strict=True):
    name = type(params["net__optimizer"]).__name__
    if "net__optimizer__beta_1" in params:
        row = f"{name}, beta_1={params['net__optimizer__beta_1']}"
    else:
        row = f"{name}, rho={params['net__optimizer__rho']}"
    if row not in rows:
        rows.append(row)
    scores[row, params["net__learning_rate_init"]] = score
table = np.array([[scores[row, lr] for lr in rates] for row in rows])

fig, ax = plt.subplots(figsize=(5, 3.5))
image = ax.imshow(table, cmap="viridis")
ax.set_xticks(range(len(rates)), [f"lr={lr}" for lr in rates])
ax.set_yticks(range(len(rows)), rows)
for (i, j), score in np.ndenumerate(table):
    ax.text(j, i, f"{score:.3f}", ha="center", va="center", color="w")
ax.set_title("Mean cross-validated accuracy")
fig.colorbar(image)
fig.tight_layout()
plt.show()
