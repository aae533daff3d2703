"""
===================================================
Early stopping: training and validation loss curves
===================================================

With ``early_stopping=True`` the estimator holds out ``validation_fraction``
of the training data and, after every epoch, scores the network on it
(``validation_scores_``: accuracy for a classifier, R² for a regressor) and
records its loss there (``validation_loss_curve_``). Training stops once the
score has not improved by ``tol`` for more than ``n_iter_no_change`` epochs,
and the weights of the best epoch are restored.

Here a network learns a problem where 20% of the labels are random. After a
dozen epochs it starts to memorise the noise: the training loss keeps falling,
the validation loss turns back up and the validation accuracy slowly drops.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from sklearn_bp import BackpropClassifier

X, y = make_classification(
    n_samples=800, n_features=20, n_informative=6, flip_y=0.2, random_state=0
)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=200,
                                                    random_state=0)

clf = BackpropClassifier(
    hidden_layer_sizes=(128,),
    learning_rate_init=0.002,
    batch_size=50,
    alpha=0.0,  # no L2 term, so the two loss curves measure the same thing
    early_stopping=True,
    validation_fraction=0.25,
    n_iter_no_change=40,  # patient, to show the curves well past the best epoch
    random_state=0,
).fit(X_train, y_train)

best = int(np.argmax(clf.validation_scores_)) + 1
print(f"stopped after {clf.n_iter_} epochs; best validation accuracy "
      f"{clf.best_validation_score_:.3f} at epoch {best}")
print(f"test accuracy of the restored network: {clf.score(X_test, y_test):.3f}")

# %%
epochs = np.arange(1, clf.n_iter_ + 1)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(epochs, clf.loss_curve_, label="training (loss_curve_)")
ax1.plot(epochs, clf.validation_loss_curve_,
         label="validation (validation_loss_curve_)")
ax1.set(xlabel="epoch", ylabel="log-loss")
ax2.plot(epochs, clf.validation_scores_, color="C1")
ax2.set(xlabel="epoch", ylabel="validation accuracy (validation_scores_)")
for ax in (ax1, ax2):
    ax.axvline(best, color="k", ls=":", label=f"best epoch ({best}), restored")
ax1.legend()
ax2.legend()
fig.tight_layout()
plt.show()

# %%
# The restored network is the one from the best epoch, not the last one: its
# test accuracy is that of the dotted line. ``loss_curve_`` includes the L2
# penalty when ``alpha > 0`` and ``validation_loss_curve_`` never does; with
# ``alpha=0`` they are directly comparable.
