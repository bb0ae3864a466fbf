"""BatchNormalization: normalise by batch statistics while training, by moving
statistics at inference."""

from __future__ import annotations

import numpy as np

from fastconv import backend, initializers, regularizers
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
        self.relu_by = None  # the ReLU layer above whose pass ran in this layer's

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
        super().build(input_shape)

    def _channels_last(self, a):
        """``a`` with the feature axis last (a view; the kernels copy it when
        that makes it non-contiguous)."""
        return a if self._axis == a.ndim - 1 else np.moveaxis(a, self._axis, -1)

    def _restored(self, a):
        return a if self._axis == a.ndim - 1 else np.moveaxis(a, -1, self._axis)

    def forward(self, x, training=False, relu_above=None):
        """With ``relu_above``, the plain ReLU layer above (``plain_relu``),
        its max(y, 0) runs in this layer's pass, and it is handed the output
        (`adopt_output`); `backward` then takes the gradient of that output."""
        kernels = backend.kernels()
        x = self._channels_last(x)
        c = x.shape[-1]
        gamma = np.ones(c, x.dtype) if self.gamma is None else self.gamma.value
        beta = np.zeros(c, x.dtype) if self.beta is None else self.beta.value
        relu_beta = None if relu_above is None else beta
        if not (training and self.trainable):
            mean = self.moving_mean.value
            inv = 1.0 / np.sqrt(self.moving_variance.value + self.epsilon)
            self._cache = ("inference", x, mean, inv, gamma, relu_beta)
        else:
            mean, var = kernels.batch_norm_statistics(x)
            inv = 1.0 / np.sqrt(var + self.epsilon)
            self._cache = ("training", x, mean, inv, gamma, relu_beta)
            m = x.size // c
            keep = self.momentum
            self.moving_mean.value *= keep
            self.moving_mean.value += (1 - keep) * mean
            self.moving_variance.value *= keep
            self.moving_variance.value += ((1 - keep) * m / max(m - 1, 1)) * var
        y = self._restored(kernels.batch_norm(x, mean, inv, gamma, beta,
                                              relu=relu_above is not None))
        self.relu_by = relu_above
        if relu_above is not None:
            relu_above.adopt_output(y)
        return y

    def backward(self, dy):
        """``dL/dx`` from ``dy``, the gradient of this layer's output, or, when
        the ReLU above ran in its pass (`relu_by`), of that ReLU's output (a
        gradient already taken through the ReLU passes through unchanged)."""
        mode, x, mean, inv, gamma, relu_beta = self._cache
        kernels = backend.kernels()
        dy = self._channels_last(dy)
        if mode == "training":  # the statistics depend on x too (and the layer is trainable)
            in_place = dy.dtype == x.dtype and dy.flags.c_contiguous and dy.flags.writeable
            dx, dgamma, dbeta = kernels.batch_norm_backward(dy, x, mean, inv, gamma,
                                                            relu_beta=relu_beta,
                                                            out=dy if in_place else None)
        else:  # fixed statistics: a per-channel affine map
            if relu_beta is not None:  # through the ReLU first, its output recomputed
                dy = kernels.relu_backward(
                    dy, kernels.batch_norm(x, mean, inv, gamma, relu_beta, relu=True)
                )
            dx = dy * (gamma * inv)
            if not self.trainable:  # frozen: no weight gradients to take
                return self._restored(dx)
            c = x.shape[-1]
            dy2 = dy.reshape(-1, c)
            dgamma = (dy2 * ((x.reshape(-1, c) - mean) * inv)).sum(axis=0)
            dbeta = dy2.sum(axis=0)
        if self.gamma is not None:
            self.gamma.grad = dgamma
        if self.beta is not None:
            self.beta.grad = dbeta
        return self._restored(dx)

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
