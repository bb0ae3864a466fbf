"""RMSprop: divide the gradient by a running root mean square of its history."""

from __future__ import annotations

import numpy as np

from fastconv import _kernels
from fastconv.optimizers.base import Optimizer, in_place_float32

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """Keras's RMSprop::

        ms = rho * ms + (1 - rho) * g**2
        mg = rho * mg + (1 - rho) * g       (centered only)
        d  = ms - mg**2 if centered else ms
        momentum == 0:  w -= lr * g / (sqrt(d) + epsilon)
        otherwise:      mom = momentum * mom + lr * g / sqrt(d + epsilon)
                        w -= mom

    (TensorFlow's kernel puts epsilon inside the square root when momentum
    is used; Keras inherits that, and so does this.)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    rho : float, default 0.9
    momentum : float, default 0
    epsilon : float, default 1e-7
    centered : bool, default False
    **kwargs
        `Optimizer` arguments: decay, clipnorm, clipvalue, name.
    """

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7,
                 centered=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= rho < 1:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.rho, self.momentum = float(rho), float(momentum)
        self.epsilon, self.centered = float(epsilon), bool(centered)
        names = ["rms"]
        if self.centered:
            names.append("mg")
        if self.momentum:
            names.append("momentum")
        self._slot_names = tuple(names)

    def _update(self, w, g, lr, slots, t):
        ms = slots["rms"]
        mg = slots["mg"] if self.centered else None
        mom = slots["momentum"] if self.momentum else None
        if g.dtype == np.float32 and in_place_float32(
                w, *(a for a in (ms, mg, mom) if a is not None)):
            # One sweep in C, bitwise the NumPy formula below.
            _kernels.rmsprop_update(
                w.reshape(-1), np.ascontiguousarray(g, dtype=np.float32).reshape(-1),
                ms.reshape(-1), None if mg is None else mg.reshape(-1),
                None if mom is None else mom.reshape(-1), lr, self.rho, 1 - self.rho,
                self.momentum, self.epsilon,
            )
            return
        ms *= self.rho
        ms += (1 - self.rho) * np.square(g)
        d = ms
        if self.centered:
            mg *= self.rho
            mg += (1 - self.rho) * g
            d = ms - np.square(mg)
        if self.momentum:
            mom *= self.momentum
            mom += lr * g / np.sqrt(d + self.epsilon)
            w -= mom
        else:
            denom = np.sqrt(d)
            denom += self.epsilon
            w -= lr * g / denom

    def get_config(self):
        return {
            **super().get_config(),
            "rho": self.rho,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "centered": self.centered,
        }
