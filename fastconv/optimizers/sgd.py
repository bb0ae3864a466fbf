"""Stochastic gradient descent with optional (Nesterov) momentum."""

from __future__ import annotations

from fastconv.optimizers.base import Optimizer

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
        if not self.momentum:
            w -= lr * g
            return
        v = slots["momentum"]
        v *= self.momentum
        v -= lr * g
        if self.nesterov:
            w += self.momentum * v - lr * g
        else:
            w += v

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
