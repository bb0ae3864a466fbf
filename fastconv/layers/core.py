"""Layers without weights that reshape or mask: Flatten and Dropout."""

from __future__ import annotations

import math

import numpy as np

from fastconv import _random, backend
from fastconv.layers.base import Layer

__all__ = ["Flatten", "Dropout"]


class Flatten(Layer):
    """``(n, d1, d2, ...)`` to ``(n, d1 * d2 * ...)``, as a view (no copy).

    NHWC order is kept, so a Dense layer after it sees the same feature order
    as in Keras and weights move between the two unchanged.
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"data_format must be None or 'channels_last', got {data_format!r}")
        self._x_shape = None

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(s is None for s in rest) else math.prod(rest)
        return (input_shape[0], size)

    def forward(self, x, training=False):
        self._x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy):
        return dy.reshape(self._x_shape)


class Dropout(Layer):
    """Zero each input with probability ``rate`` while training; scale the rest
    by ``1 / (1 - rate)`` so inference needs no rescaling (inverted dropout).

    Parameters
    ----------
    rate : float in [0, 1)
    seed : int, optional
        Gives the layer its own generator. Without it the layer draws from its
        model's generator, which `fastconv.utils.set_random_seed` seeds.
    """

    def __init__(self, rate: float, noise_shape=None, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        if noise_shape is not None:
            raise ValueError("noise_shape is not supported; pass None")
        self.rate = float(rate)
        self.seed = seed
        # Without a seed, a model hands the layer its own generator (see
        # Sequential.compile); alone, the layer draws from the global one.
        self.rng = None if seed is None else np.random.default_rng(seed)
        self._mask_seed: int | None = None
        self._dtype = None

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self._mask_seed = None
            return x
        # One draw per call picks the mask (a function of this seed and the
        # element index: see fastconv._random); the backward pass applies the
        # same mask from the same seed instead of storing it.
        self._mask_seed = int((self.rng or _random.generator()).integers(0, 2**63))
        y = backend.kernels().dropout(x, self.rate, self._mask_seed)
        self._dtype = y.dtype
        return y

    def start_mask(self, dtype=np.float32) -> tuple[float, int]:
        """Draw this training step's mask (as `forward` would) for a layer
        below that applies it in its own pass; returns its (rate, seed)."""
        self._mask_seed = int((self.rng or _random.generator()).integers(0, 2**63))
        self._dtype = np.dtype(dtype)
        return self.rate, self._mask_seed

    def mask(self) -> tuple[float, int] | None:
        """(rate, seed) of the mask of the last training forward, or None."""
        return None if self._mask_seed is None else (self.rate, self._mask_seed)

    def backward(self, dy):
        if self._mask_seed is None:
            return dy
        # dy is ours to overwrite (see Layer.backward).
        in_place = dy.dtype == self._dtype and dy.flags.c_contiguous and dy.flags.writeable
        return backend.kernels().dropout(dy, self.rate, self._mask_seed, out=dy if in_place else None)

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
