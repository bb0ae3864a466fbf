"""Losses by Keras name, each with its gradient.

A loss object gives the per-sample values (`call`, shape ``y_pred.shape[:-1]``),
their mean (``loss(y_true, y_pred)``, Keras's default "sum over batch size"
reduction) and the gradient of that mean with respect to ``y_pred``
(`gradient`). Arrays keep ``y_pred``'s dtype.

The cross-entropies also take ``from_logits=True``. A model whose output layer
ends in softmax (or sigmoid) and whose loss is the matching cross-entropy
computes the loss from the output layer's pre-activation with the logits
form: one fused, stable operation whose gradient is ``softmax(z) - onehot``
(see `Loss.fused_activation`).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "Loss",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "BinaryCrossentropy",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Hinge",
    "SquaredHinge",
    "categorical_crossentropy",
    "sparse_categorical_crossentropy",
    "binary_crossentropy",
    "mean_squared_error",
    "mean_absolute_error",
    "mse",
    "mae",
    "hinge",
    "squared_hinge",
    "get",
    "serialize",
]

# Keras clips probabilities into [EPSILON, 1 - EPSILON] before taking logs.
EPSILON = 1e-7


def _float(y_pred) -> np.ndarray:
    y_pred = np.asarray(y_pred)
    return y_pred if y_pred.dtype.kind == "f" else y_pred.astype(np.float32)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=-1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return shifted


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * z) + 1)


class Loss:
    """Base class: subclasses implement `call` and `_gradient_sum`.

    Parameters
    ----------
    name : str, optional
        Defaults to the Keras snake-case name of the loss.
    """

    default_name = ""
    #: The output activation this loss fuses with ("softmax", "sigmoid" or None).
    fused_activation: str | None = None

    def __init__(self, name: str | None = None):
        self.name = name or self.default_name

    def __call__(self, y_true, y_pred) -> float:
        """The mean loss over every sample (and every position of ``y_pred[..., 0]``)."""
        return float(np.mean(self.call(y_true, y_pred)))

    def call(self, y_true, y_pred) -> np.ndarray:
        """Per-sample losses of shape ``y_pred.shape[:-1]``."""
        raise NotImplementedError

    def gradient(self, y_true, y_pred) -> np.ndarray:
        """``d mean-loss / d y_pred``, shape and dtype of ``y_pred``."""
        y_pred = _float(y_pred)
        grad = self._gradient_sum(self._target(y_true, y_pred), y_pred)
        grad *= 1.0 / max(1, y_pred.size // y_pred.shape[-1])
        return grad

    def _target(self, y_true, y_pred) -> np.ndarray:
        y_true = np.asarray(y_true, dtype=y_pred.dtype)
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"{self.name}: y_true has shape {y_true.shape} but y_pred has {y_pred.shape}"
            )
        return y_true

    def _gradient_sum(self, y_true, y_pred) -> np.ndarray:
        """Gradient of the *sum* of the per-sample losses."""
        raise NotImplementedError

    def with_logits(self) -> Loss:
        """This loss computed from the output layer's pre-activation."""
        raise NotImplementedError(f"{self.name} has no logits form")

    def get_config(self) -> dict:
        return {"name": self.name}

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)


class _CrossEntropy(Loss):
    def __init__(self, from_logits: bool = False, name: str | None = None):
        super().__init__(name)
        self.from_logits = bool(from_logits)

    def with_logits(self):
        return type(self)(from_logits=True, name=self.name)

    def get_config(self):
        return {"from_logits": self.from_logits, "name": self.name}


