"""Shared logic of layers that end in an activation: Dense, Conv2D, Activation.

Such a layer computes a linear part ``z = linear(x)`` and then ``y = f(z)``.
Keeping the two apart lets

- a ReLU be fused into the kernel that computes ``z`` (the pre-activation is
  then never stored; the backward pass masks with ``y > 0``), and
- a softmax or sigmoid output be skipped in the backward pass when the loss is
  a cross-entropy: the model feeds ``dL/dz = softmax(z) - onehot`` straight
  to `backward_from_logits`, which is exact and cannot overflow.
"""

from __future__ import annotations

import numpy as np

from fastconv import activations, backend
from fastconv.layers.base import Layer

__all__ = ["ActivatedLayer"]


class ActivatedLayer(Layer):
    """A layer ``y = activation(linear(x))``; subclasses implement the linear part.

    Subclasses call `_set_activation` in ``__init__``, compute ``z`` in
    ``forward`` (with ``fused_relu`` telling them to apply ReLU in the kernel),
    finish with `_activate`, and implement `_backward_linear(dz)`.
    """

    def _set_activation(self, activation) -> None:
        self.activation = activations.get(activation)
        self._z: np.ndarray | None = None
        self._y: np.ndarray | None = None

    @property
    def fused_relu(self) -> bool:
        """Whether the kernel applies the ReLU itself."""
        return self.activation is activations.relu

    @property
    def logits(self) -> np.ndarray | None:
        """The pre-activation ``z`` of the last forward pass (None when fused)."""
        return self._z

    def _activate(self, z: np.ndarray) -> np.ndarray:
        """Finish the forward pass from the kernel's output ``z``."""
        if self.fused_relu:
            self._z, self._y = None, z
        else:
            self._z, self._y = z, self.activation(z)
        return self._y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.fused_relu:
            # dy is ours to overwrite (see Layer.backward), which saves a
            # full-size temporary in every ReLU layer of every step.
            in_place = dy.dtype == self._y.dtype and dy.flags.c_contiguous and dy.flags.writeable
            dz = backend.kernels().relu_backward(dy, self._y, out=dy if in_place else None)
        else:
            dz = self.activation.gradient(dy, self._z, self._y)
        return self._backward_linear(dz)

    def backward_from_logits(self, dz: np.ndarray) -> np.ndarray:
        """Backward pass given ``dL/dz``, the gradient with respect to the
        pre-activation, bypassing the activation's derivative."""
        return self._backward_linear(dz)

    def _backward_linear(self, dz: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
