"""PNG plots of a training run: learning curves and misclassified digits.

matplotlib is an optional extra (``pip install "fastconv[plot]"``); these
functions raise `MissingMatplotlib` (an ImportError) with that instruction when
it is absent. They draw on matplotlib's ``Figure`` and Agg canvas directly, so
they never touch pyplot's global state or need a display.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MissingMatplotlib", "plot_history", "plot_misclassified", "require_matplotlib"]


class MissingMatplotlib(ImportError):
    """matplotlib is needed for plots and is not installed."""


def require_matplotlib():
    """Import matplotlib's Figure and Agg canvas, or say how to install them."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise MissingMatplotlib(
            "plots need matplotlib, an optional extra of fastconv: "
            'pip install "fastconv[plot]" (or pip install matplotlib)'
        ) from error
    return Figure, FigureCanvasAgg


def _save(figure, canvas_class, path) -> None:
    canvas_class(figure)
    figure.savefig(path, dpi=100)


def plot_history(history: dict, path, title: str | None = None) -> None:
    """Loss and accuracy per epoch, training against validation, side by side.

    Parameters
    ----------
    history : dict
        ``History.history``: "loss", "accuracy" and optionally "val_loss",
        "val_accuracy", each a list with one value per epoch.
    path : str or path-like
        The PNG file to write.
    """
    Figure, Canvas = require_matplotlib()
    figure = Figure(figsize=(10, 4))
    for position, key in enumerate(("loss", "accuracy"), start=1):
        axes = figure.add_subplot(1, 2, position)
        for name, style in ((key, "o-"), (f"val_{key}", "s--")):
            values = history.get(name)
            if values:
                epochs = np.arange(1, len(values) + 1)
                label = "validation" if name.startswith("val_") else "training"
                axes.plot(epochs, values, style, label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(key)
        axes.set_title(key)
        axes.grid(True, alpha=0.3)
        axes.legend()
        axes.xaxis.get_major_locator().set_params(integer=True)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    _save(figure, Canvas, path)


def plot_misclassified(images, y_true, y_pred, path, max_images: int = 36,
                       title: str | None = None) -> int:
    """A grid of misclassified digits, each labelled ``predicted/true``.

    Parameters
    ----------
    images : array of shape (n, h, w) or (n, h, w, 1)
    y_true, y_pred : int arrays of shape (n,)
    path : str or path-like
        The PNG file to write.
    max_images : int, default 36
        At most this many, the first ones in order.

    Returns
    -------
    int
        How many misclassified images there were in all.
    """
    Figure, Canvas = require_matplotlib()
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[..., 0]
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    wrong = np.flatnonzero(y_true != y_pred)
    shown = wrong[:max_images]
    columns = max(1, min(len(shown), 9))
    rows = max(1, math.ceil(len(shown) / columns))
    figure = Figure(figsize=(1.2 * columns, 1.35 * rows + 0.5))
    for k, i in enumerate(shown):
        axes = figure.add_subplot(rows, columns, k + 1)
        axes.imshow(images[i], cmap="gray_r")
        axes.set_title(f"{y_pred[i]}/{y_true[i]}", fontsize=9,
                       color="tab:red")
        axes.set_xticks([])
        axes.set_yticks([])
    heading = title or "misclassified test digits"
    figure.suptitle(f"{heading}: predicted/true ({len(wrong)} in all, first {len(shown)} shown)"
                    if len(wrong) else f"{heading}: none", fontsize=10)
    figure.tight_layout()
    _save(figure, Canvas, path)
    return len(wrong)
