"""numpydoc validation of the public API's docstrings.

Every public class and function of the public modules, and every public method
that sklearn_bp defines on them, is run through :func:`numpydoc.validate.validate`.

Enforced: all of numpydoc's checks, minus the ones listed in ``IGNORED`` (for
every object) and ``IGNORED_FOR_METHODS`` (methods only). So, among others:
GL08 (missing docstring), GL01-GL10 (layout), SS01-SS06 (summary), PR01-PR10
(every parameter documented, none unknown, in order, typed, described), RT01
(Returns section when something is returned), RT03-RT05, SA02-SA04; and for
classes and functions also SA01 (See Also) and EX01 (Examples; they run as
doctests in ``pytest --doctest-modules --pyargs sklearn_bp``).

Methods that scikit-learn's base classes provide (``score``, ``get_params`` of
the estimators, ``fit_transform``, ``set_output``, ...) are scikit-learn's
docstrings and are not checked here. A method that overrides a documented
base-class method without a docstring of its own (``ReLU.forward``) shows its
base's docstring in the API reference and in ``help()``, so that docstring is
the one validated.
"""

import importlib
import inspect

import pytest

numpydoc_validate = pytest.importorskip("numpydoc.validate")

PUBLIC_MODULES = [
    "sklearn_bp",
    "sklearn_bp.activations",
    "sklearn_bp.losses",
    "sklearn_bp.optimizers",
    "sklearn_bp.schedules",
    "sklearn_bp.utils",
]

IGNORED = {
    "ES01",  # extended summary: optional, a one-line summary may say it all
    "RT02",  # we name return values (``self : object``), as scikit-learn does
}
IGNORED_FOR_METHODS = IGNORED | {
    "SA01",  # See Also: required on classes and functions, optional on methods
    "EX01",  # Examples: the class docstring shows the methods in use
}


def _function(value):
    """The function behind a method (``available_if`` wraps it in a descriptor)."""
    return getattr(value, "fn", value)


def _defining_method(cls, name):
    """The function whose docstring ``help(cls.name)`` shows (inherited if none)."""
    functions = [
        _function(vars(klass)[name]) for klass in cls.__mro__ if name in vars(klass)
    ]
    documented = [f for f in functions if getattr(f, "__doc__", None)]
    return documented[0] if documented else functions[0]


def _public_objects():
    """Yield ``(qualified name, object, is_method)`` for the public API."""
    seen = set()
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # __version__, the name registries
            qualname = f"{module_name}.{name}"
            if id(obj) not in seen:
                seen.add(id(obj))
                yield qualname, obj, False
            if not inspect.isclass(obj):
                continue
            method_names = {
                attr
                for klass in obj.__mro__
                if klass.__module__.startswith("sklearn_bp")
                for attr, value in vars(klass).items()
                if not attr.startswith("_") and inspect.isfunction(_function(value))
            }
            for attr in sorted(method_names):
                yield f"{qualname}.{attr}", _defining_method(obj, attr), True


PUBLIC_OBJECTS = list(_public_objects())


def test_public_api_is_collected():
    names = {name for name, _, _ in PUBLIC_OBJECTS}
    for expected in [
        "sklearn_bp.BackpropClassifier",
        "sklearn_bp.BackpropClassifier.fit",
        "sklearn_bp.BackpropClassifier.transform",
        "sklearn_bp.BackpropRegressor.partial_fit",
        "sklearn_bp.activations.get_activation",
        "sklearn_bp.activations.ReLU.derivative",
        "sklearn_bp.losses.Huber.gradient",
        "sklearn_bp.optimizers.Adam.step",
    ]:
        assert expected in names


@pytest.mark.parametrize(
    "name, obj, is_method", PUBLIC_OBJECTS, ids=[name for name, _, _ in PUBLIC_OBJECTS]
)
def test_docstring(name, obj, is_method):
    result = numpydoc_validate.validate(numpydoc_validate.get_doc_object(obj))
    ignored = IGNORED_FOR_METHODS if is_method else IGNORED
    errors = [(code, msg) for code, msg in result["errors"] if code not in ignored]
    assert not errors, f"{name}:\n" + "\n".join(f"  {c}: {m}" for c, m in errors)
