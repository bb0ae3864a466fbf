"""Tests of `fastconv.models.Sequential`: building, summary and parameter counts
against Keras's, the training loop (end-to-end gradients, convergence,
bitwise reproducibility, frozen layers), evaluate, predict and errors."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import RTOL, numerical_grad

from fastconv import backend, layers, losses, optimizers, utils
from fastconv.models import Sequential


def mnist_cnn():
    """The Keras MNIST example CNN."""
    return Sequential([
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu", input_shape=(28, 28, 1)),
        layers.Conv2D(64, (3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])


def cifar10_cnn():
    """The Keras CIFAR-10 example CNN (Keras reports 1,250,858 parameters)."""
    return Sequential([
        layers.Conv2D(32, (3, 3), padding="same", input_shape=(32, 32, 3)),
        layers.Activation("relu"),
        layers.Conv2D(32, (3, 3)),
        layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Conv2D(64, (3, 3), padding="same"),
        layers.Activation("relu"),
        layers.Conv2D(64, (3, 3)),
        layers.Activation("relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(512),
        layers.Activation("relu"),
        layers.Dropout(0.5),
        layers.Dense(10),
        layers.Activation("softmax"),
    ])


def small_cnn(seed=0, dropout=0.25, **conv_kwargs):
    utils.set_random_seed(seed)
    return Sequential([
        layers.Input((8, 8, 1)),
        layers.Conv2D(4, 3, activation="relu", padding="same", **conv_kwargs),
        layers.MaxPooling2D(),
        layers.Dropout(dropout),
        layers.Flatten(),
        layers.Dense(8, activation="relu"),
        layers.Dense(2, activation="softmax"),
    ])


def quadrant_data(n=256, seed=0):
    """8x8 images whose label says whether the top half is brighter than the bottom."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)
    labels = rng.integers(0, 2, n)
    x[labels == 1, :4] += 0.5
    x[labels == 0, 4:] += 0.5
    return x, labels


# ---- structure -------------------------------------------------------------


def test_mnist_example_has_kerass_parameter_count():
    model = mnist_cnn()
    assert model.count_params() == 1_199_882
    assert len(model.trainable_weights) == 8 and model.non_trainable_weights == []


def test_cifar10_example_has_kerass_parameter_count():
    assert cifar10_cnn().count_params() == 1_250_858


def test_summary_prints_kerass_table(capsys):
    backend.clear_session()
    model = mnist_cnn()
    model.summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    assert " conv2d (Conv2D)              (None, 26, 26, 32)        320" in out
    assert " flatten (Flatten)            (None, 9216)              0" in out
    assert " dense (Dense)                (None, 128)               1179776" in out
    assert "Total params: 1,199,882\nTrainable params: 1,199,882\nNon-trainable params: 0" in out


def test_summary_counts_non_trainable_weights():
    model = Sequential([layers.Dense(64, input_shape=(32,)), layers.BatchNormalization(),
                        layers.Dense(1)])
    lines = []
    model.summary(print_fn=lines.append)
    assert "Total params: 2,433" in lines
    assert "Trainable params: 2,305" in lines and "Non-trainable params: 128" in lines
    model.layers[0].trainable = False
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 193" in lines and "Non-trainable params: 2,240" in lines


def test_building_lazily_from_the_first_batch():
    model = Sequential()
    model.add(layers.Dense(3))
    assert not model.built
    with pytest.raises(ValueError, match="not been built"):
        model.summary()
    assert model.predict(np.zeros((2, 5))).shape == (2, 3)
    assert model.built and model.output_shape == (None, 3)


def test_input_layer_is_not_listed_and_shapes_are_known():
    model = Sequential([layers.Input((4, 4, 2)), layers.Flatten(), layers.Dense(3)])
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense"]
    assert model.input_shape == (None, 4, 4, 2) and model.output_shape == (None, 3)


