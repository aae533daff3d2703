"""MLflow: log, load and serve through pyfunc with the default skops format, and
autologging through a Pipeline.

Needs the optional ``mlflow`` extra (mlflow and skops); skipped when it is
missing. The tracking store is a SQLite file in a temporary directory.
"""

import numpy as np
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

_EXTRA = "the optional 'mlflow' extra is missing (pip install 'sklearn_bp[mlflow]')"
pytest.importorskip("mlflow", reason=_EXTRA)
pytest.importorskip("skops", reason=_EXTRA)
import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import mlflow.sklearn  # noqa: E402

import sklearn_bp  # noqa: E402
from sklearn_bp import BackpropClassifier, BackpropRegressor  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # mlflow's own deprecation and pip-requirement notices
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """A private SQLite tracking store and artifact directory; loading models
    allowed (recent MLflow asks for it for every format, skops included)."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        # (artifacts too in the temporary directory: by default a SQLite store
        # puts them in ./mlruns of the working directory)
        mlflow.create_experiment("sklearn_bp",
                                 artifact_location=(root / "artifacts").as_uri())
        mlflow.set_experiment("sklearn_bp")
        try:
            yield root
        finally:
            mlflow.sklearn.autolog(disable=True)
            mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_log_model_with_skops_loads_and_serves(tracking, iris):
    X, y = iris
    clf = BackpropClassifier((6,), max_iter=30, random_state=0).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            clf, name="model", skops_trusted_types=sklearn_bp.TRUSTED_TYPES,
            pip_requirements=["sklearn_bp"],  # (skips inferring them: slow)
        )
    assert mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS == "skops"
    flavor = mlflow.models.Model.load(info.model_uri).flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert type(loaded) is BackpropClassifier
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    served = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(served.predict(X), clf.predict(X))


def test_without_trusted_types_the_error_names_them(tracking, iris):
    X, y = iris
    clf = BackpropClassifier((4,), max_iter=5, random_state=0).fit(X, y)
    with mlflow.start_run(), pytest.raises(Exception, match="untrusted types"):
        mlflow.sklearn.log_model(clf, name="model", pip_requirements=["sklearn_bp"])


def test_regressor_pyfunc(tracking):
    X, y = make_regression(n_samples=80, n_features=4, random_state=0)
    reg = BackpropRegressor((5,), max_iter=20, random_state=0).fit(X, y / 100)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            reg, name="model", skops_trusted_types=sklearn_bp.TRUSTED_TYPES,
            pip_requirements=["sklearn_bp"],
        )
    served = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(served.predict(X), reg.predict(X))


def test_autolog_records_an_estimator_fitted_in_a_pipeline(tracking, iris):
    """MLflow patches only scikit-learn's own classes: a bare estimator's fit
    records nothing, the same estimator inside a Pipeline is recorded whole."""
    X, y = iris
    mlflow.sklearn.autolog(log_models=True, log_datasets=False, silent=True)
    try:
        runs_before = len(mlflow.search_runs(output_format="list"))
        BackpropClassifier((4,), max_iter=5, random_state=0).fit(X, y)
        assert len(mlflow.search_runs(output_format="list")) == runs_before
        pipe = make_pipeline(
            StandardScaler(), BackpropClassifier((6,), max_iter=30, random_state=0)
        ).fit(X, y)
    finally:
        mlflow.sklearn.autolog(disable=True)
    run = mlflow.last_active_run()
    assert run.data.params["backpropclassifier__hidden_layer_sizes"] == "(6,)"
    assert run.data.params["backpropclassifier__optimizer"] == "adam"
    assert run.data.metrics["training_accuracy_score"] == pytest.approx(
        pipe.score(X, y)
    )
    logged = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
    np.testing.assert_array_equal(logged.predict_proba(X), pipe.predict_proba(X))
