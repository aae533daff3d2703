"""
============================================
Dropout and weight decay against overfitting
============================================

A network much larger than its data learns the training rows by heart,
noise included. Here 300 training rows of a three-class problem, 15 % of
them with a random label, meet two hidden layers of 128 units (about 22,000
weights). We train four versions of that network for 60 epochs:

- no regularization;
- ``dropout=0.6`` on both hidden layers;
- decoupled weight decay, ``optimizer=AdamW(weight_decay=5.0)``;
- both.

All four use ``alpha=0``, so MLP's L2 term plays no part, and the same
``random_state``, so they start from the same weights. The math of each option
is in the user guide's :ref:`regularization` page.

To see the curves, each network is trained one epoch at a time with
``partial_fit`` (``k`` calls train as a ``k``-epoch ``fit``). After every
epoch we measure the log-loss of the whole network, without dropout, on the
training rows and on 1,200 held-out rows, so both curves measure the same
thing. (``loss_curve_`` would not do for the training side: under dropout it
is the loss of the thinned networks the steps saw.)
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier
from sklearn_bp.optimizers import AdamW

X, y = make_classification(n_samples=1500, n_features=40, n_informative=10,
                           n_classes=3, flip_y=0.15, random_state=0)
X_train, X_val, y_train, y_val = train_test_split(
    X, y, train_size=300, stratify=y, random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
classes = np.unique(y)

settings = {
    "no regularization": {},
    "dropout=0.6": {"dropout": 0.6},
    "AdamW(weight_decay=5.0)": {"optimizer": AdamW(weight_decay=5.0)},
    "dropout and AdamW": {"dropout": 0.6, "optimizer": AdamW(weight_decay=5.0)},
}

# %%
# Sixty epochs of mini-batches of 32 rows, about 600 steps. AdamW shrinks every
# parameter by the factor ``1 - learning_rate * weight_decay`` at each step,
# here 0.5 %; PyTorch's default ``weight_decay=0.01`` is meant for far longer
# trainings and would hardly act in 600 steps.
n_epochs = 60
curves = {}
for name, options in settings.items():
    clf = BackpropClassifier(hidden_layer_sizes=(128, 128), alpha=0.0,
                             batch_size=32, learning_rate_init=1e-3,
                             random_state=0, **options)
    train_loss, val_loss = [], []
    for _ in range(n_epochs):
        clf.partial_fit(X_train, y_train, classes=classes)
        train_loss.append(log_loss(y_train, clf.predict_proba(X_train),
                                   labels=classes))
        val_loss.append(log_loss(y_val, clf.predict_proba(X_val), labels=classes))
    curves[name] = train_loss, val_loss
    best = int(np.argmin(val_loss))
    print(f"{name:24s} training loss {train_loss[-1]:.3f}, validation loss: "
          f"best {val_loss[best]:.3f} (epoch {best + 1}), last {val_loss[-1]:.3f}, "
          f"validation accuracy {clf.score(X_val, y_val):.3f}")

# %%
epochs = np.arange(1, n_epochs + 1)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
for name, (train_loss, val_loss) in curves.items():
    ax1.plot(epochs, train_loss, label=name)
    ax2.plot(epochs, val_loss, label=name)
ax1.set(xlabel="epoch", ylabel="log-loss (log scale)", yscale="log",
        title="Training rows (300)")
ax2.set(xlabel="epoch", ylabel="log-loss", title="Held-out rows (1,200)")
ax2.legend()
fig.suptitle("Whole-network log-loss after each epoch")
fig.tight_layout()
plt.show()

# %%
# Without regularization the held-out loss is lowest after a few epochs and
# then climbs steeply while the training loss falls toward zero: the network
# grows confident about the flipped labels it memorised. Dropout and weight
# decay each slow the memorising and keep the held-out loss near its best
# level; together they reach the lowest held-out loss, at the last epoch,
# at the price of a training loss that stays far from zero and of slower
# progress in the first epochs. The accuracies differ less than the losses:
# overconfidence costs log-loss before it costs accuracy.
#
# ``early_stopping=True`` would stop the unregularized network near its best
# epoch; the two options here instead let training run longer without harm,
# and combine with early stopping. Their strengths are hyper-parameters like
# ``alpha``: search them (``dropout``, ``optimizer__weight_decay``) with a
# cross-validated search, as in :ref:`sphx_glr_auto_examples_plot_grid_search.py`.
