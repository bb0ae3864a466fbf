"""Tests of `fastconv.layers`: gradients by finite differences in float64 on the
reference kernels, agreement of the fast float32 path with it, shapes,
configurations and errors."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_layer

from fastconv import activations, backend, layers, ops

RNG = np.random.default_rng(1234)


def f64(*shape):
    return RNG.standard_normal(shape)


# ---- gradients -------------------------------------------------------------

CONV_CASES = [
    {"filters": 3, "kernel_size": 3},
    {"filters": 2, "kernel_size": (2, 3), "strides": 2, "padding": "same"},
    {"filters": 2, "kernel_size": 2, "dilation_rate": 2, "use_bias": False},
    {"filters": 3, "kernel_size": 3, "padding": "same", "activation": "relu"},
    {"filters": 2, "kernel_size": 1, "activation": "tanh"},
    {"filters": 2, "kernel_size": 3, "kernel_regularizer": "l2"},
]


@pytest.mark.parametrize("kwargs", CONV_CASES)
def test_conv2d_gradients(kwargs):
    check_layer(layers.Conv2D(dtype="float64", **kwargs), f64(2, 5, 6, 2))


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "softmax", "elu", "selu"])
def test_dense_gradients(activation):
    check_layer(layers.Dense(4, activation=activation, dtype="float64"), f64(3, 5))


def test_dense_on_rank3_inputs_multiplies_the_last_axis():
    layer = layers.Dense(2, dtype="float64")
    check_layer(layer, f64(2, 3, 4))
    assert layer.output_shape == (None, 3, 2)


@pytest.mark.parametrize(
    "layer",
    [
        layers.MaxPooling2D(dtype="float64"),
        layers.MaxPooling2D(pool_size=3, strides=2, padding="same", dtype="float64"),
        layers.AveragePooling2D(dtype="float64"),
        layers.AveragePooling2D(pool_size=(2, 3), strides=1, padding="same", dtype="float64"),
        layers.GlobalMaxPooling2D(dtype="float64"),
        layers.GlobalAveragePooling2D(dtype="float64"),
        layers.GlobalAveragePooling2D(keepdims=True, dtype="float64"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_pooling_gradients(layer):
    check_layer(layer, f64(2, 5, 4, 3))


@pytest.mark.parametrize("layer,x_shape,keeps_argmax", [
    (layers.MaxPooling2D(), (3, 9, 8, 70), True),
    (layers.MaxPooling2D(pool_size=3, strides=1, padding="same"), (2, 6, 7, 17), True),
    (layers.GlobalMaxPooling2D(), (2, 8, 8, 5), True),  # 64 cells
    (layers.GlobalMaxPooling2D(), (2, 12, 12, 5), False),  # 144 cells: past a byte's numbers
])
def test_max_pooling_keeps_the_argmax_in_training(layer, x_shape, keeps_argmax):
    """A training forward keeps where each maximum is (a byte per output), not
    x, where the window allows it; inference keeps x. The gradients are the
    backward from x's, bit for bit, through the ReLU below too."""
    x = np.maximum(RNG.standard_normal(x_shape), 0).astype(np.float32)
    y = layer.forward(x, training=False)
    assert layer._x is x and layer._argmax is None
    assert (layer.forward(x, training=True) == y).all()
    assert (layer._argmax is not None) == keeps_argmax
    assert (layer._x is None) == keeps_argmax
    dy = RNG.standard_normal(y.shape).astype(np.float32)
    args = layer._args(x.shape)
    dy4 = dy.reshape(layer._as_4d(dy).shape)
    np.testing.assert_array_equal(layer.backward(dy), ops.max_pool2d_backward(dy4, x, **args))
    np.testing.assert_array_equal(layer.backward_through_relu(dy),
                                  ops.max_pool2d_backward(dy4, x, relu=True, **args))


