"""Test configuration shared by the whole suite."""

import os

# scikit-learn's check_array_api_input (with the numpy namespace) only runs when
# SciPy's array API support is switched on, which must happen before SciPy is
# imported. Our estimators are numpy-only: the check makes sure they accept
# numpy input under array-API dispatch.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# The suite must give the same verdict on every run (CI lands nothing on red):
# property tests replay the same pseudo-random examples by default. Explore new
# ones locally with HYPOTHESIS_PROFILE=explore.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
from threadpoolctl import threadpool_limits  # noqa: E402

# torch and numpy each start a BLAS thread pool; on a 2-core machine two pools
# oversubscribe the cores and test times explode. One BLAS thread each.
_LIMITS = threadpool_limits(limits=1)


@pytest.fixture(autouse=True, scope="session")
def _single_threaded_torch():
    try:
        import torch
    except ImportError:
        yield
        return
    torch.set_num_threads(1)
    yield
