"""
==================
A custom optimizer
==================

An optimizer is a *stateless specification*: it holds hyper-parameters only.
``init_state(params)`` creates whatever buffers the update needs, and
``step(params, grads, state, lr)`` updates the parameters in place. The fitted
estimator owns the state, so ``clone``, ``GridSearchCV`` and pickling never see
half-trained buffers on the specification, and ``partial_fit`` carries the
state from call to call.

Here we write Adagrad, whose update equals ``torch.optim.Adagrad(lr, eps=epsilon)``
with its defaults (no learning-rate decay, no weight decay, zero initial
accumulator)::

    sum_sq += g ** 2
    p -= lr * g / (sqrt(sum_sq) + epsilon)
"""

# %%
from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from sklearn_bp.optimizers import Optimizer


class Adagrad(Optimizer):
    """Adagrad: steps scaled by the root of the summed squared gradients."""

    # Checked when an estimator is fitted, in scikit-learn's format.
    _parameter_constraints = {
        "epsilon": [Interval(Real, 0, None, closed="neither")]
    }

    def __init__(self, *, epsilon=1e-10):
        self.epsilon = epsilon

    def init_state(self, params):
        return {"sum_sq": [np.zeros_like(p) for p in params]}

    def step(self, params, grads, state, lr):
        # Hyper-parameters as Python floats keep float32 parameters float32.
        lr, eps = float(lr), float(self.epsilon)
        for p, g, sum_sq in zip(params, grads, state["sum_sq"], strict=True):
            sum_sq += g * g
            # ``grads`` are scratch space: the caller does not read them again.
            g /= np.sqrt(sum_sq) + eps
            g *= lr
            p -= g


# %%
# One step by hand
# ----------------
# The first step of Adagrad moves each parameter by ``lr * sign(g)`` (up to
# epsilon), whatever the gradient's size.
opt = Adagrad()
p = np.array([1.0, 1.0, 1.0])
state = opt.init_state([p])
opt.step([p], [np.array([0.001, -2.0, 50.0])], state, lr=0.1)
print(p.round(6))  # [0.9, 1.1, 0.9]

# %%
# Use it in an estimator
# ----------------------
# The instance's hyper-parameters are nested parameters of the estimator, and
# fitting leaves the instance untouched.
import warnings

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropClassifier
from sklearn_bp.optimizers import Adam

X, y = load_digits(return_X_y=True)
X = StandardScaler().fit_transform(X)

adagrad = Adagrad(epsilon=1e-10)
clf = BackpropClassifier(hidden_layer_sizes=(64,), optimizer=adagrad,
                         learning_rate_init=0.01, batch_size=64, max_iter=30,
                         tol=0.0, n_iter_no_change=1000, random_state=0)
print(clf.get_params()["optimizer__epsilon"])

fig, ax = plt.subplots(figsize=(6, 4))
for optimizer, lr in [(adagrad, 0.01), (Adam(), 0.001)]:
    clf.set_params(optimizer=optimizer, learning_rate_init=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 30 epochs on purpose
        clf.fit(X, y)
    epochs = np.arange(1, len(clf.loss_curve_) + 1)
    name = type(optimizer).__name__
    ax.plot(epochs, clf.loss_curve_, label=f"{name} (lr={lr})")
ax.set(
    xlabel="epoch",
    ylabel="mean training loss",
    yscale="log",
    title="Custom Adagrad against the built-in Adam on digits",
)
ax.legend()
print(adagrad)  # unchanged by fitting: the state lived on the estimator
plt.show()

# %%
# Adagrad's first steps are large (every parameter moves by about the learning
# rate), then shrink as the squared gradients pile up in ``sum_sq``, which never
# forgets: that is why Adam, whose moving averages do forget, overtakes it.
# RMSprop is the built-in fix of exactly this, an Adagrad whose sum is replaced
# by a moving average.
