"""Dense: the fully connected layer, ``y = activation(x @ kernel + bias)``."""

from __future__ import annotations

import numpy as np

from fastconv import backend, initializers, regularizers
from fastconv.layers.activated import ActivatedLayer

__all__ = ["Dense"]


class Dense(ActivatedLayer):
    """Fully connected layer on fastconv's GEMM, with bias and ReLU fused.

    Parameters
    ----------
    units : int
        Output size ``n``.
    activation : str or None
        A name from `fastconv.activations`; "relu" runs inside the kernel.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str or Initializer
    kernel_regularizer, bias_regularizer : Regularizer, optional
    **kwargs
        `Layer` arguments (name, trainable, input_shape, ...).

    Input ``(batch, ..., k)``, output ``(batch, ..., units)``; kernel
    ``(k, units)``, bias ``(units,)``. Inputs of more than two axes are
    multiplied along their last axis, as in Keras.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, (int, np.integer)) or units < 1:
            raise ValueError(f"units must be a positive int, got {units!r}")
        self.units = int(units)
        self._set_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self._x2: np.ndarray | None = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Dense needs inputs of shape (batch, ..., k) with k known, got {input_shape}"
            )
        k = int(input_shape[-1])
        self.kernel = self.add_weight(
            "kernel", (k, self.units), self.kernel_initializer, self.kernel_regularizer
        )
        self.bias = (
            self.add_weight("bias", (self.units,), self.bias_initializer, self.bias_regularizer)
            if self.use_bias
            else None
        )
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def forward(self, x, training=False):
        self._x2 = x.reshape(-1, x.shape[-1])
        z = backend.kernels().dense(
            self._x2,
            self.kernel.value,
            None if self.bias is None else self.bias.value,
            activation="relu" if self.fused_relu else None,
        )
        return self._activate(z.reshape(*x.shape[:-1], self.units))

    def _backward_linear(self, dz):
        ops = backend.kernels()
        dz2 = dz.reshape(-1, self.units)
        if self.trainable:
            self.kernel.grad = ops.matmul(self._x2.T, dz2)
            if self.bias is not None:
                self.bias.grad = dz2.sum(axis=0)
        if not self.input_grad_needed:
            return None
        dx = ops.matmul(dz2, self.kernel.value.T)
        return dx.reshape(*dz.shape[:-1], self.kernel.shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            use_bias=self.use_bias,
            kernel_initializer=initializers.serialize(self.kernel_initializer),
            bias_initializer=initializers.serialize(self.bias_initializer),
            kernel_regularizer=regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=regularizers.serialize(self.bias_regularizer),
        )
        return config
