"""Tests of `fastconv.losses`: values against direct formulas, gradients by
finite differences in float64, the fused softmax form's stability, errors."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import ATOL, RTOL, numerical_grad

from fastconv import losses

RNG = np.random.default_rng(7)


def probabilities(n, k):
    p = RNG.uniform(0.05, 1, (n, k))
    return p / p.sum(axis=1, keepdims=True)


def onehot(n, k):
    return np.eye(k)[RNG.integers(0, k, n)]


CASES = [
    ("categorical_crossentropy", lambda: onehot(4, 5), lambda: probabilities(4, 5)),
    (losses.CategoricalCrossentropy(from_logits=True), lambda: onehot(4, 5),
     lambda: RNG.standard_normal((4, 5))),
    ("sparse_categorical_crossentropy", lambda: RNG.integers(0, 5, 4),
     lambda: probabilities(4, 5)),
    (losses.SparseCategoricalCrossentropy(from_logits=True), lambda: RNG.integers(0, 5, (4, 1)),
     lambda: RNG.standard_normal((4, 5))),
    ("binary_crossentropy", lambda: RNG.integers(0, 2, (4, 3)),
     lambda: RNG.uniform(0.05, 0.95, (4, 3))),
    (losses.BinaryCrossentropy(from_logits=True), lambda: RNG.integers(0, 2, (4, 3)),
     lambda: RNG.standard_normal((4, 3))),
    ("mse", lambda: RNG.standard_normal((4, 3)), lambda: RNG.standard_normal((4, 3))),
    ("mean_absolute_error", lambda: RNG.standard_normal((4, 3)),
     lambda: RNG.standard_normal((4, 3))),
    ("hinge", lambda: RNG.choice([-1.0, 1.0], (4, 3)), lambda: RNG.standard_normal((4, 3))),
    ("squared_hinge", lambda: RNG.integers(0, 2, (4, 3)), lambda: RNG.standard_normal((4, 3))),
    ("mse", lambda: RNG.standard_normal((2, 3, 3, 2)), lambda: RNG.standard_normal((2, 3, 3, 2))),
]


@pytest.mark.parametrize("identifier, make_true, make_pred", CASES,
                         ids=lambda c: c if isinstance(c, str) else None)
def test_gradient_matches_finite_differences(identifier, make_true, make_pred):
    loss = losses.get(identifier)
    y_true, y_pred = make_true(), make_pred()
    analytic = loss.gradient(y_true, y_pred)
    assert analytic.shape == y_pred.shape and analytic.dtype == np.float64
    numeric = numerical_grad(lambda: loss(y_true, y_pred), y_pred)
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL)


def test_values_match_the_formulas():
    t, p = onehot(6, 4), probabilities(6, 4)
    assert losses.get("categorical_crossentropy")(t, p) == pytest.approx(
        -np.mean(np.sum(t * np.log(p), axis=1)))
    labels = np.argmax(t, axis=1)
    assert losses.get("sparse_categorical_crossentropy")(labels, p) == pytest.approx(
        losses.get("categorical_crossentropy")(t, p))
    b, q = RNG.integers(0, 2, (6, 3)), RNG.uniform(0.1, 0.9, (6, 3))
    assert losses.get("binary_crossentropy")(b, q) == pytest.approx(
        -np.mean(b * np.log(q) + (1 - b) * np.log(1 - q)))
    assert losses.get("mse")(t, p) == pytest.approx(np.mean((t - p) ** 2))
    assert losses.get("mae")(t, p) == pytest.approx(np.mean(np.abs(t - p)))
    s = 2 * t - 1
    assert losses.get("hinge")(t, p) == pytest.approx(np.mean(np.maximum(1 - s * p, 0)))
    assert losses.get("squared_hinge")(t, p) == pytest.approx(
        np.mean(np.maximum(1 - s * p, 0) ** 2))


def test_per_sample_functions():
    t, p = onehot(3, 4), probabilities(3, 4)
    values = losses.categorical_crossentropy(t, p)
    np.testing.assert_allclose(values, -np.sum(t * np.log(p), axis=1))
    assert losses.mse(t, p).shape == (3,)


def test_logits_form_equals_softmax_then_probability_form():
    z = RNG.standard_normal((5, 6))
    t = onehot(5, 6)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    logits = losses.CategoricalCrossentropy(from_logits=True)
    assert logits(t, z) == pytest.approx(losses.get("categorical_crossentropy")(t, p))
    np.testing.assert_allclose(logits.gradient(t, z), (p - t) / 5, rtol=1e-12)


def test_fused_softmax_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [-5e3, 5e3, 0.0]], dtype=np.float32)
    t = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    loss = losses.CategoricalCrossentropy(from_logits=True)
    value, grad = loss(t, z), loss.gradient(t, z)
    assert np.isfinite(value) and value == pytest.approx(1e4 / 2)
    assert np.all(np.isfinite(grad)) and grad.dtype == np.float32
    np.testing.assert_allclose(grad, np.array([[1, -1, 0], [0, 0, 0]]) / 2, atol=1e-6)
    b = losses.BinaryCrossentropy(from_logits=True)
    assert np.isfinite(b(np.array([[1.0, 0.0]]), np.array([[-1e4, 1e4]])))


def test_probability_form_clips_like_keras():
    t = np.array([[1.0, 0.0]])
    value = losses.get("categorical_crossentropy")(t, np.array([[0.0, 1.0]]))
    assert value == pytest.approx(-np.log(1e-7))
    grad = losses.get("binary_crossentropy").gradient(t, np.array([[0.0, 1.0]]))
    assert np.all(np.isfinite(grad))


def test_float32_stays_float32():
    t, p = onehot(3, 4).astype(np.float32), probabilities(3, 4).astype(np.float32)
    for name in ["categorical_crossentropy", "mse", "hinge", "binary_crossentropy"]:
        assert losses.get(name).gradient(t, p).dtype == np.float32


def test_names_and_serialization():
    assert losses.get("mse").name == "mse"
    assert isinstance(losses.get(losses.mean_squared_error), losses.MeanSquaredError)
    loss = losses.CategoricalCrossentropy(from_logits=True)
    clone = losses.get(losses.serialize(loss))
    assert isinstance(clone, losses.CategoricalCrossentropy) and clone.from_logits


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: losses.get("nope"), "unknown loss"),
        (lambda: losses.get({"class_name": "Evil", "config": {}}), "unknown loss"),
        (lambda: losses.get("mse")(np.zeros((2, 3)), np.zeros((2, 4))), "shape"),
        (lambda: losses.get("sparse_categorical_crossentropy")(
            np.array([0, 5]), np.full((2, 3), 1 / 3)), r"\[0, 3\)"),
        (lambda: losses.get("sparse_categorical_crossentropy")(np.array([0.5, 1]),
                                                               np.full((2, 3), 1 / 3)), "integer"),
        (lambda: losses.get("sparse_categorical_crossentropy")(np.zeros((2, 3)),
                                                               np.full((2, 3), 1 / 3)), "shape"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
