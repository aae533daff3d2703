"""
====================================================
Learning-rate schedules: the rate and loss per epoch
====================================================

The ``learning_rate`` parameter takes MLP's schedules by name (``"constant"``,
``"invscaling"``, ``"adaptive"``) or a schedule from
:mod:`sklearn_bp.schedules`: :class:`~sklearn_bp.schedules.StepDecay`,
:class:`~sklearn_bp.schedules.ExponentialDecay`,
:class:`~sklearn_bp.schedules.Cosine` (with an optional linear warm-up) and
:class:`~sklearn_bp.schedules.OneCycle`, which give the rates of PyTorch's
schedulers stepped once per epoch. The rate is constant within an epoch.

Here one network learns a noisy regression problem (Friedman #1) with Adam at
a rate high enough to learn fast, under each schedule, for the same 60 epochs
(``max_iter``, which is also the length of ``Cosine`` and ``OneCycle``). At a
constant rate the training loss stops falling and bounces from epoch to
epoch: the steps are too large to settle. The decaying schedules end with
small steps and reach a lower loss and a better test score.
"""

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.base import clone
from sklearn.datasets import make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_bp import BackpropRegressor
from sklearn_bp.schedules import (
    Cosine,
    ExponentialDecay,
    OneCycle,
    StepDecay,
    get_schedule,
)

X, y = make_friedman1(n_samples=2000, noise=1.0, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5,
                                                    random_state=0)
scaler = StandardScaler().fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
y_mean, y_std = y_train.mean(), y_train.std()
y_train, y_test = (y_train - y_mean) / y_std, (y_test - y_mean) / y_std

schedules = {
    '"constant"': "constant",
    "StepDecay(step_size=20, gamma=0.3)": StepDecay(step_size=20, gamma=0.3),
    "ExponentialDecay(gamma=0.93)": ExponentialDecay(gamma=0.93),
    "Cosine(warmup=5)": Cosine(warmup=5),
    "OneCycle()": OneCycle(),
}
# A large n_iter_no_change switches off the stopping rule: every curve has all
# 60 epochs (and fit warns that it did not converge, which we know).
base = BackpropRegressor(hidden_layer_sizes=(64,), learning_rate_init=0.03,
                         batch_size=32, max_iter=60, n_iter_no_change=np.inf,
                         random_state=0)
fits = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for name, schedule in schedules.items():
        fits[name] = clone(base).set_params(learning_rate=schedule).fit(
            X_train, y_train)
for name, reg in fits.items():
    print(f"{name:35s} training loss {reg.loss_:.4f}, "
          f"test R2 {reg.score(X_test, y_test):.3f}")

# %%
# A schedule is a small object whose ``rate(epoch, ...)`` gives the rate of
# an epoch (counted from 0, as PyTorch's ``last_epoch``); here it is read off
# for the plot.


def rates(schedule, reg):
    spec = get_schedule(schedule)
    lr0 = reg.learning_rate_init
    return [spec.rate(k, last_rate=lr0, learning_rate_init=lr0,
                      max_iter=reg.max_iter, samples_seen=0)
            for k in range(reg.n_iter_)]


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for name, reg in fits.items():
    epochs = np.arange(1, reg.n_iter_ + 1)
    # (constant within an epoch: drawn as steps)
    ax1.plot(epochs, rates(schedules[name], reg), drawstyle="steps-mid")
    ax2.plot(epochs, reg.loss_curve_, label=name)
ax1.set(xlabel="epoch", ylabel="learning rate", title="Rate per epoch")
ax2.set(xlabel="epoch", ylabel="training loss (loss_curve_)", yscale="log",
        title="Training loss per epoch")
ax2.legend(loc="upper right", fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Schedules are compared like any other parameter, and their own settings are
# nested parameters (``learning_rate__gamma``)::
#
#     GridSearchCV(base, {"learning_rate": ["constant", Cosine(warmup=5),
#                                           StepDecay(step_size=20)]})
#     GridSearchCV(base.set_params(learning_rate=StepDecay(step_size=20)),
#                  {"learning_rate__gamma": [0.1, 0.3, 0.5]})
#
# ``Cosine`` and ``OneCycle`` last ``max_iter`` epochs unless given
# ``n_epochs``. Under ``partial_fit`` each call is one epoch of the schedule,
# and after the schedule's length the rate stays at its final value.
