"""Adagrad: per-entry rates that shrink with the sum of squared gradients."""

from __future__ import annotations

import numpy as np

from fastconv import _kernels
from fastconv.optimizers.base import Optimizer, in_place_float32

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    """Keras's Adagrad::

        acc += g**2                                  (acc starts at initial_accumulator_value)
        w -= lr * g / (sqrt(acc) + epsilon)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    initial_accumulator_value : float, default 0.1
    epsilon : float, default 1e-7
    **kwargs
        `Optimizer` arguments: decay, clipnorm, clipvalue, name.
    """

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        if initial_accumulator_value < 0:
            raise ValueError(
                "initial_accumulator_value must not be negative, "
                f"got {initial_accumulator_value!r}"
            )
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = float(epsilon)

    def _initial_slot(self, name, value):
        return np.full_like(value, self.initial_accumulator_value)

    def _update(self, w, g, lr, slots, t):
        acc = slots["accumulator"]
        if g.dtype == np.float32 and in_place_float32(w, acc):
            # RMSprop's sweep in C with no decay, bitwise the NumPy formula below.
            _kernels.rmsprop_update(
                w.reshape(-1), np.ascontiguousarray(g, dtype=np.float32).reshape(-1),
                acc.reshape(-1), None, None, lr, 1.0, 1.0, 0.0, self.epsilon,
            )
            return
        acc += np.square(g)
        denom = np.sqrt(acc)
        denom += self.epsilon
        w -= lr * g / denom

    def get_config(self):
        return {
            **super().get_config(),
            "initial_accumulator_value": self.initial_accumulator_value,
            "epsilon": self.epsilon,
        }
