"""Deciding whether a monitored quantity improved: the rule EarlyStopping,
ModelCheckpoint and ReduceLROnPlateau share."""

from __future__ import annotations

import math
import warnings

__all__ = ["Monitor"]


class Monitor:
    """Tracks the best value of ``logs[name]`` seen so far.

    Parameters
    ----------
    name : str
        The log entry, e.g. "val_loss".
    mode : "auto", "min" or "max"
        "auto" maximises accuracies (names containing "acc") and minimises
        everything else, as Keras does.
    min_delta : float
        The least change that counts as an improvement.
    """

    def __init__(self, name: str, mode: str = "auto", min_delta: float = 0.0):
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"mode {mode!r} is unknown, falling back to 'auto'", stacklevel=3)
            mode = "auto"
        if mode == "auto":
            mode = "max" if "acc" in name else "min"
        self.name, self.mode, self.min_delta = name, mode, abs(float(min_delta))
        self.reset()

    def reset(self) -> None:
        self.best = -math.inf if self.mode == "max" else math.inf

    def improves(self, current: float, reference: float | None = None) -> bool:
        """Whether ``current`` beats ``reference`` (default: the best) by min_delta."""
        reference = self.best if reference is None else reference
        if self.mode == "max":
            return current - self.min_delta > reference
        return current + self.min_delta < reference

    def value(self, logs, caller: str) -> float | None:
        """``logs[name]``, or None with a warning naming the entries available."""
        value = (logs or {}).get(self.name)
        if value is None:
            warnings.warn(
                f"{caller}: monitored quantity {self.name!r} is not in the logs; "
                f"available: {sorted(logs or {})}",
                stacklevel=3,
            )
        return value
