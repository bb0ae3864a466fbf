"""Tests of `fastconv.activations`: values and derivatives by finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import ATOL, RTOL, numerical_grad

from fastconv import activations

NAMES = ["linear", "relu", "sigmoid", "tanh", "softmax", "elu", "selu", "softplus",
         "leaky_relu"]


@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name):
    rng = np.random.default_rng(3)
    f = activations.get(name)
    x = rng.standard_normal((3, 5)) * 2
    dy = rng.standard_normal(x.shape)
    grad = f.gradient(dy, x, f(x))
    np.testing.assert_allclose(grad, numerical_grad(lambda: float(np.sum(f(x) * dy)), x),
                               rtol=RTOL, atol=ATOL)


def test_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(activations.relu(x), [0, 0, 0, 0.5, 3])
    np.testing.assert_allclose(activations.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(activations.elu(x), np.where(x > 0, x, np.exp(x) - 1))
    np.testing.assert_allclose(activations.softplus(x), np.log1p(np.exp(x)))
    np.testing.assert_allclose(activations.leaky_relu(x), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(activations.selu(np.array([1.0])), [1.0507009873554805])
    np.testing.assert_allclose(activations.softmax(np.array([[1e4, 0.0]])), [[1.0, 0.0]])


def test_dtype_is_kept_and_extremes_are_finite():
    x = np.array([-1e4, 1e4], dtype=np.float32)
    for name in NAMES:
        y = activations.get(name)(x)
        assert y.dtype == np.float32, name
        assert np.all(np.isfinite(y)), name


def test_get():
    assert activations.get(None) is activations.linear
    assert activations.get(activations.tanh) is activations.tanh
    assert activations.serialize(activations.get("selu")) == "selu"
    with pytest.raises(ValueError, match="unknown activation"):
        activations.get("gelu_new")
