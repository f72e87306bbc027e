import numpy as np
import pytest

import clattn


@pytest.fixture(scope="session")
def ctx():
    c = clattn.Context()
    yield c
    c.close()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def randn(rng, *shape):
    """Random float32 values, never zero."""
    a = rng.standard_normal(shape).astype(np.float32)
    a[a == 0] = 0.5
    return a


def close(got, ref, tol=2e-4):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    err = np.max(np.abs(got - ref) / (1.0 + np.abs(ref)))
    assert err < tol, "max relative error %g" % err
