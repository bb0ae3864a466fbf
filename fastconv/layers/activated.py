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

    @property
    def _negative_slope(self) -> float | None:
        """The slope of a ReLU or leaky ReLU activation (run on the leaky ReLU
        kernels, both ways from the output), None for any other."""
        if self.activation is activations.relu:
            return 0.0
        if self.activation is activations.leaky_relu:
            return self.activation.alpha
        return None

    def _activate(self, z: np.ndarray) -> np.ndarray:
        """Finish the forward pass from the kernel's output ``z``."""
        if self.fused_relu:
            self._z, self._y = None, z
        elif self._negative_slope is not None:  # no z to keep: the gradient reads y
            self._z, self._y = None, backend.kernels().leaky_relu(z, self._negative_slope)
        else:
            self._z, self._y = z, self.activation(z)
        return self._y

    # Whether `backward_through_relu` and `backward_from_logits(dz,
    # relu_input=True)` can take the gradient on through a ReLU whose output
    # is this layer's input (Conv2D's can, in the pass that writes it).
    takes_relu_backward = False

    def _activation_backward(self, dy: np.ndarray) -> np.ndarray:
        """``dL/dz`` from ``dL/dy``."""
        slope = self._negative_slope
        if slope is not None:  # fused or not, from the output
            # dy is ours to overwrite (see Layer.backward), which saves a
            # full-size temporary in every ReLU layer of every step.
            in_place = dy.dtype == self._y.dtype and dy.flags.c_contiguous and dy.flags.writeable
            return backend.kernels().leaky_relu_backward(
                dy, self._y, slope, out=dy if in_place else None
            )
        return self.activation.gradient(dy, self._z, self._y)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward_linear(self._activation_backward(dy))

    def backward_from_logits(self, dz: np.ndarray, relu_input: bool = False) -> np.ndarray:
        """Backward pass given ``dL/dz``, the gradient with respect to the
        pre-activation, bypassing the activation's derivative. With
        ``relu_input`` (where `takes_relu_backward`), this layer's input is a
        ReLU's output and the result the gradient of that ReLU's input."""
        if relu_input:
            return self._backward_linear(dz, relu_input=True)
        return self._backward_linear(dz)

    def backward_through_relu(self, dy: np.ndarray) -> np.ndarray:
        """`backward`, taken on through the ReLU whose output this layer's
        input is (where `takes_relu_backward`)."""
        return self.backward_from_logits(self._activation_backward(dy), relu_input=True)

    def _backward_linear(self, dz: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
