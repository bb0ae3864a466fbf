"""Keras's ``utils`` helpers: one-hot labels and the global random seed."""

from __future__ import annotations

import random

import numpy as np
from numpy.typing import ArrayLike

from fastconv import _random

__all__ = ["to_categorical", "set_random_seed"]


def to_categorical(y: ArrayLike, num_classes: int | None = None, dtype="float32") -> np.ndarray:
    """One-hot encode integer class labels.

    Parameters
    ----------
    y : array_like of ints, shape (...) or (..., 1)
        Class labels in ``[0, num_classes)``. A trailing axis of length 1 is
        dropped, as in Keras.
    num_classes : int, optional
        Defaults to ``max(y) + 1``.
    dtype : dtype, default "float32"

    Returns
    -------
    ndarray of shape (..., num_classes)
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf" or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
        raise ValueError(f"y must hold integer class labels, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got values from {y.min()} to {y.max()}"
        )
    out = np.zeros(y.shape + (num_classes,), dtype=dtype)
    np.put_along_axis(out, y[..., None], 1, axis=-1)
    return out


def set_random_seed(seed: int) -> None:
    """Seed every source of randomness: weights, dropout and shuffling.

    Like Keras's, it also seeds Python's `random` and NumPy's legacy global
    generator, which user code often shuffles its data with.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    _random.seed(int(seed))
