"""Initial weights: the schemes behind the estimators' ``weight_init``.

Each scheme maps a layer's ``(fan_in, fan_out)``, the estimator's random
generator and the parameters' dtype to that layer's initial ``(W, b)``, ``W`` of
shape ``(fan_in, fan_out)``. The default, ``"glorot_uniform"``, is
MLPClassifier's draw bit for bit (weights and biases uniform in the same bound,
that bound set by the activation's ``glorot_factor``); the other schemes follow
the formulas of ``torch.nn.init`` and start the biases at zero, as Keras does.
"""

import numpy as np


def glorot_uniform(fan_in, fan_out, rng, dtype, glorot_factor):
    """MLPClassifier's draw: ``W`` then ``b`` uniform in
    ``+-sqrt(glorot_factor / (fan_in + fan_out))``."""
    bound = np.sqrt(glorot_factor / (fan_in + fan_out))
    W = rng.uniform(-bound, bound, (fan_in, fan_out))
    return W, rng.uniform(-bound, bound, fan_out)


def _uniform(bound_of):
    def init(fan_in, fan_out, rng, dtype, glorot_factor):
        bound = bound_of(fan_in, fan_out)
        return rng.uniform(-bound, bound, (fan_in, fan_out)), np.zeros(fan_out)

    return init


def _normal(std_of):
    def init(fan_in, fan_out, rng, dtype, glorot_factor):
        return rng.normal(0.0, std_of(fan_in, fan_out), (fan_in, fan_out)), np.zeros(
            fan_out
        )

    return init


def orthogonal(fan_in, fan_out, rng, dtype, glorot_factor):
    """``torch.nn.init.orthogonal_`` (gain 1) on torch's ``(fan_out, fan_in)``
    weight, transposed: orthonormal rows or columns, whichever are fewer."""
    flat = rng.normal(0.0, 1.0, (fan_out, fan_in))
    wide = fan_out < fan_in
    if wide:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    # the sign fix makes the result uniformly distributed (torch does the same)
    q *= np.sign(np.diag(r))
    if wide:
        q = q.T
    return q.T, np.zeros(fan_out)


WEIGHT_INITS = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": _normal(lambda fan_in, fan_out: np.sqrt(2.0 / (fan_in + fan_out))),
    "he_uniform": _uniform(lambda fan_in, fan_out: np.sqrt(6.0 / fan_in)),
    "he_normal": _normal(lambda fan_in, fan_out: np.sqrt(2.0 / fan_in)),
    "lecun_uniform": _uniform(lambda fan_in, fan_out: np.sqrt(3.0 / fan_in)),
    "lecun_normal": _normal(lambda fan_in, fan_out: np.sqrt(1.0 / fan_in)),
    "orthogonal": orthogonal,
}


def _user_scheme(function):
    """A user's ``function(fan_in, fan_out, rng, dtype) -> W``, checked; zero
    biases."""

    def init(fan_in, fan_out, rng, dtype, glorot_factor):
        W = np.asarray(function(fan_in, fan_out, rng, dtype))
        if W.shape != (fan_in, fan_out):
            raise ValueError(
                f"weight_init={function!r} returned an array of shape {W.shape} "
                f"for a layer with fan_in={fan_in} and fan_out={fan_out}; it must "
                f"return shape (fan_in, fan_out) = ({fan_in}, {fan_out})."
            )
        if not np.issubdtype(W.dtype, np.number) or not np.all(np.isfinite(W)):
            raise ValueError(
                f"weight_init={function!r} returned non-finite or non-numeric "
                f"initial weights for the layer of shape ({fan_in}, {fan_out}); "
                "every initial weight must be a finite number."
            )
        return W, np.zeros(fan_out)

    return init


def get_weight_init(weight_init):
    """The scheme for the estimator's ``weight_init``: a name of
    :data:`WEIGHT_INITS` or a user callable ``(fan_in, fan_out, rng, dtype) ->
    array``. ``None`` stands for the default draw (the fastest path)."""
    if weight_init == "glorot_uniform":
        return None
    if isinstance(weight_init, str):
        return WEIGHT_INITS[weight_init]  # (the name was validated at fit)
    return _user_scheme(weight_init)
