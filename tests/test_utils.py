"""Tests of `fastconv.utils`, `fastconv.metrics`, `fastconv.initializers` and
`fastconv.regularizers`."""

from __future__ import annotations

import random

import numpy as np
import pytest
from gradcheck import numerical_grad

from fastconv import initializers, layers, metrics, regularizers, utils


def test_to_categorical():
    np.testing.assert_array_equal(utils.to_categorical([0, 2, 1]),
                                  [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    out = utils.to_categorical(np.array([[1], [3]]), num_classes=5)
    assert out.shape == (2, 5) and out.dtype == np.float32 and out[1, 3] == 1
    assert utils.to_categorical(np.zeros((2, 3), int), 2).shape == (2, 3, 2)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        utils.to_categorical([0, 3], num_classes=3)
    with pytest.raises(ValueError, match="integer"):
        utils.to_categorical([0.5])


def test_set_random_seed_makes_weights_and_dropout_reproducible():
    def draw():
        utils.set_random_seed(42)
        dense = layers.Dense(3)
        dense.build((None, 4))
        drop = layers.Dropout(0.5)
        return dense.get_weights()[0], drop(np.ones((4, 4)), training=True), random.random()

    a, b = draw(), draw()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="seed"):
        utils.set_random_seed(-1)


def test_accuracies():
    y_pred = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 2])
    onehot = utils.to_categorical(labels, 3)
    np.testing.assert_array_equal(metrics.sparse_categorical_accuracy(labels, y_pred), [1, 0, 1])
    np.testing.assert_array_equal(metrics.categorical_accuracy(onehot, y_pred), [1, 0, 1])
    np.testing.assert_array_equal(
        metrics.top_k_categorical_accuracy(onehot, y_pred, k=2), [1, 1, 1])
    np.testing.assert_array_equal(
        metrics.sparse_top_k_categorical_accuracy(labels, y_pred, k=1), [1, 0, 1])
    np.testing.assert_array_equal(
        metrics.binary_accuracy(np.array([[1], [0]]), np.array([[0.7], [0.6]])), [1, 0])
    np.testing.assert_array_equal(metrics.accuracy(np.array([[1, 2]]), np.array([[1, 3]])), [0.5])


def test_metric_objects_average_over_samples():
    metric = metrics.get("accuracy", loss=None, output_shape=(None, 3))
    assert metric.name == "accuracy"
    metric.update_state(np.eye(3)[[0, 1]], np.eye(3)[[0, 2]])
    metric.update_state(np.eye(3)[[2]], np.eye(3)[[2]])
    assert metric.result() == pytest.approx(2 / 3)
    metric.reset_state()
    assert metric.result() == 0.0
    assert metrics.get(metrics.top_k_categorical_accuracy).name == "top_k_categorical_accuracy"
    assert metrics.get("mae").name == "mae"
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.get("f1_macro")


@pytest.mark.parametrize(
    "name, check",
    [
        ("glorot_uniform", lambda w, fi, fo: np.abs(w).max() <= np.sqrt(6 / (fi + fo))),
        ("he_uniform", lambda w, fi, fo: np.abs(w).max() <= np.sqrt(6 / fi)),
        ("glorot_normal", lambda w, fi, fo: abs(w.std() / np.sqrt(2 / (fi + fo)) - 1) < 0.05),
        ("he_normal", lambda w, fi, fo: abs(w.std() / np.sqrt(2 / fi) - 1) < 0.05),
        ("lecun_normal", lambda w, fi, fo: abs(w.std() / np.sqrt(1 / fi) - 1) < 0.05),
        ("random_normal", lambda w, fi, fo: abs(w.std() - 0.05) < 0.003),
        ("random_uniform", lambda w, fi, fo: np.abs(w).max() <= 0.05),
        ("zeros", lambda w, fi, fo: not w.any()),
        ("ones", lambda w, fi, fo: np.all(w == 1)),
    ],
)
def test_initializers_follow_kerass_fans(name, check):
    shape = (3, 3, 32, 64)  # fan_in = 288, fan_out = 576
    w = initializers.get(name)(shape)
    assert w.shape == shape and w.dtype == np.float32
    assert check(w.astype(np.float64), 288, 576)


def test_truncated_normal_stays_within_two_deviations_and_seed_repeats():
    init = initializers.HeNormal(seed=1)
    w = init((100, 50), dtype="float64")
    assert np.abs(w).max() <= 2 * np.sqrt(2 / 100) / 0.87962566103423978
    np.testing.assert_array_equal(w, initializers.HeNormal(seed=1)((100, 50), dtype="float64"))
    clone = initializers.get(initializers.serialize(init))
    assert isinstance(clone, initializers.HeNormal) and clone.seed == 1


def test_regularizers_value_and_gradient():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((3, 4))
    reg = regularizers.l1_l2(l1=0.1, l2=0.2)
    assert reg(w) == pytest.approx(0.1 * np.abs(w).sum() + 0.2 * (w**2).sum())
    grad = np.zeros_like(w)
    reg.add_gradient(w, grad)
    np.testing.assert_allclose(grad, numerical_grad(lambda: reg(w), w), rtol=1e-6, atol=1e-8)
    assert regularizers.l2().l2 == 0.01 and regularizers.l1(0.3).l1 == 0.3
    clone = regularizers.get(regularizers.serialize(regularizers.l2(0.5)))
    assert isinstance(clone, regularizers.L2) and clone.l2 == 0.5
    with pytest.raises(ValueError, match="negative"):
        regularizers.l1(-1)
