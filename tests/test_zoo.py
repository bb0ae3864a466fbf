"""The named MNIST models of fastconv.zoo and their recipes."""

import numpy as np
import pytest

from fastconv import optimizers, zoo
from fastconv.models import Sequential


@pytest.mark.parametrize("name, params", [
    ("keras-cnn", 1_199_882),  # as Keras's summary of mnist_cnn.py counts them
    ("lenet5", 61_706),
    ("fast", 108_618),
])
def test_models_build_with_their_parameter_counts(name, params):
    model = zoo.build(name)
    assert isinstance(model, Sequential) and model.compiled
    assert model.count_params() == params
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    out = model.predict(np.zeros((3, 28, 28, 1), dtype=np.float32))
    np.testing.assert_allclose(out.sum(axis=1), 1, rtol=1e-5)


def test_recipe_optimizer_and_overrides():
    model = zoo.build("keras-cnn")
    assert isinstance(model.optimizer, optimizers.Adadelta)
    assert model.optimizer.learning_rate == 1.0
    model = zoo.build("keras-cnn", optimizer="adam")
    assert isinstance(model.optimizer, optimizers.Adam)
    assert model.optimizer.learning_rate == pytest.approx(1e-3)  # Adam's own default
    model = zoo.build("fast", learning_rate=0.01)
    assert model.optimizer.learning_rate == pytest.approx(0.01)
    assert zoo.build("fast").optimizer.learning_rate == zoo.MODELS["fast"].learning_rate


def test_names_and_errors():
    assert zoo.DEFAULT_MODEL in zoo.MODELS
    assert zoo.recipe("Keras_CNN") is zoo.MODELS["keras-cnn"]
    with pytest.raises(ValueError, match="unknown model 'vgg'.*fast, keras-cnn, lenet5"):
        zoo.recipe("vgg")
    with pytest.raises(ValueError, match="unknown optimizer"):
        zoo.build("fast", optimizer="lbfgs")
