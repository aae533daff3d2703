"""Learning-rate schedules: the rate of each epoch.

A :class:`Schedule` is a stateless spec, like the optimizers: it holds only its
hyper-parameters and computes the learning rate of an epoch from what the
training loop tells it (the epoch's number, the previous epoch's rate,
``learning_rate_init``, ``max_iter`` and the samples seen so far). What a fit
learns, the epoch count and the current rate, is kept by the estimator between
``partial_fit`` calls, never by the schedule. The rate is constant within an
epoch and every optimizer applies it at step time.

Pass a schedule, or one of the names ``"constant"``, ``"invscaling"`` and
``"adaptive"`` (MLP's schedules), as the estimator's ``learning_rate``; its
hyper-parameters are nested parameters (``learning_rate__gamma``). Schedules
do not apply to L-BFGS, which has no learning rate.

**Length.** :class:`Cosine` and :class:`OneCycle` run over ``n_epochs`` epochs,
by default the estimator's ``max_iter``; epoch ``k`` of a fit (counted from 0)
gets the rate PyTorch's scheduler gives after ``k`` calls of ``step()``, one
per epoch. After ``n_epochs`` epochs they hold their final rate (PyTorch's
``CosineAnnealingLR`` would climb again and ``OneCycleLR`` would raise).

**partial_fit.** Each call is one epoch of the same schedule: the ``k``-th call
(from 0) runs at the rate of epoch ``k``, whose length is still ``n_epochs`` or
``max_iter``. The number of calls is not known in advance, so set ``n_epochs``
(or ``max_iter``) to the number of calls you plan; after that many calls the
rate stays at the schedule's final value (``eta_min`` for :class:`Cosine`, 0 by
default, which ends learning). A ``partial_fit`` after ``fit`` continues the
fit's schedule. Changing ``learning_rate`` between ``partial_fit`` calls has
no effect until a new ``fit`` (MLP: the calls share one optimizer).

**warm_start.** A warm-started ``fit`` runs the schedule again from epoch 0
(MLP restarts its rate too); ``t_``, which :class:`InvScaling` reads, keeps
counting.

**Stopping.** When training stops improving (``n_iter_no_change`` epochs
without a ``tol`` improvement, of the training loss or, with early stopping,
of the validation score), the estimator asks the schedule's
:meth:`Schedule.on_plateau`: :class:`Adaptive` lowers the rate and goes on,
every other built-in stops training as ``"constant"`` does.
"""

import math
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, StrOptions

from ._spec import Spec, resolve

__all__ = [
    "Schedule",
    "Constant",
    "InvScaling",
    "Adaptive",
    "StepDecay",
    "ExponentialDecay",
    "Cosine",
    "OneCycle",
    "SCHEDULES",
    "get_schedule",
]


