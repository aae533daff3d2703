"""Shared machinery of the pluggable components (activations, losses, optimizers).

A component is a small *spec*: its constructor takes keyword arguments only and
stores them. It exposes them through ``get_params``/``set_params`` so that the
estimators can offer nested parameters (``optimizer__beta_1``) to searches, but
it is deliberately not a :class:`~sklearn.base.BaseEstimator`, which would make
scikit-learn's estimator checks sweep it in as an estimator of its own.
"""

import copy
import inspect

from sklearn.utils._param_validation import (
    InvalidParameterError,
    validate_parameter_constraints,
)


class Spec:
    """Base class of the pluggable components.

    Subclasses declare their hyper-parameters as keyword-only arguments of
    ``__init__`` which store them unchanged under the same name, and may declare
    ``_parameter_constraints`` in scikit-learn's format; the constraints are
    checked when an estimator is fitted, never at construction.
    """

    _parameter_constraints: dict = {}

    @classmethod
    def _get_param_names(cls):
        init = cls.__init__
        if init is object.__init__:
            return []
        signature = inspect.signature(init)
        return sorted(
            p.name
            for p in signature.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        )

    def get_params(self, deep=True):
        """Get the hyper-parameters of this component.

        Parameters
        ----------
        deep : bool, default=True
            Ignored; present for compatibility with scikit-learn.

        Returns
        -------
        params : dict
            Parameter names mapped to their values.
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set the hyper-parameters of this component.

        Parameters
        ----------
        **params : dict
            Component parameters.

        Returns
        -------
        self : object
            This component.
        """
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def _validate_params(self):
        validate_parameter_constraints(
            self._parameter_constraints,
            self.get_params(deep=False),
            caller_name=type(self).__name__,
        )

    def __repr__(self):
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
        }
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or repr(default) != repr(value):
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_params() == other.get_params()

    def __hash__(self):
        return hash(
            (type(self).__name__, tuple(sorted(map(repr, self.get_params().items()))))
        )


def resolve(spec, *, registry, base, param_name):
    """Turn a name or a component instance into a private, validated copy.

    Parameters
    ----------
    spec : str or instance of ``base``
        What the user passed.
    registry : dict
        Accepted names mapped to the classes they stand for.
    base : type
        The component base class.
    param_name : str
        The estimator parameter, named in error messages.

    Returns
    -------
    component : instance of ``base``
        A fresh instance owned by the estimator: fitting never mutates the user's.
    """
    if isinstance(spec, str):
        try:
            cls = registry[spec]
        except KeyError:
            raise ValueError(
                f"The {param_name!r} parameter got an unknown name {spec!r}. Accepted "
                f"names are {sorted(registry)}, or an instance of "
                f"{base.__module__}.{base.__name__}."
            ) from None
        component = cls()
    elif isinstance(spec, base):
        component = copy.deepcopy(spec)
    else:
        raise TypeError(
            f"The {param_name!r} parameter must be one of {sorted(registry)} or an "
            f"instance of {base.__module__}.{base.__name__}; got "
            f"{type(spec).__name__} {spec!r}."
        )
    if isinstance(component, Spec):
        try:
            component._validate_params()
        except InvalidParameterError as exc:
            # Name the estimator parameter too: the user set `optimizer`, and may
            # not recognise "Adam" as the place to look.
            raise InvalidParameterError(
                f"Invalid {param_name}={spec!r}: {exc}"
            ) from exc
    return component
