"""Keras-compatible layers running on fastconv's kernels.

`deserialize` builds layers only from the classes listed here, so a saved
model's configuration can name nothing else.
"""

from fastconv.layers.activated import ActivatedLayer
from fastconv.layers.activation import Activation, LeakyReLU, ReLU
from fastconv.layers.base import Layer, Weight
from fastconv.layers.conv import Conv2D
from fastconv.layers.core import Dropout, Flatten
from fastconv.layers.dense import Dense
from fastconv.layers.input import Input, InputLayer
from fastconv.layers.normalization import BatchNormalization
from fastconv.layers.pooling import (
    AveragePooling2D,
    AvgPool2D,
    GlobalAveragePooling2D,
    GlobalAvgPool2D,
    GlobalMaxPool2D,
    GlobalMaxPooling2D,
    MaxPool2D,
    MaxPooling2D,
)

Convolution2D = Conv2D

__all__ = [
    "Layer",
    "Weight",
    "ActivatedLayer",
    "Activation",
    "AveragePooling2D",
    "AvgPool2D",
    "BatchNormalization",
    "Conv2D",
    "Convolution2D",
    "Dense",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling2D",
    "GlobalAvgPool2D",
    "GlobalMaxPool2D",
    "GlobalMaxPooling2D",
    "Input",
    "InputLayer",
    "LeakyReLU",
    "MaxPool2D",
    "MaxPooling2D",
    "ReLU",
    "serialize",
    "deserialize",
]

_CLASSES = {
    cls.__name__: cls
    for cls in (
        Activation,
        AveragePooling2D,
        BatchNormalization,
        Conv2D,
        Dense,
        Dropout,
        Flatten,
        GlobalAveragePooling2D,
        GlobalMaxPooling2D,
        InputLayer,
        LeakyReLU,
        MaxPooling2D,
        ReLU,
    )
}


def serialize(layer: Layer) -> dict:
    """``{"class_name": ..., "config": ...}`` for `deserialize`."""
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize(config: dict) -> Layer:
    """A layer from `serialize`'s output; only the classes of this module are allowed."""
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        name = config.get("class_name") if isinstance(config, dict) else config
        raise ValueError(f"unknown layer class {name!r}; expected one of {sorted(_CLASSES)}")
    layer_config = config.get("config", {})
    if not isinstance(layer_config, dict):
        raise ValueError(f"a layer's config must be a dict, got {type(layer_config).__name__}")
    return _CLASSES[config["class_name"]].from_config(layer_config)