class Schedule(Spec):
    """Base class of learning-rate schedules.

    Subclass it and implement :meth:`rate`; pass an instance as the
    ``learning_rate`` parameter of an estimator. Hyper-parameters are
    keyword-only constructor arguments stored under their own names, so that
    they show up as nested parameters (``learning_rate__gamma``). A schedule
    must not store anything on itself during training: the estimator keeps the
    epoch count and the current rate, and passes them in.

    The estimator calls :meth:`rate` once before the first epoch of a fit
    (``epoch=0``) and once after each epoch, for the next one; the rate holds
    for the whole epoch. When training stops improving it then calls
    :meth:`on_plateau`, which decides whether training stops (the default) or
    goes on at another rate.

    See Also
    --------
    Constant, InvScaling, Adaptive : MLP's schedules.
    StepDecay, ExponentialDecay, Cosine, OneCycle : PyTorch's schedulers.
    get_schedule : Resolve a name or an instance.

    Examples
    --------
    Halve the rate every epoch, but never below 1e-5:

    >>> from sklearn_bp import BackpropRegressor
    >>> from sklearn_bp.schedules import Schedule
    >>> class Halving(Schedule):
    ...     def __init__(self, *, floor=1e-5):
    ...         self.floor = floor
    ...     def rate(self, epoch, *, learning_rate_init, **context):
    ...         return max(learning_rate_init * 0.5**epoch, self.floor)
    >>> Halving().rate(3, learning_rate_init=0.01, last_rate=0.01, max_iter=200,
    ...                samples_seen=0)
    0.00125
    >>> reg = BackpropRegressor(learning_rate=Halving(floor=1e-4))
    >>> reg.get_params()["learning_rate__floor"]
    0.0001
    """

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        """The learning rate of an epoch.

        Parameters
        ----------
        epoch : int
            The epoch's number in the schedule, from 0: epochs run since the
            schedule started (``fit`` starts it; ``partial_fit`` calls continue
            it, one epoch each).
        last_rate : float
            The previous epoch's rate, as changed by :meth:`on_plateau` if it
            was called; ``learning_rate_init`` for epoch 0.
        learning_rate_init : float
            The estimator's ``learning_rate_init``: the base rate.
        max_iter : int
            The estimator's ``max_iter``: the default length of a schedule.
        samples_seen : int
            Training samples seen before this epoch, over every fit and call
            that continued this estimator's weights (its ``t_``).

        Returns
        -------
        rate : float
            A finite number >= 0, used for every step of the epoch.
        """
        raise NotImplementedError

    def on_plateau(self, rate):
        """Decide what happens when training stops improving.

        Called after :meth:`rate` has given the next epoch's rate, when the
        training loss (or the validation score, with early stopping) has not
        improved by ``tol`` for more than ``n_iter_no_change`` epochs.

        Parameters
        ----------
        rate : float
            The rate the next epoch would run at.

        Returns
        -------
        rate : float or None
            The rate to go on with (the next :meth:`rate` call receives it as
            ``last_rate``), or ``None`` to stop training, the default. Under
            ``partial_fit``, which never stops by itself, ``None`` keeps
            ``rate``.
        """
        return None


def _length(n_epochs, max_iter):
    return max_iter if n_epochs is None else n_epochs


_N_EPOCHS_CONSTRAINT = [Interval(Integral, 1, None, closed="left"), None]


class Constant(Schedule):
    """The same rate, ``learning_rate_init``, for every epoch.

    ``learning_rate="constant"``, the default, is this schedule.

    See Also
    --------
    Adaptive : A constant rate lowered when training stops improving.

    Examples
    --------
    >>> from sklearn_bp.schedules import Constant
    >>> Constant().rate(7, last_rate=0.1, learning_rate_init=0.1, max_iter=10,
    ...                 samples_seen=700)
    0.1
    """

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        return learning_rate_init


class InvScaling(Schedule):
    """MLP's inverse scaling: ``learning_rate_init / (t + 1) ** power_t``.

    ``t`` is the number of training samples seen before the epoch (the
    estimator's ``t_``), so the rate falls as training goes on. As in
    :class:`~sklearn.neural_network.MLPClassifier`, the first epoch of every
    fit runs at ``learning_rate_init``, also a warm-started fit, whose ``t_``
    keeps counting. ``learning_rate="invscaling"`` is this schedule with the
    estimator's ``power_t``; an instance uses its own ``power_t`` and the
    estimator's is ignored.

    Parameters
    ----------
    power_t : float, default=0.5
        The exponent, >= 0.

    See Also
    --------
    ExponentialDecay : A rate that falls by a constant factor per epoch.

    Examples
    --------
    >>> from sklearn_bp.schedules import InvScaling
    >>> InvScaling(power_t=0.5).rate(1, last_rate=0.1, learning_rate_init=0.1,
    ...                              max_iter=10, samples_seen=99)
    0.01
    """

    _parameter_constraints = {"power_t": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, *, power_t=0.5):
        self.power_t = power_t

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        if epoch == 0:
            return learning_rate_init
        return learning_rate_init / (samples_seen + 1) ** float(self.power_t)


