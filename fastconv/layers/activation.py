"""Layers that only apply an activation: Activation, ReLU and LeakyReLU."""

from __future__ import annotations

import numpy as np

from fastconv import backend
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
        self._x = self._y = self._slope = None

    @property
    def _plain(self) -> bool:
        """Whether this is max(x, 0), which runs as Activation("relu") does."""
        return self.max_value is None and self.negative_slope == 0.0 and self.threshold == 0.0

    def forward(self, x, training=False):
        self._x = self._y = self._slope = None
        if self._plain:  # the gradient is taken from the output
            self._y = np.maximum(x, x.dtype.type(0))
            return self._y
        if self.threshold == 0.0:
            # Each element's slope, 1 or negative_slope, looked up from x >= 0
            # (a NaN takes negative_slope): y = x * slope is the same bits as
            # np.where, which over a random mask ran at a tenth of the speed,
            # and the slope is the backward pass's too.
            at_or_above = (x >= 0).view(np.uint8)
            slope = np.array([self.negative_slope, 1.0], x.dtype).take(at_or_above)
            y = x * slope
            if self.max_value is not None:
                np.minimum(y, x.dtype.type(self.max_value), out=y)
                slope *= ~(x >= self.max_value)
            self._slope = slope
            return y
        self._x = x
        y = np.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            np.minimum(y, self.max_value, out=y)
        return y.astype(x.dtype, copy=False)

    def backward(self, dy):
        if self._plain:  # dy where the output is positive, in place where dy allows
            in_place = dy.dtype == self._y.dtype and dy.flags.c_contiguous and dy.flags.writeable
            return backend.kernels().relu_backward(dy, self._y, out=dy if in_place else None)
        if self._slope is not None:
            return dy * self._slope
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