def test_get_and_set_weights_and_get_layer():
    model = small_cnn()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(3, 3, 1, 4), (4,), (64, 8), (8,), (8, 2), (2,)]
    model.set_weights([w + 1 for w in weights])
    np.testing.assert_array_equal(model.get_layer(index=0).get_weights()[0], weights[0] + 1)
    assert model.get_layer(model.layers[-1].name) is model.layers[-1]
    with pytest.raises(ValueError, match="6 weights"):
        model.set_weights(weights[:2])


def test_duplicate_layer_names_are_refused():
    with pytest.raises(ValueError, match="unique names"):
        Sequential([layers.Dense(2, name="d", input_shape=(3,)), layers.Dense(2, name="d")])


# ---- training --------------------------------------------------------------


def assert_sgd_step_is_minus_the_gradient(model, x, y, objective):
    """One full-batch step of SGD with rate 1 (on the float64 reference
    kernels) moves each weight by minus its gradient: compared with finite
    differences of objective()."""
    with backend.use_reference():
        before = [w.value.copy() for w in model.trainable_weights]
        numeric = [numerical_grad(objective, w.value) for w in model.trainable_weights]
        model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0)
    for w, b, n in zip(model.trainable_weights, before, numeric):
        np.testing.assert_allclose(b - w.value, n, rtol=RTOL, atol=1e-7, err_msg=w.path)


def test_end_to_end_gradients_of_a_model_in_float64():
    """One full-batch SGD step with rate 1 moves each weight by minus its
    gradient, which must match finite differences of the model's loss; this
    covers the fused softmax cross-entropy and every backward in sequence."""
    utils.set_random_seed(5)
    kw = {"dtype": "float64"}
    model = Sequential([
        layers.Conv2D(3, 3, activation="relu", padding="same", input_shape=(5, 5, 2), **kw),
        layers.BatchNormalization(**kw),
        layers.AveragePooling2D(**kw),
        layers.Conv2D(2, 2, activation="tanh", **kw),
        layers.Flatten(**kw),
        layers.Dense(3, activation="softmax", kernel_regularizer="l2", **kw),
    ])
    model.compile(optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 5, 5, 2)), rng.integers(0, 3, 4)
    loss = losses.get("sparse_categorical_crossentropy")

    def objective():
        return loss(y, model._forward(x, training=True)) + model._regularization_loss()

    assert_sgd_step_is_minus_the_gradient(model, x, y, objective)


def test_end_to_end_gradients_through_a_pooled_convolution_in_float64():
    """The same check through a convolution and the max pooling that run in
    one call both ways (Conv2D.forward_pooled, Conv2D.backward_pooled), the
    gradient taken on through the ReLU of the convolution below."""
    utils.set_random_seed(6)
    kw = {"dtype": "float64"}
    model = Sequential([
        layers.Conv2D(3, 3, activation="relu", padding="same", input_shape=(6, 6, 2), **kw),
        layers.Conv2D(4, 3, activation="relu", padding="same", **kw),
        layers.MaxPooling2D(**kw),
        layers.Flatten(**kw),
        layers.Dense(3, activation="softmax", **kw),
    ])
    model.compile(optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 6, 6, 2)), rng.integers(0, 3, 4)
    loss = losses.get("sparse_categorical_crossentropy")
    calls = []
    backward_pooled = layers.Conv2D.backward_pooled

    def counted(self, dy, dropout=None, relu_input=False):
        calls.append(relu_input)
        return backward_pooled(self, dy, dropout, relu_input)

    def objective():
        return loss(y, model._forward(x, training=True))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(layers.Conv2D, "backward_pooled", counted)
        assert_sgd_step_is_minus_the_gradient(model, x, y, objective)
    assert calls == [True]


def test_small_problem_converges():
    x, y = quadrant_data()
    model = small_cnn()
    model.compile(optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.95
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.95 and loss < 0.2


def train(seed, epochs=2, **fit_kwargs):
    x, y = quadrant_data()
    model = small_cnn(seed)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=24, epochs=epochs, verbose=0, **fit_kwargs)
    return model, history


def test_same_seed_trains_bit_identically():
    a, ha = train(3, validation_split=0.2)
    b, hb = train(3, validation_split=0.2)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert ha.history == hb.history
    c, _ = train(4)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


