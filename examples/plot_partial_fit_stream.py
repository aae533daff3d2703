"""
===========================================
Learning from a stream with ``partial_fit``
===========================================

When the data arrive in chunks, or do not fit in memory, ``partial_fit`` trains
on one chunk at a time: each call is one epoch over the chunk it is given, and
the optimizer's state (Adam's moment estimates here) carries over from call to
call. The first call must name every class that can ever appear.

We score each chunk *before* training on it ("test, then train"), which gives a
learning curve on data the model has not seen, for free.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import make_classification

from sklearn_bp import BackpropClassifier

X, y = make_classification(
    n_samples=12_000, n_features=20, n_informative=10, n_classes=3,
    n_clusters_per_class=2, class_sep=1.0, random_state=0,
)
classes = np.unique(y)


def stream(X, y, chunk_size=200):
    """Yield the data in consecutive chunks, as a reader of a large file would."""
    for start in range(0, X.shape[0], chunk_size):
        yield X[start : start + chunk_size], y[start : start + chunk_size]


clf = BackpropClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.003,
                         random_state=0)
seen, accuracy = [], []
for i, (X_chunk, y_chunk) in enumerate(stream(X, y)):
    if i > 0:
        accuracy.append(clf.score(X_chunk, y_chunk))  # not trained on yet
        seen.append(clf.t_)
    clf.partial_fit(X_chunk, y_chunk, classes=classes)

print(f"{clf.n_iter_} partial_fit calls, {clf.t_} samples seen")
print(f"accuracy on the last 10 unseen chunks: {np.mean(accuracy[-10:]):.3f}")

# %%
# ``loss_curve_`` has one entry per call: the chunk's mean training loss,
# each batch's loss taken before that batch's step.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
ax1.plot(seen, accuracy, ".", alpha=0.4, label="next chunk")
window = 10
ax1.plot(seen[window - 1 :], np.convolve(accuracy, np.ones(window) / window, "valid"),
         label=f"running mean of {window}")
ax1.set(xlabel="training samples seen (t_)", ylabel="accuracy",
        title="Test-then-train accuracy")
ax1.legend()
ax2.plot(np.arange(1, clf.n_iter_ + 1) * 200, clf.loss_curve_)
ax2.set(xlabel="training samples seen", ylabel="chunk training loss",
        title="loss_curve_")
fig.tight_layout()
plt.show()
