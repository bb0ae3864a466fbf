"""LearningRateScheduler: set the learning rate at the start of each epoch."""

from __future__ import annotations

import inspect

from fastconv.callbacks.base import Callback
from fastconv.optimizers.schedules import LearningRateSchedule

__all__ = ["LearningRateScheduler", "set_learning_rate"]


def set_learning_rate(optimizer, value: float, caller: str) -> None:
    """Replace a float learning rate; refuse to overwrite a schedule, as Keras does."""
    if isinstance(optimizer.learning_rate, LearningRateSchedule):
        raise ValueError(
            f"{caller} cannot change the learning rate of an optimizer that follows a "
            f"schedule ({type(optimizer.learning_rate).__name__}); give it a float rate"
        )
    optimizer.learning_rate = value


class LearningRateScheduler(Callback):
    """At each epoch's start, set the rate to ``schedule(epoch, lr)``.

    Parameters
    ----------
    schedule : callable
        ``schedule(epoch, lr) -> new_lr`` with ``epoch`` counted from 0 (a
        one-argument ``schedule(epoch)`` works too).
    verbose : int, default 0
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose
        try:
            self._two_args = len(inspect.signature(schedule).parameters) >= 2
        except (TypeError, ValueError):
            self._two_args = True

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        set_learning_rate(optimizer, optimizer.learning_rate, "LearningRateScheduler")
        lr = optimizer.learning_rate
        new_lr = float(self.schedule(epoch, lr) if self._two_args else self.schedule(epoch))
        set_learning_rate(optimizer, new_lr, "LearningRateScheduler")
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new_lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = float(self.model.optimizer.learning_rate)
