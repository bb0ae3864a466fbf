"""Layers that only apply an activation: Activation, ReLU and LeakyReLU."""

from __future__ import annotations

import numpy as np

from fastconv import activations, backend
from fastconv._relu import leaky_relu_arguments
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

    @property
    def plain_relu(self) -> bool:
        """Whether this is max(x, 0), which a BatchNormalization below runs in
        its own pass (see `adopt_output`)."""
        return self.activation is activations.relu

    def adopt_output(self, y):
        """Keep ``y``, this layer's output computed by the layer below, as
        `forward` would have."""
        self._z, self._y = None, y

    def forward(self, x, training=False):
        return self._activate(x)

    def _backward_linear(self, dz):
        return dz


class ReLU(Layer):
    """Keras's ReLU layer: ``x`` above ``threshold`` (capped at ``max_value``),
    ``negative_slope * (x - threshold)`` below it.

    With the threshold at 0 (the usual ReLU, ReLU6 and leaky ReLU) both passes
    run on the leaky ReLU kernels (`fastconv.ops.leaky_relu`), the gradient
    taken from the output: its slope at 0 is ``negative_slope``, as
    TensorFlow's and PyTorch's.
    """

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope, cap = leaky_relu_arguments(negative_slope, max_value)
        self.max_value = None if max_value is None else cap
        self.threshold = float(threshold)
        self._x = self._y = None

    @property
    def plain_relu(self) -> bool:
        """Whether this is max(x, 0), which a BatchNormalization below runs in
        its own pass (see `adopt_output`)."""
        return self.max_value is None and self.negative_slope == 0.0 and self.threshold == 0.0

    def adopt_output(self, y):
        """Keep ``y``, this layer's output computed by the layer below, as
        `forward` would have."""
        self._x, self._y = None, y

    def forward(self, x, training=False):
        self._x = self._y = None
        if self.threshold == 0.0:  # the leaky ReLU kernel; the gradient is taken from y
            self._y = backend.kernels().leaky_relu(
                x, self.negative_slope, max_value=self.max_value
            )
            return self._y
        self._x = x
        y = np.where(x >= self.threshold, x, self.negative_slope * (x - self.threshold))
        if self.max_value is not None:
            np.minimum(y, self.max_value, out=y)
        return y.astype(x.dtype, copy=False)

    def backward(self, dy):
        if self._y is not None:  # in place where dy allows
            in_place = dy.dtype == self._y.dtype and dy.flags.c_contiguous and dy.flags.writeable
            return backend.kernels().leaky_relu_backward(
                dy, self._y, self.negative_slope, max_value=self.max_value,
                out=dy if in_place else None,
            )
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