def test_max_pooling_backward_without_a_training_forward_says_so():
    """Inference through a Conv2D's call keeps neither x nor the argmax."""
    conv, pool = layers.Conv2D(2, 3, activation="relu"), layers.MaxPooling2D()
    x = RNG.standard_normal((1, 6, 6, 1)).astype(np.float32)
    conv.build(x.shape)
    y = conv.forward_pooled(x, pool, training=False)
    with pytest.raises(RuntimeError, match="backward needs a forward pass in training first"):
        pool.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="backward_pooled needs a training forward_pooled"):
        conv.backward_pooled(np.ones_like(y))
    with pytest.raises(RuntimeError, match="no argmax kept"):
        pool.argmax_kept()


@pytest.mark.parametrize(
    "layer",
    [
        layers.Flatten(dtype="float64"),
        layers.Activation("tanh", dtype="float64"),
        layers.Activation("softmax", dtype="float64"),
        layers.Activation("relu", dtype="float64"),
        layers.ReLU(dtype="float64"),
        layers.ReLU(max_value=0.5, negative_slope=0.1, threshold=-0.2, dtype="float64"),
        layers.LeakyReLU(dtype="float64"),
    ],
    ids=lambda layer: f"{type(layer).__name__}",
)
def test_elementwise_and_reshape_gradients(layer):
    check_layer(layer, f64(2, 3, 3, 2))


def test_dropout_gradient_with_a_fixed_mask():
    layer = layers.Dropout(0.4, dtype="float64")

    def same_mask():
        layer.rng = np.random.default_rng(7)

    check_layer(layer, f64(3, 4, 5), before_forward=same_mask)


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("training", [True, False])
def test_batch_normalization_gradients(axis, training):
    layer = layers.BatchNormalization(axis=axis, dtype="float64")
    layer.build((None, 3, 4, 2))
    layer.gamma.value[:] = RNG.uniform(0.5, 1.5, layer.gamma.shape)
    layer.beta.value[:] = RNG.standard_normal(layer.beta.shape)
    layer.moving_variance.value[:] = RNG.uniform(0.5, 2, layer.beta.shape)
    check_layer(layer, f64(4, 3, 4, 2), training=training)


def test_frozen_layer_has_no_weight_gradients_but_passes_dx():
    layer = layers.Dense(3, dtype="float64", trainable=False)
    check_layer(layer, f64(2, 4))
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 2
    assert layer.kernel.grad is None


# ---- the fast path matches the reference -----------------------------------


@pytest.mark.parametrize("activation", ["relu", None, "sigmoid"])
def test_conv2d_fast_path_matches_reference(activation):
    x = RNG.standard_normal((2, 7, 7, 3)).astype(np.float32)
    dy = RNG.standard_normal((2, 4, 4, 5)).astype(np.float32)
    fast = layers.Conv2D(5, 3, strides=2, padding="same", activation=activation)
    fast.build(x.shape)
    fast.bias.value[:] = RNG.standard_normal(5)
    slow = layers.Conv2D.from_config({**fast.get_config(), "name": None, "dtype": "float64"})
    slow.build(x.shape)
    slow.set_weights(fast.get_weights())
    y = fast.forward(x, training=True)
    dx = fast.backward(dy.copy())
    with backend.use_reference():
        y64 = slow.forward(x.astype(np.float64), training=True)
        dx64 = slow.backward(dy.astype(np.float64))
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx64, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast.kernel.grad, slow.kernel.grad, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(fast.bias.grad, slow.bias.grad, rtol=1e-4, atol=1e-4)


def test_conv2d_relu_is_the_fused_kernel_bit_for_bit():
    x = RNG.standard_normal((2, 6, 6, 3)).astype(np.float32)
    layer = layers.Conv2D(4, 3, activation="relu", bias_initializer="random_normal")
    y = layer(x)
    fused = ops.conv2d(x, layer.kernel.value, layer.bias.value, activation="relu")
    np.testing.assert_array_equal(y, fused)
    assert layer.logits is None  # the pre-activation is never materialised


