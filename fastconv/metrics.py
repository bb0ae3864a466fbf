"""Metrics by Keras name: accuracies and top-k accuracy, averaged over an epoch.

A metric function maps ``(y_true, y_pred)`` to one value per sample; a
`Metric` object averages those over every batch seen since its last
`reset_state`, weighting by the number of samples, as Keras's logs do.
"""

from __future__ import annotations

import numpy as np

from fastconv import losses as _losses

__all__ = [
    "Metric",
    "MeanMetricWrapper",
    "accuracy",
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy",
    "get",
]


def _labels(y_true, y_pred) -> np.ndarray:
    """Integer labels of shape ``y_pred.shape[:-1]``."""
    labels = np.asarray(y_true)
    if labels.shape == y_pred.shape[:-1] + (1,):
        labels = labels.reshape(y_pred.shape[:-1])
    return labels.astype(np.int64)


def binary_accuracy(y_true, y_pred, threshold: float = 0.5) -> np.ndarray:
    """Share of entries where ``y_pred > threshold`` matches ``y_true``, per sample."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    return ((y_pred > threshold) == (y_true > 0.5)).mean(axis=-1)


def categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where ``argmax(y_pred)`` equals ``argmax(y_true)`` (one-hot targets), else 0."""
    y_pred = np.asarray(y_pred)
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred) -> np.ndarray:
    """1 where ``argmax(y_pred)`` equals the integer label, else 0."""
    y_pred = np.asarray(y_pred)
    return (_labels(y_true, y_pred) == np.argmax(y_pred, axis=-1)).astype(np.float64)


def _in_top_k(labels, y_pred, k) -> np.ndarray:
    # A label is in the top k when fewer than k classes score strictly higher.
    target = np.take_along_axis(y_pred, labels[..., None], axis=-1)
    return ((y_pred > target).sum(axis=-1) < k).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """1 where the true class (one-hot) is among the ``k`` highest predictions."""
    y_pred = np.asarray(y_pred)
    return _in_top_k(np.argmax(y_true, axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k: int = 5) -> np.ndarray:
    """1 where the integer label is among the ``k`` highest predictions."""
    y_pred = np.asarray(y_pred)
    return _in_top_k(_labels(y_true, y_pred), y_pred, k)


def accuracy(y_true, y_pred) -> np.ndarray:
    """Share of entries of ``y_pred`` equal to ``y_true``, per sample (Keras's
    function of that name; the *string* "accuracy" picks a fitting accuracy
    instead, see `get`)."""
    y_pred = np.asarray(y_pred)
    y_true = np.asarray(y_true).reshape(y_pred.shape)
    return (y_true == y_pred).mean(axis=-1)


class Metric:
    """A running, sample-weighted mean of a per-sample quantity."""

    def __init__(self, name: str):
        self.name = name
        self.reset_state()

    def reset_state(self) -> None:
        self._total = 0.0
        self._count = 0

    def update_state(self, y_true, y_pred) -> None:
        values = np.asarray(self._values(y_true, y_pred), dtype=np.float64)
        self._total += float(values.sum())
        self._count += values.size

    def _values(self, y_true, y_pred):
        raise NotImplementedError

    def result(self) -> float:
        return self._total / self._count if self._count else 0.0


class MeanMetricWrapper(Metric):
    """The mean of a metric function over the samples seen."""

    def __init__(self, fn, name: str, **kwargs):
        self.fn, self.kwargs = fn, kwargs
        super().__init__(name)

    def _values(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.kwargs)


_FUNCTIONS = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "top_k_categorical_accuracy": top_k_categorical_accuracy,
    "sparse_top_k_categorical_accuracy": sparse_top_k_categorical_accuracy,
}



def _accuracy_for(loss: _losses.Loss | None, output_shape: tuple) -> callable:
    """Keras's choice of accuracy for the name "accuracy" (or "acc")."""
    if isinstance(loss, _losses.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, _losses.BinaryCrossentropy) or output_shape[-1] == 1:
        return binary_accuracy
    return categorical_accuracy


def get(identifier, loss: _losses.Loss | None = None, output_shape=(None, None)) -> Metric:
    """A fresh `Metric` for a Keras name, a metric function, or a `Metric`.

    "accuracy" and "acc" become the binary, categorical or sparse accuracy
    that fits the loss and output, as in Keras, and keep the name given.
    """
    if isinstance(identifier, Metric):
        return identifier
    if identifier in ("accuracy", "acc"):
        return MeanMetricWrapper(_accuracy_for(loss, output_shape), identifier)
    if isinstance(identifier, str) and identifier in _FUNCTIONS:
        return MeanMetricWrapper(_FUNCTIONS[identifier], identifier)
    if callable(identifier) and identifier in (*_FUNCTIONS.values(), accuracy):
        return MeanMetricWrapper(identifier, identifier.__name__)
    if identifier in _losses._BY_NAME:
        loss_metric = _losses.get(identifier)
        return MeanMetricWrapper(lambda t, p: loss_metric.call(t, p), identifier)
    raise ValueError(
        f"unknown metric {identifier!r}; expected 'accuracy' or one of {sorted(_FUNCTIONS)}"
    )