def test_training_is_bit_identical_at_any_thread_count():
    import fastconv

    saved = fastconv.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            results.append(train(6)[0].get_weights())
    finally:
        fastconv.set_num_threads(saved)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pooling", [layers.MaxPooling2D, layers.AveragePooling2D])
def test_relu_under_pooling_trains_as_it_would_unfused(monkeypatch, pooling):
    """A ReLU-activated layer under max or average pooling takes its gradient
    from the pooling's pass (backward_through_relu); the weights come out
    bit-identical to running the two backward passes apart."""
    monkeypatch.setattr(layers, "MaxPooling2D", pooling)  # small_cnn's pooling
    # The pooling's own backward: not the convolution's call for both
    # (test_max_pooling_runs_in_the_convolutions_pass).
    monkeypatch.setattr(layers.Conv2D, "pools_in_one_pass", lambda *args: False)
    calls = []
    through_relu = pooling.backward_through_relu

    def counted(self, dy, **kwargs):
        calls.append(self.name)
        return through_relu(self, dy, **kwargs)

    monkeypatch.setattr(pooling, "backward_through_relu", counted)
    fused = train(7)[0].get_weights()
    assert calls  # the fused path ran
    monkeypatch.setattr(pooling, "takes_relu_backward", False)
    calls.clear()
    apart = train(7)[0].get_weights()
    assert not calls
    for a, b in zip(fused, apart):
        np.testing.assert_array_equal(a, b)


def test_dropout_above_pooling_trains_as_it_would_unfused(monkeypatch):
    """A Dropout layer right above a pooling layer runs in the pooling's
    passes (its mask drawn as its own forward would draw it); the weights
    and the loss history come out bit-identical to running it apart."""
    from fastconv.layers.pooling import _Pooling2D

    fused_calls = []
    forward = _Pooling2D.forward

    def counted(self, x, training=False, dropout=None):
        fused_calls.append(dropout is not None)
        return forward(self, x, training, dropout)

    monkeypatch.setattr(_Pooling2D, "forward", counted)
    # The pooling's own pass: not the convolution's below (the next test).
    monkeypatch.setattr(layers.Conv2D, "pools_in_one_pass", lambda *args: False)
    for pooling in (layers.MaxPooling2D, layers.AveragePooling2D):
        monkeypatch.setattr(layers, "MaxPooling2D", pooling)
        fused_calls.clear()
        fused, fused_history = train(7)
        assert any(fused_calls)
        monkeypatch.setattr(_Pooling2D, "takes_dropout", False)
        fused_calls.clear()
        apart, apart_history = train(7)
        assert fused_calls and not any(fused_calls)
        monkeypatch.setattr(_Pooling2D, "takes_dropout", True)
        for a, b in zip(fused.get_weights(), apart.get_weights()):
            np.testing.assert_array_equal(a, b)
        assert fused_history.history == apart_history.history


