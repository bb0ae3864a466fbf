"""Adam (Kingma and Ba), with the AMSGrad variant."""

from __future__ import annotations

import math

import numpy as np

from fastconv import _kernels
from fastconv.optimizers.base import Optimizer, in_place_float32

__all__ = ["Adam"]


class Adam(Optimizer):
    """Keras's Adam, with the bias correction folded into the rate::

        m = beta_1 * m + (1 - beta_1) * g
        v = beta_2 * v + (1 - beta_2) * g**2
        lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)     (t = iterations + 1)
        w -= lr_t * m / (sqrt(v) + epsilon)

    With ``amsgrad``, ``vhat = max(vhat, v)`` replaces ``v`` in the last line.

    Parameters
    ----------
    learning_rate : float or schedule, default 0.001
    beta_1 : float, default 0.9
    beta_2 : float, default 0.999
    epsilon : float, default 1e-7
    amsgrad : bool, default False
    **kwargs
        `Optimizer` arguments: decay, clipnorm, clipvalue, name.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        for arg, value in (("beta_1", beta_1), ("beta_2", beta_2)):
            if not 0 <= value < 1:
                raise ValueError(f"{arg} must be in [0, 1), got {value!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon!r}")
        self.beta_1, self.beta_2 = float(beta_1), float(beta_2)
        self.epsilon, self.amsgrad = float(epsilon), bool(amsgrad)
        self._slot_names = ("m", "v", "vhat") if self.amsgrad else ("m", "v")

    def _update(self, w, g, lr, slots, t):
        m, v = slots["m"], slots["v"]
        lr_t = lr * math.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        arrays = (w, m, v, slots["vhat"]) if self.amsgrad else (w, m, v)
        if g.dtype == np.float32 and in_place_float32(*arrays):
            # One sweep in C, bitwise the NumPy formula below.
            _kernels.adam_update(
                w.reshape(-1), np.ascontiguousarray(g, dtype=np.float32).reshape(-1),
                m.reshape(-1), v.reshape(-1),
                slots["vhat"].reshape(-1) if self.amsgrad else None,
                lr_t, self.beta_1, self.beta_2, self.epsilon,
            )
            return
        m *= self.beta_1
        m += (1 - self.beta_1) * g
        v *= self.beta_2
        v += (1 - self.beta_2) * np.square(g)
        if self.amsgrad:
            np.maximum(slots["vhat"], v, out=slots["vhat"])
            v = slots["vhat"]
        denom = np.sqrt(v)
        denom += self.epsilon
        w -= lr_t * m / denom

    def get_config(self):
        return {
            **super().get_config(),
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
            "amsgrad": self.amsgrad,
        }