def test_dense_relu_is_the_fused_kernel_bit_for_bit():
    x = RNG.standard_normal((5, 7)).astype(np.float32)
    layer = layers.Dense(4, activation="relu", bias_initializer="random_normal")
    np.testing.assert_array_equal(
        layer(x), ops.dense(x, layer.kernel.value, layer.bias.value, activation="relu")
    )


def test_dense_fast_path_matches_reference():
    x = RNG.standard_normal((6, 9)).astype(np.float32)
    dy = RNG.standard_normal((6, 4)).astype(np.float32)
    fast = layers.Dense(4, activation="relu")
    fast.build(x.shape)
    fast.forward(x, training=True)
    dx = fast.backward(dy.copy())
    relu_mask = fast._y > 0
    ref_dz = dy * relu_mask
    np.testing.assert_allclose(dx, ref_dz @ fast.kernel.value.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.kernel.grad, x.T @ ref_dz, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.bias.grad, ref_dz.sum(0), rtol=1e-5, atol=1e-5)


# ---- behaviour -------------------------------------------------------------


def test_output_shapes_match_keras():
    cases = [
        (layers.Conv2D(8, 3), (None, 28, 28, 1), (None, 26, 26, 8)),
        (layers.Conv2D(8, 3, padding="same", strides=2), (None, 28, 28, 1), (None, 14, 14, 8)),
        (layers.Conv2D(8, 3, dilation_rate=2), (None, 28, 28, 1), (None, 24, 24, 8)),
        (layers.MaxPooling2D(), (None, 7, 7, 4), (None, 3, 3, 4)),
        (layers.MaxPool2D(padding="same"), (None, 7, 7, 4), (None, 4, 4, 4)),
        (layers.AvgPool2D(3, strides=1), (None, 7, 7, 4), (None, 5, 5, 4)),
        (layers.GlobalAveragePooling2D(), (None, 7, 7, 4), (None, 4)),
        (layers.Flatten(), (None, 7, 7, 4), (None, 196)),
        (layers.Dense(3), (None, 196), (None, 3)),
    ]
    for layer, shape_in, shape_out in cases:
        layer.build(shape_in)
        assert layer.output_shape == shape_out, type(layer).__name__
        x = np.zeros((2, *shape_in[1:]), np.float32)
        assert layer(x).shape == (2, *shape_out[1:])


def test_parameter_counts():
    conv = layers.Conv2D(32, 3)
    conv.build((None, 28, 28, 1))
    assert conv.count_params() == 320
    bn = layers.BatchNormalization()
    bn.build((None, 5, 5, 16))
    assert bn.count_params() == 64
    assert len(bn.trainable_weights) == 2 and len(bn.non_trainable_weights) == 2


def test_batch_normalization_uses_moving_statistics_at_inference():
    layer = layers.BatchNormalization(momentum=0.5)
    x = RNG.normal(3.0, 2.0, (64, 4, 4, 3)).astype(np.float32)
    y = layer(x, training=True)
    np.testing.assert_allclose(y.mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1, atol=1e-3)
    m = x.size // 3
    np.testing.assert_allclose(layer.moving_mean.value, 0.5 * x.mean(axis=(0, 1, 2)), rtol=1e-5)
    np.testing.assert_allclose(
        layer.moving_variance.value, 0.5 + 0.5 * x.var(axis=(0, 1, 2)) * m / (m - 1), rtol=1e-4
    )
    expected = (x - layer.moving_mean.value) / np.sqrt(layer.moving_variance.value + 1e-3)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-4, atol=1e-4)


def test_frozen_batch_normalization_runs_in_inference_mode():
    layer = layers.BatchNormalization(trainable=False)
    x = RNG.normal(3.0, 2.0, (8, 3)).astype(np.float32)
    layer.build(x.shape)
    before = layer.get_weights()
    np.testing.assert_array_equal(layer.forward(x, training=True), layer.forward(x))
    for a, b in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_dropout_is_identity_at_inference_and_scales_in_training():
    layer = layers.Dropout(0.5)
    x = np.ones((1000, 10), np.float32)
    assert layer(x) is x
    y = layer(x, training=True)
    assert set(np.unique(y)) == {0.0, 2.0}
    assert 0.45 < (y == 0).mean() < 0.55


