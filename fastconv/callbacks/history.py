"""History: every epoch's logs, which `fit` returns."""

from __future__ import annotations

from fastconv.callbacks.base import Callback

__all__ = ["History"]


class History(Callback):
    """Records the logs of each epoch.

    Attributes
    ----------
    history : dict of str to list
        ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``.
    epoch : list of int
        The epochs run, counted from 0.
    """

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
