"""
============================================
Exporting a pipeline to ONNX and checking it
============================================

A model that is served by onnxruntime_ runs without Python, scikit-learn or
sklearn_bp. Here a :class:`~sklearn.pipeline.Pipeline` of a scaler and a
:class:`~sklearn_bp.BackpropClassifier` is converted with skl2onnx, run by
onnxruntime, and checked against the pipeline's own predictions. It needs the
optional ``onnx`` extra: ``pip install "sklearn_bp[onnx]"``. More in the user
guide's :ref:`persistence` page.

.. _onnxruntime: https://onnxruntime.ai
"""

# %%
# Train a pipeline
# ----------------
# Fitted on float32 data, the network computes in float32, as the ONNX graph
# will.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

model = make_pipeline(
    StandardScaler(),
    BackpropClassifier(hidden_layer_sizes=(64,), max_iter=30, random_state=0),
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
print(f"test accuracy: {model.score(X_test, y_test):.3f}")

# %%
# Convert it
# ----------
# ``import sklearn_bp.onnx`` registers the converters with skl2onnx; from then
# on, skl2onnx converts the pipeline like any scikit-learn pipeline. The first
# rows of ``X`` give the input's type (float32) and width. ``zipmap=False``
# returns the probabilities as a matrix rather than a list of dictionaries.
import onnxruntime
from skl2onnx import to_onnx

import sklearn_bp.onnx  # noqa: F401  (registers the converters)

onx = to_onnx(
    model, X_train[:1], options={BackpropClassifier: {"zipmap": False}}
)
print("inputs: ", [(i.name, i.type.tensor_type.elem_type) for i in onx.graph.input])
print("outputs:", [o.name for o in onx.graph.output])
print("nodes:  ", " -> ".join(node.op_type for node in onx.graph.node))

# %%
# Run it and compare
# ------------------
# The labels must be the same, and the probabilities the same up to float32
# rounding.
session = onnxruntime.InferenceSession(
    onx.SerializeToString(), providers=["CPUExecutionProvider"]
)
labels, probabilities = session.run(None, {"X": X_test})

assert np.array_equal(labels, model.predict(X_test))
gap = np.abs(probabilities - model.predict_proba(X_test)).max()
print(f"labels identical; largest probability gap: {gap:.1e}")
assert gap < 1e-5

# %%
# And its speed, on the test rows repeated to 20,000 rows:
X_big = np.tile(X_test, (45, 1))[:20_000]
timings = {}
for name, run in [
    ("predict_proba", lambda: model.predict_proba(X_big)),
    ("onnxruntime", lambda: session.run(None, {"X": X_big})),
]:
    run()
    start = time.perf_counter()
    run()
    timings[name] = time.perf_counter() - start
    print(f"{name:>14}: {1e3 * timings[name]:.1f} ms")

# %%
# Each test row's probability of its predicted class, from both:
reference = model.predict_proba(X_test)
rows = np.arange(len(X_test))
fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(reference[rows, labels], probabilities[rows, labels], s=8)
ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
ax.set_xlabel("predict_proba (sklearn_bp)")
ax.set_ylabel("onnxruntime")
ax.set_title(f"Same probabilities (largest gap {gap:.0e})")
fig.tight_layout()
plt.show()
