"""Keras's progress display: a per-batch bar with ETA, or one line per epoch."""

from __future__ import annotations

import math
import sys
import time

from fastconv.callbacks.base import Callback

__all__ = ["Progbar", "ProgbarLogger"]


def _format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) > 1e-3 or value == 0 else f"{value:.4e}"
    return str(value)


def _format_eta(seconds: float) -> str:
    seconds = int(seconds)
    if seconds > 3600:
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    if seconds > 60:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds}s"


def _format_rate(seconds: float, unit: str) -> str:
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


class Progbar:
    """A progress bar for ``target`` steps, written to standard output.

    Parameters
    ----------
    target : int
        Total number of steps.
    width : int, default 30
    verbose : 1 or 2
        1 redraws a bar in place (at most every ``interval`` seconds); 2
        writes one line when the target is reached.
    interval : float, default 0.05
    unit_name : str, default "step"

    When standard output is neither a terminal nor a notebook, the bar is
    written once, finished, instead of being redrawn with carriage returns
    that would litter a log file.
    """

    def __init__(self, target: int, width: int = 30, verbose: int = 1, interval: float = 0.05,
                 unit_name: str = "step"):
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._drawn_width = 0

    def update(self, current: int, values=None, finalize: bool | None = None) -> None:
        """Show progress ``current`` with ``values``, a list of (name, value)."""
        if finalize is None:
            finalize = current >= self.target
        now = time.perf_counter()
        elapsed = now - self._start
        info = "".join(f" - {name}: {_format_value(value)}" for name, value in values or [])
        digits = int(math.log10(max(self.target, 1))) + 1
        counter = f"{current:{digits}d}/{self.target}"
        out = sys.stdout
        if self.verbose == 1:
            dynamic = getattr(out, "isatty", lambda: False)() or "ipykernel" in sys.modules
            if not finalize and (not dynamic or now - self._last_draw < self.interval):
                return
            self._last_draw = now
            done = int(self.width * current / self.target) if self.target else self.width
            bar = "=" * max(done - 1, 0)
            if done > 0:
                bar += ">" if current < self.target else "="
            bar = f"{counter} [{bar}{'.' * (self.width - len(bar))}]"
            if finalize:
                per_step = elapsed / max(current, 1)
                line = f"{bar} - {elapsed:.0f}s {_format_rate(per_step, self.unit_name)}{info}"
            else:
                eta = elapsed / max(current, 1) * (self.target - current)
                line = f"{bar} - ETA: {_format_eta(eta)}{info}"
            # Pad with spaces so a shorter line fully covers the previous one.
            padding = " " * max(self._drawn_width - len(line), 0)
            self._drawn_width = len(line)
            out.write((f"\r{line}{padding}" if dynamic else line) + ("\n" if finalize else ""))
            out.flush()
        elif self.verbose == 2 and finalize:
            per_step = elapsed / max(current, 1)
            out.write(
                f"{counter} - {elapsed:.0f}s{info} - {_format_rate(elapsed, 'epoch')}"
                f" - {_format_rate(per_step, self.unit_name)}\n"
            )
            out.flush()


class ProgbarLogger(Callback):
    """Shows training progress: ``verbose=1`` a bar per epoch redrawn every batch
    with ETA, loss and metrics; ``verbose=2`` one line per epoch. `fit`,
    `evaluate` and `predict` add one when their ``verbose`` is not 0."""

    def __init__(self):
        super().__init__()
        self._bar: Progbar | None = None
        self._seen = 0

    def _start(self):
        self._bar = Progbar(self.params.get("steps") or 0, verbose=self.params.get("verbose", 1))
        self._seen = 0

    def on_epoch_begin(self, epoch, logs=None):
        if self.params.get("verbose", 1):
            sys.stdout.write(f"Epoch {epoch + 1}/{self.params.get('epochs', 1)}\n")
        self._start()

    def on_train_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        if self.params.get("verbose") == 1:
            self._bar.update(self._seen, list((logs or {}).items()), finalize=False)

    def on_epoch_end(self, epoch, logs=None):
        self._bar.update(self._seen, list((logs or {}).items()), finalize=True)

    # Validation inside fit is silent, as in Keras; only evaluate() draws a bar.
    def on_test_begin(self, logs=None):
        if self.params.get("mode") == "evaluate":
            self._start()

    def on_test_batch_end(self, batch, logs=None):
        if self.params.get("mode") == "evaluate":
            self._seen = batch + 1
            self._bar.update(self._seen, list((logs or {}).items()), finalize=False)

    def on_test_end(self, logs=None):
        if self.params.get("mode") == "evaluate":
            self._bar.update(self._seen, list((logs or {}).items()), finalize=True)

    def on_predict_begin(self, logs=None):
        self._start()

    def on_predict_batch_end(self, batch, logs=None):
        self._seen = batch + 1
        self._bar.update(self._seen, finalize=False)

    def on_predict_end(self, logs=None):
        self._bar.update(self._seen, finalize=True)
