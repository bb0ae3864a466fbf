"""BatchNormalization: normalise by batch statistics while training, by moving
statistics at inference."""

from __future__ import annotations

import numpy as np

from fastconv import initializers, regularizers
from fastconv.layers.base import Layer

__all__ = ["BatchNormalization"]


class BatchNormalization(Layer):
    """Keras's batch normalisation over one feature axis.

    ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``, with the mean and
    (biased) variance of the batch while training and the moving averages at
    inference. Each training step updates
    ``moving = momentum * moving + (1 - momentum) * batch`` where the batch
    variance is the unbiased one, as Keras's fused kernel for images does.

    A frozen layer (``trainable = False``) always runs in inference mode and
    leaves its moving statistics alone, as in Keras 2 with TensorFlow 2.

    Parameters
    ----------
    axis : int, default -1
        The feature axis (channels of NHWC images).
    momentum : float, default 0.99
    epsilon : float, default 1e-3
    center, scale : bool, default True
        Whether to learn ``beta`` and ``gamma``.

    Weights, each of shape ``(c,)``: gamma, beta (trainable), moving_mean,
    moving_variance (non-trainable).
    """

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.axis = int(axis)
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self._cache = None

    def build(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank or self.axis % rank == 0:
            raise ValueError(f"axis {self.axis} is not a feature axis of inputs {input_shape}")
        self._axis = self.axis % rank
        c = input_shape[self._axis]
        if c is None:
            raise ValueError(f"the feature axis of {input_shape} must be known")
        self.gamma = (
            self.add_weight("gamma", (c,), self.gamma_initializer, self.gamma_regularizer)
            if self.scale
            else None
        )
        self.beta = (
            self.add_weight("beta", (c,), self.beta_initializer, self.beta_regularizer)
            if self.center
            else None
        )
        self.moving_mean = self.add_weight(
            "moving_mean", (c,), self.moving_mean_initializer, trainable=False
        )
        self.moving_variance = self.add_weight(
            "moving_variance", (c,), self.moving_variance_initializer, trainable=False
        )
        self._reduce = tuple(i for i in range(rank) if i != self._axis)
        self._bshape = tuple(c if i == self._axis else 1 for i in range(rank))
        super().build(input_shape)

    def _param(self, weight, default):
        return default if weight is None else weight.value.reshape(self._bshape)

    def forward(self, x, training=False):
        gamma = self._param(self.gamma, 1.0)
        beta = self._param(self.beta, 0.0)
        if not (training and self.trainable):
            inv = 1.0 / np.sqrt(self.moving_variance.value + self.epsilon)
            scale = gamma * inv.reshape(self._bshape)
            shift = beta - self.moving_mean.value.reshape(self._bshape) * scale
            self._cache = ("inference", scale, x, inv)
            y = x * scale
            y += shift
            return y
        m = x.size // x.shape[self._axis]
        mean = x.mean(axis=self._reduce, keepdims=True)
        xc = x - mean
        var = np.square(xc).mean(axis=self._reduce, keepdims=True)
        inv = 1.0 / np.sqrt(var + self.epsilon)
        xhat = xc
        xhat *= inv
        self._cache = ("training", xhat, inv, gamma)
        keep = self.momentum
        self.moving_mean.value *= keep
        self.moving_mean.value += (1 - keep) * mean.reshape(-1)
        self.moving_variance.value *= keep
        self.moving_variance.value += ((1 - keep) * m / max(m - 1, 1)) * var.reshape(-1)
        y = xhat * gamma
        y += beta
        return y

    def backward(self, dy):
        if self._cache[0] == "inference":
            _, scale, x, inv = self._cache
            if self.trainable:
                mean = self.moving_mean.value.reshape(self._bshape)
                self._weight_gradients(dy, (x - mean) * inv.reshape(self._bshape))
            return dy * scale
        _, xhat, inv, gamma = self._cache
        if self.trainable:
            self._weight_gradients(dy, xhat)
        # dx = inv / m * (m * g - sum(g) - xhat * sum(g * xhat)) with g = dy * gamma.
        g = dy * gamma
        mean_g = g.mean(axis=self._reduce, keepdims=True)
        mean_gx = (g * xhat).mean(axis=self._reduce, keepdims=True)
        g -= mean_g
        g -= xhat * mean_gx
        g *= inv
        return g

    def _weight_gradients(self, dy, xhat) -> None:
        if self.gamma is not None:
            self.gamma.grad = (dy * xhat).sum(axis=self._reduce)
        if self.beta is not None:
            self.beta.grad = dy.sum(axis=self._reduce)

    def get_config(self):
        config = super().get_config()
        config.update(
            axis=self.axis,
            momentum=self.momentum,
            epsilon=self.epsilon,
            center=self.center,
            scale=self.scale,
            beta_initializer=initializers.serialize(self.beta_initializer),
            gamma_initializer=initializers.serialize(self.gamma_initializer),
            moving_mean_initializer=initializers.serialize(self.moving_mean_initializer),
            moving_variance_initializer=initializers.serialize(self.moving_variance_initializer),
            beta_regularizer=regularizers.serialize(self.beta_regularizer),
            gamma_regularizer=regularizers.serialize(self.gamma_regularizer),
        )
        return config
