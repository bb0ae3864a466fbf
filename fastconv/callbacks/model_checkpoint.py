"""ModelCheckpoint: save the model (or its weights) after epochs."""

from __future__ import annotations

import math

from fastconv.callbacks.base import Callback
from fastconv.callbacks.monitor import Monitor

__all__ = ["ModelCheckpoint"]


class ModelCheckpoint(Callback):
    """Save after every epoch, or only when ``monitor`` improves.

    Parameters
    ----------
    filepath : str or path
        May hold ``str.format`` fields filled from ``epoch`` (counted from 1)
        and the epoch's logs, e.g. ``"ckpt-{epoch:02d}-{val_loss:.2f}.fcm"``.
    monitor : str, default "val_loss"
    verbose : int, default 0
    save_best_only : bool, default False
        Save only when the monitored quantity beats its best so far.
    save_weights_only : bool, default False
        `Sequential.save_weights` instead of `Sequential.save`.
    mode : "auto", "min" or "max"
    save_freq : "epoch"
        The only frequency supported.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch"):
        super().__init__()
        if save_freq != "epoch":
            raise ValueError(f"save_freq must be 'epoch', got {save_freq!r}")
        self.filepath = str(filepath)
        self.monitor = Monitor(monitor, mode)
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = self.monitor.value(logs, "ModelCheckpoint")
            if current is None or math.isnan(current):
                return
            if not self.monitor.improves(current):
                if self.verbose:
                    print(f"\nEpoch {epoch + 1}: {self.monitor.name} did not improve from "
                          f"{self.monitor.best:.5f}")
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor.name} improved from "
                      f"{self.monitor.best:.5f} to {current:.5f}, saving model to {path}")
            self.monitor.best = current
        elif self.verbose:
            print(f"\nEpoch {epoch + 1}: saving model to {path}")
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
