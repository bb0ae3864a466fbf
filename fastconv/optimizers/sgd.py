"""Stochastic gradient descent with optional (Nesterov) momentum."""

from __future__ import annotations

import numpy as np

from fastconv import _kernels
from fastconv.optimizers.base import Optimizer, in_place_float32

__all__ = ["SGD"]


class SGD(Optimizer):
    """Keras's SGD.

    Update rule, with velocity ``v`` starting at zero::

        momentum == 0:  w -= lr * g
        otherwise:      v = momentum * v - lr * g
                        w += v                       (nesterov=False)
                        w += momentum * v - lr * g   (nesterov=True)

    Parameters
    ----------
    learning_rate : float or schedule, default 0.01
    momentum : float, default 0
    nesterov : bool, default False
    **kwargs
        `Optimizer` arguments: decay, clipnorm, clipvalue, name.
    """

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self._slot_names = ("momentum",) if self.momentum else ()

    def _update(self, w, g, lr, slots, t):
        v = slots.get("momentum")
        arrays = (w,) if v is None else (w, v)
        if g.dtype == np.float32 and in_place_float32(*arrays):
            # One sweep in C, bitwise the NumPy formula below.
            _kernels.sgd_update(
                w.reshape(-1), np.ascontiguousarray(g, dtype=np.float32).reshape(-1),
                None if v is None else v.reshape(-1), lr, self.momentum, self.nesterov,
            )
            return
        if v is None:
            w -= lr * g
            return
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            w += self.momentum * v - lr * g
        else:
            w += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
