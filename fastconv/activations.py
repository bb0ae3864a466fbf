"""Activation functions by Keras name, each with its derivative.

An activation is a callable ``f(x)`` with a ``gradient(dy, x, y)`` method
that returns ``dL/dx`` from ``dL/dy``, given both the input ``x`` and the
output ``y = f(x)``: whichever is cheaper is used (ReLU, sigmoid, tanh and
softmax need only ``y``). Everything keeps the dtype of ``x``, so layers run
in float64 for gradient checks.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Activation",
    "get",
    "serialize",
    "deserialize",
    "linear",
    "relu",
    "sigmoid",
    "tanh",
    "softmax",
    "elu",
    "selu",
    "softplus",
    "leaky_relu",
]

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class Activation:
    """An elementwise (or, for softmax, last-axis) function and its derivative.

    Subclasses implement ``__call__(x)`` and ``gradient(dy, x, y)``, both for
    arrays of any shape.
    """

    name = ""

    def __call__(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def gradient(self, dy: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``dL/dx`` given ``dL/dy``, the input ``x`` and the output ``y``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<activation {self.name}>"


class _Linear(Activation):
    name = "linear"

    def __call__(self, x):
        return x

    def gradient(self, dy, x, y):
        return dy


class _ReLU(Activation):
    name = "relu"

    def __call__(self, x):
        return np.maximum(x, 0)

    def gradient(self, dy, x, y):
        # The output's mask is the input's (y > 0 exactly where x > 0), and
        # it is what a fused conv+ReLU kernel leaves behind.
        return dy * (y > 0)


class _Sigmoid(Activation):
    name = "sigmoid"

    def __call__(self, x):
        # Written through tanh so no exp(-x) overflows for very negative x.
        return 0.5 * (np.tanh(0.5 * x) + 1)

    def gradient(self, dy, x, y):
        return dy * y * (1 - y)


class _Tanh(Activation):
    name = "tanh"

    def __call__(self, x):
        return np.tanh(x)

    def gradient(self, dy, x, y):
        return dy * (1 - y * y)


class _Softmax(Activation):
    name = "softmax"

    def __call__(self, x):
        # Subtracting the row maximum keeps exp() from overflowing.
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        e /= e.sum(axis=-1, keepdims=True)
        return e

    def gradient(self, dy, x, y):
        return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


class _ELU(Activation):
    name = "elu"

    def __call__(self, x):
        return np.where(x > 0, x, np.expm1(np.minimum(x, 0)))

    def gradient(self, dy, x, y):
        return dy * np.where(x > 0, 1, y + 1)


class _SELU(Activation):
    name = "selu"

    def __call__(self, x):
        negative = _SELU_ALPHA * np.expm1(np.minimum(x, 0))
        return _SELU_SCALE * np.where(x > 0, x, negative)

    def gradient(self, dy, x, y):
        # For x <= 0, y = scale * alpha * (e^x - 1), so dy/dx = y + scale * alpha.
        return dy * np.where(x > 0, _SELU_SCALE, y + _SELU_SCALE * _SELU_ALPHA)


class _Softplus(Activation):
    name = "softplus"

    def __call__(self, x):
        return np.logaddexp(0, x)

    def gradient(self, dy, x, y):
        return dy * (0.5 * (np.tanh(0.5 * x) + 1))


class _LeakyReLU(Activation):
    """``x`` for positive inputs, ``alpha * x`` otherwise (TensorFlow's default 0.2)."""

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.2):
        self.alpha = float(alpha)

    def __call__(self, x):
        return np.where(x > 0, x, x * self.alpha)

    def gradient(self, dy, x, y):
        return np.where(x > 0, dy, dy * self.alpha)


linear = _Linear()
relu = _ReLU()
sigmoid = _Sigmoid()
tanh = _Tanh()
softmax = _Softmax()
elu = _ELU()
selu = _SELU()
softplus = _Softplus()
leaky_relu = _LeakyReLU()

_BY_NAME = {
    f.name: f for f in (linear, relu, sigmoid, tanh, softmax, elu, selu, softplus, leaky_relu)
}


def get(identifier) -> Activation:
    """The activation for a Keras name, an `Activation`, or None (linear)."""
    if identifier is None:
        return linear
    if isinstance(identifier, Activation):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]
    raise ValueError(
        f"unknown activation {identifier!r}; expected one of {sorted(_BY_NAME)} or None"
    )


def serialize(activation: Activation) -> str:
    """The name that `get` maps back to ``activation``."""
    return activation.name


deserialize = get
