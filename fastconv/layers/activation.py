"""Layers that only apply an activation: Activation, ReLU and LeakyReLU."""

from __future__ import annotations

import numpy as np

from fastconv.layers.activated import ActivatedLayer
from fastconv.layers.base import Layer

__all__ = ["Activation", "ReLU", "LeakyReLU"]


class Activation(ActivatedLayer):
    """``y = activation(x)`` for a name from `fastconv.activations`.

    A softmax Activation at the end of a model fuses with a cross-entropy loss
    like a softmax Dense layer does.
    """

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self._set_activation(activation)

    @property
    def fused_relu(self) -> bool:
        # No kernel to fuse into; ReLU runs as a plain activation here.
        return False

    def forward(self, x, training=False):
        return self._activate(x)

    def _backward_linear(self, dz):
        return dz


class ReLU(Layer):
    """Keras's ReLU layer: ``x`` above ``threshold`` (capped at ``max_value``),
    ``negative_slope * (x - threshold)`` below it."""

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"max_value must not be negative, got {max_value!r}")
        if negative_slope < 0:
            raise ValueError(f"negative_slope must not be negative, got {negative_slope!r}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope = float(negative_slope)
        self.threshold = float(threshold)
        self._x = None

    def forward(self, x, training=False):
        self._x = x
        y = np.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            np.minimum(y, self.max_value, out=y)
        return y.astype(x.dtype, copy=False)

    def backward(self, dy):
        x = self._x
        slope = np.where(x >= self.threshold, 1.0, self.negative_slope).astype(dy.dtype)
        if self.max_value is not None:
            slope[x >= self.max_value] = 0
        return dy * slope

    def get_config(self):
        config = super().get_config()
        config.update(
            max_value=self.max_value, negative_slope=self.negative_slope, threshold=self.threshold
        )
        return config


class LeakyReLU(ReLU):
    """``x`` for positive inputs, ``alpha * x`` otherwise (Keras's default alpha 0.3)."""

    def __init__(self, alpha: float = 0.3, **kwargs):
        super().__init__(negative_slope=alpha, **kwargs)
        self.alpha = float(alpha)

    def get_config(self):
        config = Layer.get_config(self)
        config["alpha"] = self.alpha
        return config