@pytest.mark.parametrize("conv_kwargs", [
    {},  # 1 -> 4 channels: the direct kernels, fused in one pass
    {"activation": None},  # no ReLU: the pooling's backward is the plain one
    {"filters": 24, "padding": "valid", "input_channels": 8},  # GEMM: through its output
    # Winograd, pooled in its output transform, and both gradients from the
    # pooling's in one pass: with dx through the ReLU below, and without dx.
    {"filters": 16, "padding": "valid", "relu_below": 16},
    {"filters": 16, "padding": "valid", "input_channels": 16},
])
def test_max_pooling_runs_in_the_convolutions_pass(monkeypatch, conv_kwargs):
    """Conv2D, MaxPooling2D and the Dropout above them run in one kernel call
    (Conv2D.forward_pooled), and so do their backward passes
    (Conv2D.backward_pooled); the weights, the loss history and the
    predictions come out bit-identical to running them apart."""
    kwargs = dict(conv_kwargs)
    channels = kwargs.pop("input_channels", 1)
    filters = kwargs.pop("filters", 4)
    below = kwargs.pop("relu_below", 0)

    def model(seed):
        utils.set_random_seed(seed)
        return Sequential([
            layers.Input((10, 10, channels)),
            *([layers.Conv2D(below, 3, activation="relu", padding="same")] if below else []),
            layers.Conv2D(filters, 3, **{"activation": "relu", "padding": "same", **kwargs}),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ])

    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (48, 10, 10, channels)).astype(np.float32)
    y = rng.integers(0, 2, 48)
    calls, backward_calls = [], []
    forward_pooled = layers.Conv2D.forward_pooled
    backward_pooled = layers.Conv2D.backward_pooled

    def counted(self, x, pool, training=False, dropout=None):
        calls.append((training, dropout is not None))
        return forward_pooled(self, x, pool, training, dropout)

    def counted_backward(self, dy, dropout=None, relu_input=False):
        backward_calls.append((dropout is not None, relu_input))
        return backward_pooled(self, dy, dropout, relu_input)

    monkeypatch.setattr(layers.Conv2D, "forward_pooled", counted)
    monkeypatch.setattr(layers.Conv2D, "backward_pooled", counted_backward)
    results = []
    for fuse in (True, False):
        if not fuse:
            monkeypatch.setattr(layers.Conv2D, "pools_in_one_pass", lambda *args: False)
        calls.clear()
        backward_calls.clear()
        m = model(3)
        m.compile("adam", "sparse_categorical_crossentropy")
        history = m.fit(x, y, batch_size=16, epochs=2, verbose=0)
        results.append((m.get_weights(), history.history, m.predict(x, verbose=0)))
        assert ((True, True) in calls and (False, False) in calls) == fuse
        assert bool(calls) == fuse
        assert backward_calls == ([(True, bool(below))] * 6 if fuse else [])
    (w_fused, h_fused, p_fused), (w_apart, h_apart, p_apart) = results
    for a, b in zip(w_fused, w_apart):
        np.testing.assert_array_equal(a, b)
    assert h_fused == h_apart
    np.testing.assert_array_equal(p_fused, p_apart)


def test_relu_under_a_convolution_trains_as_it_would_unfused(monkeypatch):
    """A ReLU-activated layer under a Conv2D takes its gradient from the
    convolution's backward (relu=True), also in the backward of a Conv2D that
    runs with the max pooling above it; the weights come out bit-identical to
    running the ReLU's backward apart."""
    def model(seed):
        utils.set_random_seed(seed)
        return Sequential([
            layers.Input((12, 12, 16)),
            layers.Conv2D(16, 3, activation="relu", padding="same"),
            layers.Conv2D(16, 3, activation="relu", padding="same"),  # 6x6 Winograd dx
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(2, activation="softmax"),
        ])

    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((40, 12, 12, 16)).astype(np.float32), rng.integers(0, 2, 40)
    calls = []
    kernels = backend.kernels()

    class Counting:
        def __getattr__(self, name):
            return getattr(kernels, name)

        def conv2d_backward(self, *args, relu=False, **kwargs):
            calls.append(relu)
            return kernels.conv2d_backward(*args, relu=relu, **kwargs)

        def conv2d_max_pool2d_backward(self, *args, relu=False, **kwargs):
            calls.append(relu)
            return kernels.conv2d_max_pool2d_backward(*args, relu=relu, **kwargs)

    def trained():
        m = model(9)
        m.compile("adam", "sparse_categorical_crossentropy")
        m.fit(x, y, batch_size=20, epochs=2, verbose=0)
        return m.get_weights()

    monkeypatch.setattr(backend, "_current", Counting())
    fused = trained()
    assert calls.count(True) == 2 * calls.count(False)  # two of the three layers fused
    monkeypatch.setattr(layers.Conv2D, "takes_relu_backward", False)
    calls.clear()
    apart = trained()
    assert calls and not any(calls)
    for a, b in zip(fused, apart):
        np.testing.assert_array_equal(a, b)