def test_dropout_with_seed_is_reproducible():
    x = np.ones((4, 10), np.float32)
    a = layers.Dropout(0.5, seed=3)(x, training=True)
    b = layers.Dropout(0.5, seed=3)(x, training=True)
    np.testing.assert_array_equal(a, b)


def test_names_are_unique_and_snake_case():
    backend.clear_session()
    names = [layers.Conv2D(1, 1).name, layers.Conv2D(1, 1).name,
             layers.MaxPooling2D().name, layers.BatchNormalization().name]
    assert names == ["conv2d", "conv2d_1", "max_pooling2d", "batch_normalization"]


ALL_LAYERS = [
    layers.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu",
                  kernel_regularizer="l1_l2", kernel_initializer="he_normal"),
    layers.Dense(3, activation="softmax", use_bias=False, bias_regularizer="l2"),
    layers.MaxPooling2D(3, strides=1, padding="same"),
    layers.AveragePooling2D(),
    layers.GlobalMaxPooling2D(keepdims=True),
    layers.GlobalAveragePooling2D(),
    layers.Flatten(),
    layers.Dropout(0.3, seed=2),
    layers.BatchNormalization(momentum=0.9, epsilon=1e-5, center=False),
    layers.Activation("selu"),
    layers.ReLU(max_value=6.0),
    layers.LeakyReLU(alpha=0.1),
    layers.InputLayer(input_shape=(4, 4, 1)),
]


