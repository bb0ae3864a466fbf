"""Ready-made MNIST models by name, each with the training recipe it was measured with.

The models take ``(n, 28, 28, 1)`` float32 images scaled to [0, 1] and end in a
10-way softmax, so they train with ``sparse_categorical_crossentropy`` on the
integer labels `fastconv.datasets.mnist.load_data` returns.

========== ===================================================================
name       model
========== ===================================================================
fast       the default: two small convolutions (16 and 32 filters), each
           followed by max pooling, then one hidden dense layer of 128. About
           a fifteenth of keras-cnn's work per image; with Adam and a falling
           learning rate it passes 99% test accuracy in 4-5 epochs.
keras-cnn  the Keras example ``mnist_cnn.py``: conv32-conv64-maxpool-
           dropout(0.25)-flatten-dense128-dropout(0.5)-dense10 (99.25% after
           12 epochs in Keras's published run).
lenet5     LeCun et al.'s LeNet-5 in its common modern form: 5x5 convolutions
           of 6 and 16 filters with 2x2 average pooling, dense 120-84-10, ReLU.
========== ===================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from fastconv import layers, optimizers
from fastconv.models import Sequential

__all__ = ["DEFAULT_MODEL", "MODELS", "Recipe", "build", "fast", "keras_cnn", "lenet5", "recipe"]

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10


def fast() -> Sequential:
    """The default model: conv16-maxpool-conv32-maxpool-dropout(0.25)-dense128-dense10.

    Of the designs measured (benchmarks/RESULTS.md), the one that reached 99%
    test accuracy in the least time on two cores: pooling after the first
    convolution makes the second one four times cheaper, and 16 and 32
    filters cost a quarter of 32 and 64 at the price of an extra epoch or two.
    """
    return Sequential(
        [
            layers.Conv2D(16, 3, activation="relu", input_shape=INPUT_SHAPE),
            layers.MaxPooling2D(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.25),
            layers.Dense(128, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="fast",
    )


def keras_cnn() -> Sequential:
    """The Keras example CNN (``examples/mnist_cnn.py`` in Keras 2)."""
    return Sequential(
        [
            layers.Conv2D(32, 3, activation="relu", input_shape=INPUT_SHAPE),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="keras_cnn",
    )


def lenet5() -> Sequential:
    """LeNet-5 with ReLU: conv6(5x5, same)-avgpool-conv16(5x5)-avgpool-120-84-10."""
    return Sequential(
        [
            layers.Conv2D(6, 5, padding="same", activation="relu", input_shape=INPUT_SHAPE),
            layers.AveragePooling2D(),
            layers.Conv2D(16, 5, activation="relu"),
            layers.AveragePooling2D(),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="lenet5",
    )


@dataclass(frozen=True)
class Recipe:
    """How a model is trained by default: what `fastconv train` uses unless told otherwise.

    Attributes
    ----------
    build : callable returning a new, uncompiled Sequential
    optimizer : str
        A name `fastconv.optimizers.get` knows.
    learning_rate : float
    epochs : int
    batch_size : int
    decay_to : float
        The learning rate falls linearly, epoch by epoch, from ``learning_rate``
        to ``learning_rate * decay_to`` at the last epoch (1.0: constant).
    summary : str
        One line for ``fastconv train --help``.
    """

    build: object
    optimizer: str
    learning_rate: float
    epochs: int
    batch_size: int
    decay_to: float
    summary: str


MODELS: dict[str, Recipe] = {
    "fast": Recipe(fast, "adam", 3e-3, 5, 128, 0.1,
                   "the default: conv16-pool-conv32-pool-dense128, 99% in 5 epochs"),
    "keras-cnn": Recipe(keras_cnn, "adadelta", 1.0, 12, 128, 1.0,
                        "the Keras example mnist_cnn.py (Adadelta, 12 epochs, 99.25%)"),
    "lenet5": Recipe(lenet5, "adam", 1e-3, 10, 128, 0.1,
                     "LeNet-5 with ReLU and average pooling"),
}
DEFAULT_MODEL = "fast"


def recipe(name: str) -> Recipe:
    """The `Recipe` of the model called ``name`` ("fast", "keras-cnn", "lenet5")."""
    key = name.lower().replace("_", "-")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    return MODELS[key]


def build(name: str, optimizer: str | None = None,
          learning_rate: float | None = None) -> Sequential:
    """A new model ``name``, compiled with its recipe's optimizer (or the one given).

    Parameters
    ----------
    name : str
        A key of `MODELS`.
    optimizer : str, optional
        An optimizer name; defaults to the recipe's.
    learning_rate : float, optional
        Defaults to the recipe's rate when the optimizer is the recipe's, and to
        the optimizer's own default (Keras's) otherwise.

    Returns
    -------
    Sequential
        Compiled with ``sparse_categorical_crossentropy`` and accuracy.
    """
    r = recipe(name)
    model = r.build()
    chosen = (optimizer or r.optimizer).lower()
    opt = optimizers.get(chosen)
    if learning_rate is not None:
        opt.learning_rate = learning_rate
    elif chosen == r.optimizer:
        opt.learning_rate = r.learning_rate
    model.compile(opt, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