class Adaptive(Schedule):
    """MLP's adaptive schedule: a constant rate, divided on each plateau.

    The rate starts at ``learning_rate_init``. Each time training stops
    improving (``tol``, ``n_iter_no_change``) the rate is divided by
    ``divisor`` and training goes on, instead of stopping; once training stops
    improving at a rate already at or below ``min_lr``, it stops.
    ``learning_rate="adaptive"`` is ``Adaptive()``, MLP's rule: divide by 5,
    stop below 1e-6.

    Parameters
    ----------
    divisor : float, default=5.0
        What the rate is divided by on a plateau, > 1.
    min_lr : float, default=1e-6
        Training stops at a plateau reached with a rate <= ``min_lr``.

    See Also
    --------
    Constant : Stop at the first plateau.

    Examples
    --------
    >>> from sklearn_bp.schedules import Adaptive
    >>> Adaptive().on_plateau(0.01)
    0.002
    >>> Adaptive().on_plateau(1e-6) is None
    True
    """

    _parameter_constraints = {
        "divisor": [Interval(Real, 1, None, closed="neither")],
        "min_lr": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, *, divisor=5.0, min_lr=1e-6):
        self.divisor = divisor
        self.min_lr = min_lr

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        return last_rate  # changed only by on_plateau

    def on_plateau(self, rate):
        if rate <= self.min_lr:
            return None
        return rate / float(self.divisor)