class CategoricalCrossentropy(_CrossEntropy):
    """``-sum(y_true * log(y_pred))`` over the last axis, for one-hot (or soft) targets.

    With probabilities, ``y_pred`` is renormalised to sum to one and clipped
    to ``[1e-7, 1 - 1e-7]``, as Keras does.
    """

    default_name = "categorical_crossentropy"
    fused_activation = "softmax"

    def call(self, y_true, y_pred):
        y_pred = _float(y_pred)
        t = self._target(y_true, y_pred)
        if self.from_logits:
            return -(t * _log_softmax(y_pred)).sum(axis=-1)
        q = y_pred / y_pred.sum(axis=-1, keepdims=True)
        return -(t * np.log(np.clip(q, EPSILON, 1 - EPSILON))).sum(axis=-1)

    def _gradient_sum(self, t, y_pred):
        if self.from_logits:
            # d/dz of -sum(t * log_softmax(z)) = softmax(z) * sum(t) - t.
            grad = _softmax(y_pred)
            grad *= t.sum(axis=-1, keepdims=True)
            grad -= t
            return grad
        s = y_pred.sum(axis=-1, keepdims=True)
        q = y_pred / s
        inside = (q > EPSILON) & (q < 1 - EPSILON)
        dq = np.where(inside, -t / np.clip(q, EPSILON, 1 - EPSILON), 0).astype(y_pred.dtype)
        # Through the renormalisation q = p / sum(p).
        return (dq - (dq * q).sum(axis=-1, keepdims=True)) / s


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Categorical cross-entropy with integer labels: ``y_true`` of shape
    ``y_pred.shape[:-1]`` (or with a trailing axis of 1)."""

    default_name = "sparse_categorical_crossentropy"

    def _target(self, y_true, y_pred):
        labels = np.asarray(y_true)
        if labels.shape == y_pred.shape[:-1] + (1,):
            labels = labels.reshape(y_pred.shape[:-1])
        if labels.shape != y_pred.shape[:-1]:
            raise ValueError(
                f"{self.name}: y_true must have shape {y_pred.shape[:-1]} (integer labels), "
                f"got {labels.shape}"
            )
        if labels.dtype.kind == "f":
            if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
                raise ValueError(f"{self.name}: y_true must hold integer labels")
        elif labels.dtype.kind not in "biu":
            raise ValueError(f"{self.name}: y_true must hold integer labels, got {labels.dtype}")
        labels = labels.astype(np.int64)
        k = y_pred.shape[-1]
        if labels.size and (labels.min() < 0 or labels.max() >= k):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {k}), got {labels.min()}..{labels.max()}"
            )
        onehot = np.zeros(y_pred.shape, dtype=y_pred.dtype)
        np.put_along_axis(onehot, labels[..., None], 1, axis=-1)
        return onehot


class BinaryCrossentropy(_CrossEntropy):
    """``-mean(t * log(p) + (1 - t) * log(1 - p))`` over the last axis."""

    default_name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def call(self, y_true, y_pred):
        y_pred = _float(y_pred)
        t = self._target(y_true, y_pred)
        if self.from_logits:
            z = y_pred
            losses = np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))
        else:
            p = np.clip(y_pred, EPSILON, 1 - EPSILON)
            losses = -(t * np.log(p) + (1 - t) * np.log(1 - p))
        return losses.mean(axis=-1)

    def _gradient_sum(self, t, y_pred):
        d = y_pred.shape[-1]
        if self.from_logits:
            grad = _sigmoid(y_pred) - t
        else:
            inside = (y_pred > EPSILON) & (y_pred < 1 - EPSILON)
            p = np.clip(y_pred, EPSILON, 1 - EPSILON)
            grad = np.where(inside, (p - t) / (p * (1 - p)), 0).astype(y_pred.dtype)
        grad *= 1.0 / d
        return grad


class MeanSquaredError(Loss):
    """``mean((y_pred - y_true) ** 2)`` over the last axis."""

    default_name = "mean_squared_error"

    def call(self, y_true, y_pred):
        y_pred = _float(y_pred)
        return np.square(y_pred - self._target(y_true, y_pred)).mean(axis=-1)

    def _gradient_sum(self, t, y_pred):
        grad = y_pred - t
        grad *= 2.0 / y_pred.shape[-1]
        return grad


class MeanAbsoluteError(Loss):
    """``mean(|y_pred - y_true|)`` over the last axis."""

    default_name = "mean_absolute_error"

    def call(self, y_true, y_pred):
        y_pred = _float(y_pred)
        return np.abs(y_pred - self._target(y_true, y_pred)).mean(axis=-1)

    def _gradient_sum(self, t, y_pred):
        grad = np.sign(y_pred - t)
        grad *= 1.0 / y_pred.shape[-1]
        return grad


class Hinge(Loss):
    """``mean(max(1 - t * y_pred, 0))`` with labels in {-1, 1}; labels in {0, 1}
    are mapped to {-1, 1} first, as Keras does."""

    default_name = "hinge"
    _power = 1

    def _target(self, y_true, y_pred):
        t = super()._target(y_true, y_pred)
        if np.all((t == 0) | (t == 1)):
            t = 2 * t - 1
        return t

    def call(self, y_true, y_pred):
        y_pred = _float(y_pred)
        margin = np.maximum(1 - self._target(y_true, y_pred) * y_pred, 0)
        return (margin**self._power).mean(axis=-1)

    def _gradient_sum(self, t, y_pred):
        margin = np.maximum(1 - t * y_pred, 0)
        slope = (margin > 0) if self._power == 1 else 2 * margin
        grad = -t * slope
        grad *= 1.0 / y_pred.shape[-1]
        return grad.astype(y_pred.dtype, copy=False)


class SquaredHinge(Hinge):
    """``mean(max(1 - t * y_pred, 0) ** 2)``, labels as for `Hinge`."""

    default_name = "squared_hinge"
    _power = 2


def _function(cls, name):
    def loss(y_true, y_pred, **kwargs):
        return cls(**kwargs).call(y_true, y_pred)

    loss.__name__ = name
    loss.__doc__ = f"Per-sample {name} losses, shape ``y_pred.shape[:-1]`` (see `{cls.__name__}`)."
    return loss


categorical_crossentropy = _function(CategoricalCrossentropy, "categorical_crossentropy")
sparse_categorical_crossentropy = _function(
    SparseCategoricalCrossentropy, "sparse_categorical_crossentropy"
)
binary_crossentropy = _function(BinaryCrossentropy, "binary_crossentropy")
mean_squared_error = mse = _function(MeanSquaredError, "mean_squared_error")
mean_absolute_error = mae = _function(MeanAbsoluteError, "mean_absolute_error")
hinge = _function(Hinge, "hinge")
squared_hinge = _function(SquaredHinge, "squared_hinge")

_CLASSES = {
    cls.__name__: cls
    for cls in (
        CategoricalCrossentropy,
        SparseCategoricalCrossentropy,
        BinaryCrossentropy,
        MeanSquaredError,
        MeanAbsoluteError,
        Hinge,
        SquaredHinge,
    )
}
_BY_NAME = {cls.default_name: cls for cls in _CLASSES.values()}
_BY_NAME.update(mse=MeanSquaredError, mae=MeanAbsoluteError)
_FUNCTIONS = {
    categorical_crossentropy: CategoricalCrossentropy,
    sparse_categorical_crossentropy: SparseCategoricalCrossentropy,
    binary_crossentropy: BinaryCrossentropy,
    mean_squared_error: MeanSquaredError,
    mean_absolute_error: MeanAbsoluteError,
    hinge: Hinge,
    squared_hinge: SquaredHinge,
}


def get(identifier) -> Loss:
    """A loss from a Keras name, one of this module's functions, a
    ``{"class_name", "config"}`` dict, or a `Loss`.

    A name gives the loss that name (``"mse"`` is named "mse"), so metrics
    and logs read as the user wrote them.
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str) and identifier in _BY_NAME:
        return _BY_NAME[identifier](name=identifier)
    if callable(identifier) and identifier in _FUNCTIONS:
        return _FUNCTIONS[identifier]()
    if isinstance(identifier, dict) and identifier.get("class_name") in _CLASSES:
        config = identifier.get("config", {})
        if not isinstance(config, dict):
            raise ValueError(f"a loss config must be a dict, got {config!r}")
        return _CLASSES[identifier["class_name"]].from_config(config)
    raise ValueError(
        f"unknown loss {identifier!r}; expected one of {sorted(_BY_NAME)} or a Loss"
    )


def serialize(loss: Loss) -> dict:
    return {"class_name": type(loss).__name__, "config": loss.get_config()}
