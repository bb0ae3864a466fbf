"""InputLayer and Input: declare a Sequential model's input shape up front."""

from __future__ import annotations

from fastconv.layers.base import Layer

__all__ = ["InputLayer", "Input"]


class InputLayer(Layer):
    """A placeholder that fixes the input shape; it computes nothing.

    Parameters
    ----------
    input_shape : tuple of int
        The shape of one sample, e.g. ``(28, 28, 1)``.
    batch_size : int, optional
    """

    def __init__(self, input_shape=None, batch_size=None, batch_input_shape=None, **kwargs):
        if batch_input_shape is None:
            if input_shape is None:
                raise ValueError("InputLayer needs input_shape (or batch_input_shape)")
            batch_input_shape = (batch_size, *input_shape)
        super().__init__(batch_input_shape=batch_input_shape, **kwargs)

    def forward(self, x, training=False):
        return x

    def backward(self, dy):
        return dy


def Input(shape, batch_size=None, name=None, dtype="float32") -> InputLayer:
    """Keras's ``Input(shape)`` for the first entry of a Sequential model.

    Parameters
    ----------
    shape : tuple of int
        The shape of one sample, without the batch axis.
    """
    return InputLayer(input_shape=tuple(shape), batch_size=batch_size, name=name, dtype=dtype)
