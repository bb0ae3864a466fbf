"""Sequential: a plain stack of layers, each feeding the next."""

from __future__ import annotations

import numpy as np

from fastconv import backend
from fastconv import layers as layers_module
from fastconv.layers import BatchNormalization, Conv2D, Dropout, InputLayer, Layer
from fastconv.models.summary import print_summary
from fastconv.models.training import Model

__all__ = ["Sequential"]


class Sequential(Model):
    """Keras's Sequential model.

    Parameters
    ----------
    layers : list of Layer, optional
        Added in order with `add`. An `Input` (or `InputLayer`) first, or an
        ``input_shape=`` on the first layer, builds the model at once;
        otherwise it is built by the first `fit`, `predict` or `build`.
    name : str, optional
        Defaults to "sequential", "sequential_1", ...
    """

    def __init__(self, layers=None, name: str | None = None):
        super().__init__(name or backend.unique_name("sequential"))
        self._layers: list[Layer] = []
        self._batch_input_shape: tuple | None = None
        self.built = False
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        """The model's layers, without the input placeholder (as in Keras)."""
        return list(self._layers)

    @property
    def input_shape(self):
        return self._batch_input_shape

    @property
    def output_shape(self):
        if not self._layers:
            return self._batch_input_shape
        return self._layers[-1].output_shape

    def add(self, layer: Layer) -> None:
        """Append a layer; build it at once if the input shape is known."""
        if not isinstance(layer, Layer):
            raise TypeError(f"add expects a fastconv layer, got {layer!r}")
        if isinstance(layer, InputLayer):
            if self._layers or self._batch_input_shape is not None:
                raise ValueError("an Input can only be the first entry of a Sequential model")
            self._batch_input_shape = layer.batch_input_shape
            return
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(
                f"all layers of a Sequential model need unique names; {layer.name!r} is taken"
            )
        if not self._layers and self._batch_input_shape is None:
            self._batch_input_shape = layer.batch_input_shape
        self._layers.append(layer)
        if hasattr(layer, "rng") and getattr(layer, "seed", None) is None:
            # Unseeded random layers draw from the model's generator, whose
            # state is saved with the model.
            layer.rng = self.rng
        if self.built:
            self._build_layer(layer, self._layers[-2].output_shape if len(self._layers) > 1
                              else self._batch_input_shape)
        elif self._batch_input_shape is not None:
            self.build(self._batch_input_shape)

    def pop(self) -> None:
        """Remove the last layer."""
        if not self._layers:
            raise TypeError("there are no layers to pop")
        self._layers.pop()

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name or by position."""
        if index is not None:
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"index {index} is out of range for {len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; layers: {[lay.name for lay in self._layers]}")

    @staticmethod
    def _build_layer(layer: Layer, input_shape) -> None:
        if layer.built:
            if tuple(layer.input_shape[1:]) != tuple(input_shape[1:]):
                raise ValueError(
                    f"layer {layer.name!r} was built for inputs {layer.input_shape}, "
                    f"but receives {input_shape}"
                )
        else:
            layer.build(tuple(input_shape))

    def build(self, input_shape=None) -> None:
        """Build every layer for inputs of ``input_shape`` (batch axis first)."""
        if input_shape is None:
            input_shape = self._batch_input_shape
        if input_shape is None:
            raise ValueError(
                "the input shape is unknown: give the first layer input_shape=..., start "
                "with Input(shape), or call build((None, *shape))"
            )
        if not self._layers:
            raise ValueError("the model has no layers to build")
        shape = (None, *tuple(input_shape)[1:])
        self._batch_input_shape = shape
        for layer in self._layers:
            self._build_layer(layer, shape)
            shape = layer.output_shape
        self.built = True

    def _forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        expected = self._batch_input_shape[1:]
        if x.shape[1:] != tuple(expected) and None not in expected:
            raise ValueError(
                f"model {self.name!r} expects inputs of shape (batch, "
                f"{', '.join(map(str, expected))}), got {x.shape}"
            )
        layers, i = self._layers, 0
        while i < len(layers):
            layer, above = layers[i], layers[i + 1] if i + 1 < len(layers) else None
            if (isinstance(layer, Conv2D)
                    and layer.pools_in_one_pass(above, x.shape, training)):
                # Max pooling above a convolution runs in its kernel call, and
                # so does a Dropout above that: the convolution's output is
                # not written out, then read back (the default model's first
                # layer and pooling: 0.58 -> 0.42 ms a step).
                i += 2
                dropout = self._dropout_above(layers, i, above, training)
                mask = None if dropout is None else dropout.start_mask(x.dtype)
                x = layer.forward_pooled(x, above, training=training, dropout=mask)
                i += dropout is not None
            elif isinstance(layer, BatchNormalization) and getattr(above, "plain_relu", False):
                # The ReLU above runs in this layer's pass, and its backward
                # in this layer's backward (a Conv-BN-ReLU network of three
                # blocks of two convolutions on CIFAR-10: 8 ms of a 93 ms
                # step).
                x = layer.forward(x, training=training, relu_above=above)
                i += 2
            elif (dropout := self._dropout_above(layers, i + 1, layer, training)) is not None:
                # The Dropout above runs in this layer's pass: one pass over
                # its output fewer (the Keras example: 0.5 ms of a step).
                x = layer.forward(x, training=training, dropout=dropout.start_mask(x.dtype))
                i += 2
            else:
                x = layer.forward(x, training=training)
                i += 1
        return x

    @staticmethod
    def _dropout_above(layers, i, layer, training):
        """The Dropout layer at ``layers[i]`` if ``layer`` below it takes its
        mask in its own pass (`takes_dropout`), else None."""
        above = layers[i] if i < len(layers) else None
        if (training and isinstance(above, Dropout) and above.rate > 0
                and getattr(layer, "takes_dropout", False)):
            return above
        return None

    def summary(self, line_length=None, positions=None, print_fn=None) -> None:
        """Print Keras's table of layers, output shapes and parameter counts."""
        if not self.built:
            raise ValueError(
                "the model has not been built yet: give the first layer input_shape=..., "
                "or call build() or fit() first"
            )
        print_summary(self, line_length, positions, print_fn)

    def get_config(self) -> dict:
        config = {"name": self.name, "layers": []}
        if self._batch_input_shape is not None:
            config["layers"].append(
                layers_module.serialize(InputLayer(batch_input_shape=self._batch_input_shape,
                                                   name=f"{self.name}_input"))
            )
        config["layers"].extend(layers_module.serialize(layer) for layer in self._layers)
        return config

    @classmethod
    def from_config(cls, config: dict) -> Sequential:
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("a Sequential config must be a dict with a 'layers' list")
        name = config.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"a model name must be a string, got {name!r}")
        return cls([layers_module.deserialize(c) for c in config["layers"]], name=name)