def assert_classifier_gradients(*hidden):
    """The float64 layers ``hidden`` (on 6x6x2 inputs) under a softmax over 3
    classes: one SGD step against finite differences of the loss."""
    utils.set_random_seed(8)
    kw = {"dtype": "float64"}
    model = Sequential([*hidden, layers.Flatten(**kw), layers.Dense(3, activation="softmax", **kw)])
    model.compile(optimizers.SGD(1.0), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((4, 6, 6, 2)), rng.integers(0, 3, 4)
    loss = losses.get("sparse_categorical_crossentropy")

    def objective():
        return loss(y, model._forward(x, training=True))

    assert_sgd_step_is_minus_the_gradient(model, x, y, objective)


def test_gradients_through_a_relu_layer_under_a_convolution_in_float64():
    """The convolution's input gradient taken through the ReLU below it (a
    fused one, then an Activation layer), against finite differences."""
    kw = {"dtype": "float64"}
    assert_classifier_gradients(
        layers.Conv2D(3, 3, padding="same", activation="relu", input_shape=(6, 6, 2), **kw),
        layers.Conv2D(3, 3, padding="same", **kw),
        layers.Activation("relu", **kw),
        layers.Conv2D(2, 3, **kw),
    )


@pytest.mark.parametrize("pooling", [layers.MaxPooling2D, layers.GlobalMaxPooling2D,
                                     layers.AveragePooling2D, layers.GlobalAveragePooling2D])
def test_gradients_through_a_relu_layer_under_pooling_in_float64(pooling):
    """The fused ReLU-and-pooling backward against finite differences, with
    the ReLU as its own Activation layer (Keras's CIFAR-10 example style)."""
    kw = {"dtype": "float64"}
    assert_classifier_gradients(
        layers.Conv2D(3, 3, padding="same", input_shape=(6, 6, 2), **kw),
        layers.Activation("relu", **kw),
        pooling(**kw),
    )


def bn_relu_net(relu, axis=-1, frozen=False, relu_last=False):
    """Conv-BN-ReLU twice, then a softmax head (or, relu_last, a BN-ReLU
    output for a regression)."""
    utils.set_random_seed(4)
    net = [layers.Conv2D(6, 3, padding="same", use_bias=False, input_shape=(8, 8, 3)),
           layers.BatchNormalization(axis=axis), relu(),
           layers.Conv2D(5, 3, strides=2, use_bias=False),
           layers.BatchNormalization(axis=axis, center=False), relu()]
    net += ([layers.Flatten(), layers.Dense(4), layers.BatchNormalization(), relu()] if relu_last
            else [layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model = Sequential(net)
    model.layers[1].trainable = not frozen
    model.compile("adam", "mse" if relu_last else "sparse_categorical_crossentropy")
    return model


@pytest.mark.parametrize("relu", [lambda: layers.Activation("relu"), layers.ReLU],
                         ids=["Activation", "ReLU"])
@pytest.mark.parametrize("case", ["plain", "channels_first_axis", "frozen", "relu_last"])
def test_batch_norm_relu_runs_in_one_pass_and_trains_as_it_would_apart(monkeypatch, relu, case):
    """A plain ReLU layer above BatchNormalization runs in its forward and
    backward passes (the mask recomputed from the normalisation's input): the
    losses, weights and predictions come out bit-identical to running the two
    layers apart, with the feature axis not last, a frozen normalisation, or
    the ReLU as the model's output too."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((48, 8, 8, 3)).astype(np.float32)
    y = rng.standard_normal((48, 4)) if case == "relu_last" else rng.integers(0, 3, 48)
    kwargs = dict(axis=1 if case == "channels_first_axis" else -1, frozen=case == "frozen",
                  relu_last=case == "relu_last")

    def trained():
        model = bn_relu_net(relu, **kwargs)
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0).history["loss"]
        return model, history

    fused_calls = []
    forward = layers.BatchNormalization.forward

    def counted(self, x, training=False, relu_above=None):
        fused_calls.append(relu_above is not None)
        return forward(self, x, training=training, relu_above=relu_above)

    monkeypatch.setattr(layers.BatchNormalization, "forward", counted)
    fused, fused_history = trained()
    assert any(fused_calls)
    for cls in (layers.Activation, layers.ReLU):
        monkeypatch.setattr(cls, "plain_relu", False)
    fused_calls.clear()
    apart, apart_history = trained()
    assert fused_calls and not any(fused_calls)
    assert fused_history == apart_history
    for a, b in zip(fused.get_weights(), apart.get_weights()):
        np.testing.assert_array_equal(a, b)
    monkeypatch.undo()
    np.testing.assert_array_equal(fused.predict(x), apart.predict(x))


def test_gradients_through_batch_norm_and_its_relu_in_float64():
    """The fused BN-ReLU backward against finite differences (reference kernels)."""
    kw = {"dtype": "float64"}
    assert_classifier_gradients(
        layers.Conv2D(3, 3, padding="same", input_shape=(6, 6, 2), **kw),
        layers.BatchNormalization(**kw),
        layers.Activation("relu", **kw),
        layers.Conv2D(2, 3, **kw),
        layers.BatchNormalization(center=False, **kw),
        layers.ReLU(**kw),
    )


def test_frozen_layers_stay_bit_identical_and_recompiling_unfreezes():
    x, y = quadrant_data(64)
    model = small_cnn()
    model.layers[0].trainable = False
    model.compile(optimizers.SGD(0.1, momentum=0.9), "sparse_categorical_crossentropy")
    frozen = model.layers[0].get_weights()
    head = model.layers[-1].get_weights()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(frozen, model.layers[0].get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(head[0], model.layers[-1].get_weights()[0])
    model.layers[0].trainable = True
    model.compile(model.optimizer, "sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert not np.array_equal(frozen[0], model.layers[0].get_weights()[0])


def test_frozen_batch_normalization_keeps_its_statistics():
    utils.set_random_seed(0)
    model = Sequential([layers.Dense(4, input_shape=(3,)), layers.BatchNormalization(),
                        layers.Dense(1)])
    model.layers[1].trainable = False
    model.compile("sgd", "mse")
    before = model.layers[1].get_weights()
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((32, 3)), rng.standard_normal((32, 1)), verbose=0)
    for a, b in zip(before, model.layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_history_validation_and_metrics_names():
    x, y = quadrant_data(100)
    model = small_cnn()
    model.compile("adam", "categorical_crossentropy",
                  metrics=["accuracy", "top_k_categorical_accuracy"])
    history = model.fit(x, utils.to_categorical(y, 2), epochs=2, verbose=0,
                        validation_split=0.2)
    assert set(history.history) == {
        "loss", "accuracy", "top_k_categorical_accuracy",
        "val_loss", "val_accuracy", "val_top_k_categorical_accuracy",
    }
    assert history.epoch == [0, 1] and all(len(v) == 2 for v in history.history.values())
    assert history.history["top_k_categorical_accuracy"] == [1.0, 1.0]
    assert model.metrics_names == ["loss", "accuracy", "top_k_categorical_accuracy"]
    # validation_split holds out the *last* 20 samples, as Keras does.
    val = model.evaluate(x[80:], utils.to_categorical(y[80:], 2), verbose=0, return_dict=True)
    assert val["loss"] == pytest.approx(history.history["val_loss"][-1], rel=1e-6)


def test_initial_epoch_and_validation_data():
    x, y = quadrant_data(64)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0, validation_data=(x, y),
                        validation_batch_size=7)
    assert history.epoch == [1, 2] and len(history.history["val_loss"]) == 2
    assert model.evaluate(x, y, verbose=0) == pytest.approx(
        model.evaluate(x, y, batch_size=64, verbose=0), rel=1e-5)


def test_epoch_loss_is_the_sample_weighted_mean_of_batches():
    x, y = quadrant_data(50)
    model = small_cnn(dropout=0.0)
    model.compile(optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    history = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert history.history["loss"][0] == pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-5)


def test_accuracy_follows_the_loss_like_keras():
    x, y = quadrant_data(64)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["acc"])
    model.fit(x, y, verbose=0)
    sparse = model.evaluate(x, y, verbose=0)[1]
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    assert model.evaluate(x, utils.to_categorical(y), verbose=0)[1] == sparse
    binary = Sequential([layers.Dense(1, activation="sigmoid", input_shape=(3,))])
    binary.compile("sgd", "binary_crossentropy", metrics=["accuracy"])
    xb = np.random.default_rng(0).standard_normal((20, 3))
    yb = (xb[:, :1] > 0).astype(np.float32)
    expected = np.mean((binary.predict(xb) > 0.5) == yb)
    assert binary.evaluate(xb, yb, verbose=0)[1] == pytest.approx(expected)


def test_regularization_adds_to_the_loss():
    x, y = quadrant_data(32)
    model = small_cnn(kernel_regularizer="l2")
    model.compile("sgd", "sparse_categorical_crossentropy")
    plain = model.loss(y, model.predict(x))
    penalty = 0.01 * float(np.sum(model.layers[0].kernel.value.astype(np.float64) ** 2))
    assert model.evaluate(x, y, verbose=0, batch_size=32) == pytest.approx(plain + penalty,
                                                                           rel=1e-5)


def test_fused_softmax_keeps_training_finite_with_saturated_outputs():
    model = Sequential([layers.Dense(3, activation="softmax", input_shape=(2,),
                                     kernel_initializer="ones")])
    model.compile(optimizers.SGD(0.1), "categorical_crossentropy")
    model.layers[0].kernel.value[:] = [[1e3, 0, -1e3], [1e3, 0, -1e3]]
    x = np.ones((4, 2), np.float32)
    y = utils.to_categorical([2, 2, 2, 2], 3)
    history = model.fit(x, y, verbose=0, batch_size=4)
    assert history.history["loss"][0] == pytest.approx(4e3, rel=1e-5)
    assert np.all(np.isfinite(model.get_weights()[0]))


def test_predict_matches_call_and_is_batch_independent():
    x, _ = quadrant_data(70)
    model = small_cnn()
    a = model.predict(x, batch_size=16)
    b = model.predict(x, batch_size=70)
    assert a.shape == (70, 2) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a, model(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(a.sum(axis=1), 1, rtol=1e-6)


def test_integer_inputs_are_converted():
    x, y = quadrant_data(32)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    x8 = (x * 100).astype(np.uint8)
    np.testing.assert_allclose(model.predict(x8), model.predict(x8.astype(np.float32)))
    model.fit(x8, y, verbose=0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x, y: m.fit(x, y[:-1], verbose=0), ValueError, "same number"),
        (lambda m, x, y: m.fit(x, y, batch_size=0, verbose=0), ValueError, "batch_size"),
        (lambda m, x, y: m.fit(x, y, batch_size=2.5, verbose=0), TypeError, "batch_size"),
        (lambda m, x, y: m.fit(x, y, validation_split=1.0, verbose=0), ValueError,
         "validation_split"),
        (lambda m, x, y: m.fit(x[:0], y[:0], verbose=0), ValueError, "at least one"),
        (lambda m, x, y: m.predict(x[:, :4]), ValueError, "expects inputs"),
        (lambda m, x, y: m.fit(x, y + 5, verbose=0), ValueError, "labels"),
        (lambda m, x, y: m.fit(x.astype(complex), y, verbose=0), TypeError, "real"),
        (lambda m, x, y: m.fit(x, y, validation_data=(x,), verbose=0), ValueError,
         "validation_data"),
        (lambda m, x, y: m.fit(x, y, verbose=3), ValueError, "verbose"),
    ],
)
def test_errors(call, error, message):
    x, y = quadrant_data(16)
    model = small_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(error, match=message):
        call(model, x, y)


def test_fit_before_compile_raises():
    x, y = quadrant_data(8)
    with pytest.raises(RuntimeError, match="compile"):
        small_cnn().fit(x, y)
    with pytest.raises(ValueError, match="loss"):
        small_cnn().compile("sgd")
