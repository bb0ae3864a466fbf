"""The layer life cycle every fastconv layer follows, after Keras.

``__init__`` stores the configuration; ``build(input_shape)`` creates the
weights once the input shape is known; ``forward(x, training)`` computes the
output and keeps what the backward pass needs; ``backward(dy)`` returns the
gradient with respect to the input and writes each weight's gradient into
its `Weight`; ``get_config()`` / ``from_config()`` round-trip the layer.

Shapes passed to ``build`` and returned by ``compute_output_shape`` include
the batch axis as None, as in Keras: ``(None, 28, 28, 1)``.
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from fastconv import backend, initializers, regularizers

__all__ = ["Layer", "Weight", "uninitialized_weights"]

_skip_initializers = False


@contextlib.contextmanager
def uninitialized_weights():
    """Create weights as lazily allocated zeros inside a ``with`` block.

    For loading a saved model, whose weights are overwritten at once: no
    random numbers are drawn (so loading does not shift the seeded global
    stream), no time is spent initialising, and the zeros are not touched,
    so a file describing absurdly large layers is refused on the shape
    check before it costs any real memory.
    """
    global _skip_initializers
    saved = _skip_initializers
    _skip_initializers = True
    try:
        yield
    finally:
        _skip_initializers = saved


class Weight:
    """One weight array of a layer, with its gradient and how it is trained.

    Attributes
    ----------
    name : str
        Unique within its layer, e.g. "kernel".
    path : str
        ``"layer_name/weight_name"``: unique within a model, it keys the
        optimizer's state for the weight and the weight in saved files.
    value : ndarray
        Updated in place by optimizers, so references to it stay valid.
    grad : ndarray or None
        Same shape as ``value``; written by the layer's ``backward``.
    trainable : bool
        False for state that training computes rather than learns (the
        moving statistics of batch normalisation).
    regularizer : Regularizer or None
    """

    def __init__(self, name, value, trainable=True, regularizer=None, path=None):
        self.name = name
        self.path = path or name
        self.value = value
        self.grad = None
        self.trainable = trainable
        self.regularizer = regularizer

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.shape


class Layer:
    """Base class of all layers.

    Parameters
    ----------
    name : str, optional
        Defaults to the snake-case class name, made unique in the session
        ("conv2d", "conv2d_1", ...).
    trainable : bool, default True
        False freezes every weight of the layer.
    dtype : dtype, default "float32"
        The dtype of the weights. The fast kernels compute in float32;
        float64 layers are for `fastconv.backend.use_reference` checks.
    input_shape : tuple of int, optional
        The input shape without the batch axis, for a model's first layer.
    batch_input_shape : tuple, optional
        The input shape with the batch axis (which may be None).
    """

    # Whether backward must return dL/dx. A model clears it on the lowest
    # layer it trains through, whose input gradient nobody reads.
    input_grad_needed: bool = True

    def __init__(
        self,
        name: str | None = None,
        trainable: bool = True,
        dtype="float32",
        input_shape=None,
        batch_input_shape=None,
        **kwargs,
    ):
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword arguments {sorted(kwargs)}"
            )
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(f"name must be a non-empty string without '/', got {name!r}")
        if name is None:
            name = backend.unique_name(backend.to_snake_case(type(self).__name__))
        else:
            backend.reserve_name(name)
        self.name = name
        self.trainable = bool(trainable)
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise ValueError(f"dtype must be a floating-point type, got {dtype!r}")
        if input_shape is not None and batch_input_shape is None:
            batch_input_shape = (None, *input_shape)
        if batch_input_shape is not None:
            batch_input_shape = tuple(None if s is None else int(s) for s in batch_input_shape)
        self.batch_input_shape = batch_input_shape
        self.built = False
        self.input_shape: tuple | None = None
        self.output_shape: tuple | None = None
        self._weights: list[Weight] = []

    # ---- weights --------------------------------------------------------

    def add_weight(
        self, name, shape, initializer="zeros", regularizer=None, trainable=True
    ) -> Weight:
        """Create, initialise and register a weight; call from ``build``."""
        if _skip_initializers:
            value = np.zeros(shape, self.dtype)
        else:
            value = initializers.get(initializer)(shape, self.dtype)
        weight = Weight(
            name, value, trainable, regularizers.get(regularizer), path=f"{self.name}/{name}"
        )
        self._weights.append(weight)
        return weight

    @property
    def weights(self) -> list[Weight]:
        """All weights: trainable first, then non-trainable, as Keras orders them."""
        return self.trainable_weights + self.non_trainable_weights

    @property
    def trainable_weights(self) -> list[Weight]:
        return [w for w in self._weights if w.trainable and self.trainable]

    @property
    def non_trainable_weights(self) -> list[Weight]:
        return [w for w in self._weights if not (w.trainable and self.trainable)]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weight arrays, in creation order (Keras's order)."""
        return [w.value.copy() for w in self._weights]

    def set_weights(self, weights) -> None:
        """Copy arrays into the weights, in the order `get_weights` returns them."""
        weights = list(weights)
        if len(weights) != len(self._weights):
            raise ValueError(
                f"layer {self.name!r} has {len(self._weights)} weights, got {len(weights)} arrays"
            )
        for weight, value in zip(self._weights, weights):
            value = np.asarray(value)
            if value.shape != weight.shape:
                raise ValueError(
                    f"weight {self.name}/{weight.name} has shape {weight.shape}, "
                    f"got an array of shape {value.shape}"
                )
            weight.value[...] = value

    def count_params(self) -> int:
        return sum(math.prod(w.shape) for w in self._weights)

    def regularization_loss(self) -> float:
        """The sum of the penalties of this layer's weights."""
        return sum(w.regularizer(w.value) for w in self._weights if w.regularizer is not None)

    # ---- life cycle -----------------------------------------------------

    def build(self, input_shape: tuple) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis None)."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.built = True

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Return ``dL/dx`` for the last ``forward(x, training=True)`` and
        write the gradients of the trainable weights.

        ``dy`` (shape of the forward's output) may be overwritten: in a
        model it is a temporary nobody reads again, and reusing it saves a
        full-size allocation per layer and step.
        """
        raise NotImplementedError

    def __call__(self, x, training: bool = False) -> np.ndarray:
        """Build on first use, then run ``forward`` (inference by default)."""
        x = np.asarray(x)
        if not self.built:
            self.build((None, *x.shape[1:]))
        return self.forward(x, training=training)

    # ---- configuration --------------------------------------------------

    def get_config(self) -> dict:
        """The constructor arguments as JSON-compatible values."""
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype.name}
        if self.batch_input_shape is not None:
            config["batch_input_shape"] = list(self.batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}>"