class StepDecay(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    Epoch ``k`` (from 0) runs at ``learning_rate_init * gamma ** (k //
    step_size)``, the rate of ``torch.optim.lr_scheduler.StepLR(step_size,
    gamma)`` stepped once per epoch.

    Parameters
    ----------
    step_size : int
        Epochs between two decays, >= 1.
    gamma : float, default=0.1
        The factor, in (0, 1].

    See Also
    --------
    ExponentialDecay : Decay every epoch.

    Examples
    --------
    >>> from sklearn_bp.schedules import StepDecay
    >>> schedule = StepDecay(step_size=10, gamma=0.5)
    >>> [schedule.rate(k, last_rate=None, learning_rate_init=0.1, max_iter=30,
    ...                samples_seen=0) for k in (0, 9, 10, 20)]
    [0.1, 0.1, 0.05, 0.025]
    """

    _parameter_constraints = {
        "step_size": [Interval(Integral, 1, None, closed="left")],
        "gamma": [Interval(Real, 0, 1, closed="right")],
    }

    def __init__(self, *, step_size, gamma=0.1):
        self.step_size = step_size
        self.gamma = gamma

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        return learning_rate_init * float(self.gamma) ** (epoch // self.step_size)


class ExponentialDecay(Schedule):
    """Multiply the rate by ``gamma`` every epoch.

    Epoch ``k`` (from 0) runs at ``learning_rate_init * gamma ** k``, the rate
    of ``torch.optim.lr_scheduler.ExponentialLR(gamma)`` stepped once per
    epoch.

    Parameters
    ----------
    gamma : float
        The factor, in (0, 1].

    See Also
    --------
    StepDecay : Decay every few epochs.
    InvScaling : A rate falling with the samples seen.

    Examples
    --------
    >>> from sklearn_bp.schedules import ExponentialDecay
    >>> ExponentialDecay(gamma=0.5).rate(3, last_rate=None, learning_rate_init=0.1,
    ...                                  max_iter=10, samples_seen=0)
    0.0125
    """

    _parameter_constraints = {"gamma": [Interval(Real, 0, 1, closed="right")]}

    def __init__(self, *, gamma):
        self.gamma = gamma

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        return learning_rate_init * float(self.gamma) ** epoch


class Cosine(Schedule):
    """Linear warm-up, then cosine annealing from ``learning_rate_init`` to ``eta_min``.

    With ``n`` = ``n_epochs`` (default: the estimator's ``max_iter``) and
    ``w`` = ``warmup``, epoch ``k`` (from 0) runs at

    - ``learning_rate_init * (k + 1) / (w + 1)`` for ``k < w`` (a linear climb
      to ``learning_rate_init``, which epoch ``w`` reaches: no epoch at rate 0);
    - ``eta_min + (learning_rate_init - eta_min) * (1 + cos(pi * (k - w) / (n -
      w))) / 2`` for ``w <= k <= n``;
    - ``eta_min`` after the schedule's end (``k > n``, under ``partial_fit``).

    Without warm-up these are the rates of
    ``torch.optim.lr_scheduler.CosineAnnealingLR(T_max=n, eta_min)`` stepped
    once per epoch; with warm-up, of ``SequentialLR([LinearLR(start_factor=1 /
    (w + 1), total_iters=w), CosineAnnealingLR(T_max=n - w, eta_min)],
    milestones=[w])``. The last epoch of a ``fit`` (``k = n - 1``) runs just
    above ``eta_min``.

    Parameters
    ----------
    warmup : int, default=0
        Epochs of linear warm-up, fewer than ``n_epochs``.
    eta_min : float, default=0.0
        The rate at the end of the schedule (absolute, as PyTorch's), >= 0.
    n_epochs : int or None, default=None
        The schedule's length in epochs, warm-up included; ``None``: the
        estimator's ``max_iter``.

    See Also
    --------
    OneCycle : Warm up to the peak rate, then anneal far below the start.
    StepDecay : Piecewise-constant decay.

    References
    ----------
    .. [1] I. Loshchilov and F. Hutter, "SGDR: Stochastic Gradient Descent
       with Warm Restarts", ICLR 2017.

    Examples
    --------
    >>> from sklearn_bp.schedules import Cosine
    >>> schedule = Cosine(warmup=1, n_epochs=5)
    >>> [round(schedule.rate(k, last_rate=None, learning_rate_init=0.1,
    ...                      max_iter=200, samples_seen=0), 4) for k in range(6)]
    [0.05, 0.1, 0.0854, 0.05, 0.0146, 0.0]
    """

    _parameter_constraints = {
        "warmup": [Interval(Integral, 0, None, closed="left")],
        "eta_min": [Interval(Real, 0, None, closed="left")],
        "n_epochs": _N_EPOCHS_CONSTRAINT,
    }

    def __init__(self, *, warmup=0, eta_min=0.0, n_epochs=None):
        self.warmup = warmup
        self.eta_min = eta_min
        self.n_epochs = n_epochs

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        n = _length(self.n_epochs, max_iter)
        warmup = self.warmup
        if warmup >= n:
            raise ValueError(
                f"learning_rate={self!r} warms up for warmup={warmup} epochs but "
                f"lasts only {n} epochs ("
                + ("n_epochs" if self.n_epochs is not None else "max_iter")
                + f"={n}): use a warmup below {n} or a longer schedule."
            )
        if epoch < warmup:
            return learning_rate_init * (epoch + 1) / (warmup + 1)
        eta_min = float(self.eta_min)
        progress = min(epoch, n) - warmup
        return eta_min + (learning_rate_init - eta_min) * (
            1 + math.cos(math.pi * progress / (n - warmup))
        ) / 2


def _anneal_cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _anneal_linear(start, end, pct):
    return (end - start) * pct + start


class OneCycle(Schedule):
    """The 1cycle policy: up to ``learning_rate_init``, then far below the start.

    The rates of ``torch.optim.lr_scheduler.OneCycleLR(max_lr=learning_rate_init,
    total_steps=n, pct_start, anneal_strategy, div_factor, final_div_factor,
    three_phase, cycle_momentum=False)`` stepped once per epoch, with ``n`` =
    ``n_epochs`` (default: the estimator's ``max_iter``). The rate starts at
    ``learning_rate_init / div_factor``, rises to ``learning_rate_init`` over
    the first ``pct_start`` of the epochs and falls to ``learning_rate_init /
    (div_factor * final_div_factor)`` at the last epoch, where it stays
    (PyTorch raises instead) if training goes on under ``partial_fit``.

    PyTorch's default ``cycle_momentum=True`` also cycles the optimizer's
    momentum (or Adam's ``beta_1``) inversely to the rate; this schedule does
    not: the optimizer's hyper-parameters stay as set. Where PyTorch divides by
    zero (a phase of zero length, e.g. ``pct_start * n == 1``) the epoch gets
    the phase's final rate.

    Parameters
    ----------
    pct_start : float, default=0.3
        Share of the epochs spent raising the rate, in [0, 1].
    anneal_strategy : {"cos", "linear"}, default="cos"
        How the rate moves within a phase.
    div_factor : float, default=25.0
        The first rate is ``learning_rate_init / div_factor``.
    final_div_factor : float, default=1e4
        The last rate is the first divided by ``final_div_factor``.
    three_phase : bool, default=False
        Fall back to the first rate symmetrically before annealing to the last
        one (the original paper's schedule) instead of annealing directly.
    n_epochs : int or None, default=None
        The schedule's length in epochs; ``None``: the estimator's
        ``max_iter``.

    See Also
    --------
    Cosine : Warm-up and cosine annealing to ``eta_min``.

    References
    ----------
    .. [1] L. N. Smith and N. Topin, "Super-Convergence: Very Fast Training of
       Neural Networks Using Large Learning Rates", 2017, arXiv:1708.07120.

    Examples
    --------
    >>> from sklearn_bp.schedules import OneCycle
    >>> schedule = OneCycle(n_epochs=10)
    >>> [round(schedule.rate(k, last_rate=None, learning_rate_init=1.0,
    ...                      max_iter=200, samples_seen=0), 6) for k in (0, 2, 9)]
    [0.04, 1.0, 4e-06]
    """

    _parameter_constraints = {
        "pct_start": [Interval(Real, 0, 1, closed="both")],
        "anneal_strategy": [StrOptions({"cos", "linear"})],
        "div_factor": [Interval(Real, 0, None, closed="neither")],
        "final_div_factor": [Interval(Real, 0, None, closed="neither")],
        "three_phase": ["boolean"],
        "n_epochs": _N_EPOCHS_CONSTRAINT,
    }

    def __init__(self, *, pct_start=0.3, anneal_strategy="cos", div_factor=25.0,
                 final_div_factor=1e4, three_phase=False, n_epochs=None):
        self.pct_start = pct_start
        self.anneal_strategy = anneal_strategy
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        self.three_phase = three_phase
        self.n_epochs = n_epochs

    def rate(self, epoch, *, last_rate, learning_rate_init, max_iter, samples_seen):
        n = _length(self.n_epochs, max_iter)
        peak = float(learning_rate_init)
        first = peak / float(self.div_factor)
        last = first / float(self.final_div_factor)
        pct_start = float(self.pct_start)
        # (end epoch, start rate, end rate) of each phase, PyTorch's arithmetic
        if self.three_phase:
            phases = [
                (pct_start * n - 1, first, peak),
                (2 * pct_start * n - 2, peak, first),
                (n - 1, first, last),
            ]
        else:
            phases = [(pct_start * n - 1, first, peak), (n - 1, peak, last)]
        anneal = _anneal_cos if self.anneal_strategy == "cos" else _anneal_linear
        step = min(epoch, n - 1)  # the last rate holds after the schedule's end
        start = 0.0
        for i, (end, start_rate, end_rate) in enumerate(phases):
            if step <= end or i == len(phases) - 1:
                span = end - start
                pct = (step - start) / span if span else 1.0
                return anneal(start_rate, end_rate, pct)
            start = end
        raise AssertionError("unreachable: the last phase always answers")


SCHEDULES = {"constant": Constant, "invscaling": InvScaling, "adaptive": Adaptive}


def get_schedule(learning_rate, *, power_t=0.5):
    """Return a private schedule instance from a name or an instance.

    Parameters
    ----------
    learning_rate : str or Schedule
        One of the names in :data:`SCHEDULES` (``"constant"``,
        ``"invscaling"``, ``"adaptive"``) or a :class:`Schedule`.
    power_t : float, default=0.5
        The exponent of ``"invscaling"`` given by name (the estimator's
        ``power_t``); an :class:`InvScaling` instance keeps its own.

    Returns
    -------
    schedule : Schedule
        A new, validated instance: a copy when an instance was given.

    See Also
    --------
    Schedule : Base class of schedules, to write your own.

    Examples
    --------
    >>> from sklearn_bp.schedules import get_schedule
    >>> get_schedule("invscaling", power_t=0.25)
    InvScaling(power_t=0.25)
    """
    schedule = resolve(
        learning_rate, registry=SCHEDULES, base=Schedule, param_name="learning_rate"
    )
    if isinstance(learning_rate, str) and isinstance(schedule, InvScaling):
        schedule.set_params(power_t=power_t)
    return schedule