@pytest.mark.parametrize("layer", ALL_LAYERS, ids=lambda layer: type(layer).__name__)
def test_config_round_trip(layer):
    clone = layers.deserialize(layers.serialize(layer))
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_set_weights_checks_count_and_shape():
    layer = layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="2 weights"):
        layer.set_weights([np.zeros((3, 2))])
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        layer.set_weights([np.zeros((2, 3)), np.zeros(2)])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: layers.Conv2D(0, 3), "filters"),
        (lambda: layers.Conv2D(2, 3, padding="full"), "padding"),
        (lambda: layers.Conv2D(2, 3, data_format="channels_first"), "channels-last"),
        (lambda: layers.Conv2D(2, 0), "kernel_size"),
        (lambda: layers.Dense(-1), "units"),
        (lambda: layers.Dense(2, activation="swishy"), "unknown activation"),
        (lambda: layers.Dense(2, kernel_initializer="nope"), "unknown initializer"),
        (lambda: layers.Dense(2, kernel_regularizer="l3"), "unknown regularizer"),
        (lambda: layers.Dropout(1.0), "rate"),
        (lambda: layers.BatchNormalization(momentum=2), "momentum"),
        (lambda: layers.Dense(2, name="a/b"), "name"),
        (lambda: layers.Dense(2, dtype="int32"), "dtype"),
        (lambda: layers.deserialize({"class_name": "os.system", "config": {}}), "unknown layer"),
    ],
)
def test_invalid_arguments_raise_value_error(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_unknown_keyword_raises_type_error():
    with pytest.raises(TypeError, match="unexpected keyword"):
        layers.Dense(2, unitz=3)


def test_conv2d_rejects_inputs_of_the_wrong_rank():
    with pytest.raises(ValueError, match=r"\(n, h, w, c\)"):
        layers.Conv2D(2, 3).build((None, 5, 5))


def test_plain_relu_layer_runs_as_the_relu_activation():
    """ReLU() and Activation("relu") are max(x, 0) (0 at -inf, NaN kept), their
    gradient dy where the output is positive (0 at x = 0, as TensorFlow's), both
    on the ReLU kernel: the same bits."""
    x = RNG.standard_normal((3, 5, 5, 4)).astype(np.float32)
    x.flat[::5], x.flat[::7], x.flat[::11] = 0.0, -np.inf, np.nan
    dy = RNG.standard_normal(x.shape).astype(np.float32)
    plain, activation = layers.ReLU(), layers.Activation("relu")
    y = plain.forward(x, training=True)
    np.testing.assert_array_equal(y, activation.forward(x, training=True))
    assert (y[x == -np.inf] == 0).all() and np.isnan(y[np.isnan(x)]).all()
    dy[0, 0, 0, :] = np.nan  # where y <= 0, a NaN gradient stops, as TensorFlow's
    dx = plain.backward(dy.copy())
    np.testing.assert_array_equal(dx, activation.backward(dy.copy()))
    assert (dx[x == 0] == 0).all() and (dx[(y <= 0) & ~np.isnan(y)] == 0).all()


@pytest.mark.parametrize("make", [lambda: layers.Activation("leaky_relu"),
                                  lambda: layers.Dense(5, activation="leaky_relu")],
                         ids=["Activation", "Dense"])
def test_leaky_relu_activation_runs_on_the_kernels_as_its_formula(make):
    """activation="leaky_relu" (slope 0.2) on the leaky ReLU kernels: the
    activation's own NumPy formula bit for bit, both ways (slope 0.2 at 0)."""
    layer = make()
    x = RNG.standard_normal((6, 5)).astype(np.float32) * 3
    x.flat[::4] = 0.0
    layer.build((None, 5))
    if isinstance(layer, layers.Dense):  # z = x @ I = x: the activation alone
        layer.kernel.value[...] = np.eye(5, dtype=np.float32)
        layer.bias.value[...] = 0
    else:
        x.flat[::7], x.flat[::9] = -np.inf, np.nan
    dy = RNG.standard_normal(x.shape).astype(np.float32)
    y = layer.forward(x, training=True)
    leaky = activations.leaky_relu
    np.testing.assert_array_equal(y.view(np.uint32), leaky(x).view(np.uint32))
    dx = layer.backward(dy.copy())
    want = leaky.gradient(dy, x, leaky(x))
    if isinstance(layer, layers.Dense):
        want = want @ np.eye(5, dtype=np.float32)
    np.testing.assert_array_equal(dx, want)


@pytest.mark.parametrize("layer", [layers.LeakyReLU(), layers.ReLU(max_value=6.0),
                                   layers.ReLU(negative_slope=0.1, max_value=1.0),
                                   layers.LeakyReLU(alpha=1.5), layers.ReLU(threshold=0.5)],
                         ids=["leaky", "relu6", "leaky-capped", "steep", "threshold"])
def test_relu_variants_match_their_formula_bit_for_bit(layer):
    """y = x at or above the threshold (capped at max_value), negative_slope *
    (x - threshold) below it, NaN at NaN; the gradient's slope 1,
    negative_slope, or 0 at and above the cap. With the threshold at 0 (the
    leaky ReLU kernels, the gradient from the output) x = 0 counts as below,
    as in TensorFlow, and a slope of 0 gives +0 there."""
    x = RNG.standard_normal((4, 6, 6, 3)).astype(np.float32) * 4
    x.flat[::5], x.flat[::7], x.flat[::11] = 0.0, 6.0, np.nan
    dy = RNG.standard_normal(x.shape).astype(np.float32)
    t, s, cap = layer.threshold, layer.negative_slope, layer.max_value
    above = x > t if t == 0 else x >= t
    with np.errstate(invalid="ignore"):  # a slope of 0 at threshold 0 selects +0
        below = np.float32(s) * (x - np.float32(t)) if s or t else np.zeros_like(x)
        want = np.where(above | np.isnan(x), x, below).astype(np.float32)
    if cap is not None:
        want = np.minimum(want, np.float32(cap))
    slope = np.where(above, np.float32(1), np.float32(s))
    if cap is not None:
        slope[x >= cap] = 0
    np.testing.assert_array_equal(layer.forward(x, training=True).view(np.uint32),
                                  want.view(np.uint32))
    np.testing.assert_array_equal(layer.backward(dy.copy()), dy * slope)
