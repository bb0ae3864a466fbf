"""The optimizer base class: learning rate, decay, clipping, per-weight state."""

from __future__ import annotations

import math

import numpy as np

from fastconv.optimizers import schedules

__all__ = ["Optimizer"]


def in_place_float32(*arrays: np.ndarray) -> bool:
    """Whether each array is float32, C-contiguous and writeable: an update
    the C kernels can make in one sweep (adam.c, adadelta.c, rmsprop.c, sgd.c)."""
    return all(a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
               for a in arrays)


class Optimizer:
    """Base class of the optimizers, with Keras 2's shared arguments.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        A schedule is called with `iterations` before each update.
    decay : float, default 0
        Keras 2's time decay: the rate used is
        ``learning_rate / (1 + decay * iterations)``.
    clipnorm : float, optional
        Each gradient is rescaled so that its L2 norm is at most this.
    clipvalue : float, optional
        Each gradient entry is clipped into ``[-clipvalue, clipvalue]``.
    name : str, optional

    Attributes
    ----------
    iterations : int
        Number of updates applied so far.

    Subclasses name their per-weight state in ``_slot_names`` (with
    `_initial_slot` for a start other than zeros) and implement
    ``_update(w, g, lr, slots, t)``, which changes ``w`` in place.
    """

    _slot_names: tuple[str, ...] = ()

    def __init__(
        self,
        learning_rate=0.01,
        decay: float = 0.0,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        name: str | None = None,
        lr: float | None = None,
    ):
        # ``lr`` is the Keras 2.0 spelling still found in much example code.
        self.learning_rate = learning_rate if lr is None else lr
        if decay < 0:
            raise ValueError(f"decay must not be negative, got {decay!r}")
        for arg, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue)):
            if value is not None and not value > 0:
                raise ValueError(f"{arg} must be positive, got {value!r}")
        self.decay = float(decay)
        self.clipnorm = None if clipnorm is None else float(clipnorm)
        self.clipvalue = None if clipvalue is None else float(clipvalue)
        self.name = name or type(self).__name__
        self.iterations = 0
        self._slots: dict[str, dict[str, np.ndarray]] = {}

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not isinstance(value, schedules.LearningRateSchedule):
            value = float(value)
            if not value >= 0 or math.isinf(value):
                raise ValueError(
                    f"learning_rate must be a finite non-negative number, got {value}"
                )
        self._learning_rate = value

    lr = learning_rate

    def current_learning_rate(self) -> float:
        """The rate the next update will use, after schedule and decay."""
        lr = self._learning_rate
        if isinstance(lr, schedules.LearningRateSchedule):
            lr = float(lr(self.iterations))
        if self.decay:
            lr /= 1.0 + self.decay * self.iterations
        return lr

    # ---- state ----------------------------------------------------------

    def _initial_slot(self, name: str, value: np.ndarray) -> np.ndarray:
        return np.zeros_like(value)

    def build(self, weights) -> None:
        """Create the state of every weight that has none yet (lazily, once)."""
        for weight in weights:
            if weight.path not in self._slots:
                self._slots[weight.path] = {
                    name: self._initial_slot(name, weight.value) for name in self._slot_names
                }

    def get_slots(self) -> dict[str, dict[str, np.ndarray]]:
        """The per-weight state, ``{weight path: {slot name: array}}`` (not copied)."""
        return self._slots

    def set_slots(self, slots: dict[str, dict[str, np.ndarray]]) -> None:
        """Replace the per-weight state, as read back from a saved model."""
        for path, named in slots.items():
            if set(named) != set(self._slot_names):
                raise ValueError(
                    f"{self.name} keeps slots {sorted(self._slot_names)} per weight, "
                    f"got {sorted(named)} for {path!r}"
                )
        self._slots = {path: dict(named) for path, named in slots.items()}

    # ---- updates --------------------------------------------------------

    def _clip(self, g: np.ndarray) -> np.ndarray:
        if self.clipnorm is not None:
            norm = math.sqrt(float(np.dot(g.ravel(), g.ravel())))
            if norm > self.clipnorm:
                g = g * (self.clipnorm / norm)
        if self.clipvalue is not None:
            g = np.clip(g, -self.clipvalue, self.clipvalue)
        return g

    def apply_gradients(self, grads_and_weights) -> None:
        """One update of every weight from its gradient; ``iterations`` += 1.

        Parameters
        ----------
        grads_and_weights : iterable of (ndarray, Weight)
            Each gradient has its weight's shape.
        """
        pairs = list(grads_and_weights)
        self.build([w for _, w in pairs])
        lr = self.current_learning_rate()
        t = self.iterations + 1
        for g, weight in pairs:
            if g.shape != weight.shape:
                raise ValueError(
                    f"gradient of {weight.path} has shape {g.shape}, expected {weight.shape}"
                )
            self._update(weight.value, self._clip(g), lr, self._slots[weight.path], t)
        self.iterations = t

    def _update(self, w, g, lr, slots, t) -> None:
        raise NotImplementedError

    # ---- configuration --------------------------------------------------

    def get_config(self) -> dict:
        lr = self._learning_rate
        return {
            "name": self.name,
            "learning_rate": schedules.serialize(lr)
            if isinstance(lr, schedules.LearningRateSchedule)
            else lr,
            "decay": self.decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
        }

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules.deserialize(config["learning_rate"])
        return cls(**config)
