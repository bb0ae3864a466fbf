"""Weight penalties added to the loss: Keras's ``l1``, ``l2`` and ``l1_l2``."""

from __future__ import annotations

import numpy as np

__all__ = ["Regularizer", "L1L2", "L1", "L2", "l1", "l2", "l1_l2", "get", "serialize"]


class Regularizer:
    """A penalty ``l1 * sum(|w|) + l2 * sum(w**2)`` and its gradient."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        if l1 < 0 or l2 < 0:
            raise ValueError(f"l1 and l2 must not be negative, got l1={l1!r}, l2={l2!r}")
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w: np.ndarray) -> float:
        """The penalty of weights ``w`` (any shape)."""
        penalty = 0.0
        if self.l1:
            penalty += self.l1 * float(np.abs(w).sum())
        if self.l2:
            penalty += self.l2 * float(np.square(w).sum())
        return penalty

    def add_gradient(self, w: np.ndarray, grad: np.ndarray) -> None:
        """Add the penalty's gradient with respect to ``w`` to ``grad``, in place."""
        if self.l1:
            grad += self.l1 * np.sign(w)
        if self.l2:
            grad += (2 * self.l2) * w

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class L1L2(Regularizer):
    """Keras's L1L2(l1=0.0, l2=0.0)."""


class L1(Regularizer):
    """Keras's L1(l1=0.01)."""

    def __init__(self, l1: float = 0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(Regularizer):
    """Keras's L2(l2=0.01)."""

    def __init__(self, l2: float = 0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


def l1(l1: float = 0.01) -> Regularizer:
    return L1(l1)


def l2(l2: float = 0.01) -> Regularizer:
    return L2(l2)


def l1_l2(l1: float = 0.01, l2: float = 0.01) -> Regularizer:
    return L1L2(l1=l1, l2=l2)


_BY_CLASS = {"L1L2": L1L2, "L1": L1, "L2": L2}
_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": lambda: L1L2(0.01, 0.01)}


def get(identifier) -> Regularizer | None:
    """A regularizer from None, a name, a ``{"class_name", "config"}`` dict, or itself."""
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _BY_CLASS:
        return _BY_CLASS[identifier["class_name"]].from_config(identifier.get("config", {}))
    raise ValueError(f"unknown regularizer {identifier!r}; expected one of {sorted(_BY_NAME)}")


def serialize(regularizer: Regularizer | None) -> dict | None:
    if regularizer is None:
        return None
    return {"class_name": type(regularizer).__name__, "config": regularizer.get_config()}
