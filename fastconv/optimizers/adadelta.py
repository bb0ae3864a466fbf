"""Adadelta (Zeiler): steps scaled by the ratio of running RMS of updates and gradients."""

from __future__ import annotations

import numpy as np

from fastconv import _kernels
from fastconv.optimizers.base import Optimizer, in_place_float32

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    """Adadelta with the paper's rate of 1.0 by default, as Keras-2-era code expects::

        acc = rho * acc + (1 - rho) * g**2
        u = g * sqrt(acc_u + epsilon) / sqrt(acc + epsilon)
        acc_u = rho * acc_u + (1 - rho) * u**2
        w -= lr * u

    Parameters
    ----------
    learning_rate : float or schedule, default 1.0
    rho : float, default 0.95
    epsilon : float, default 1e-6
    **kwargs
        `Optimizer` arguments: decay, clipnorm, clipvalue, name.
    """

    _slot_names = ("accumulator", "delta_accumulator")

    def __init__(self, learning_rate=1.0, rho=0.95, epsilon=1e-6, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= rho < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.rho, self.epsilon = float(rho), float(epsilon)

    def _update(self, w, g, lr, slots, t):
        acc, acc_u = slots["accumulator"], slots["delta_accumulator"]
        if g.dtype == np.float32 and in_place_float32(w, acc, acc_u):
            # One sweep in C, bitwise the NumPy formula below.
            _kernels.adadelta_update(
                w.reshape(-1), np.ascontiguousarray(g, dtype=np.float32).reshape(-1),
                acc.reshape(-1), acc_u.reshape(-1), lr, self.rho, self.epsilon,
            )
            return
        acc *= self.rho
        acc += (1 - self.rho) * np.square(g)
        u = g * np.sqrt(acc_u + self.epsilon) / np.sqrt(acc + self.epsilon)
        acc_u *= self.rho
        acc_u += (1 - self.rho) * np.square(u)
        w -= lr * u

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
