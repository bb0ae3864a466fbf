"""Optimizers by Keras name and class, and learning-rate schedules."""

from fastconv.optimizers import schedules
from fastconv.optimizers.adadelta import Adadelta
from fastconv.optimizers.adagrad import Adagrad
from fastconv.optimizers.adam import Adam
from fastconv.optimizers.base import Optimizer
from fastconv.optimizers.rmsprop import RMSprop
from fastconv.optimizers.sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "RMSprop",
    "Adagrad",
    "Adadelta",
    "schedules",
    "get",
    "serialize",
    "deserialize",
]

_CLASSES = {cls.__name__: cls for cls in (SGD, Adam, RMSprop, Adagrad, Adadelta)}
_BY_NAME = {name.lower(): cls for name, cls in _CLASSES.items()}


def get(identifier) -> Optimizer:
    """An optimizer from a Keras name ("adam", "sgd", ...), a config dict, or itself.

    A name gives a new optimizer with Keras's defaults.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"unknown optimizer {identifier!r}; expected one of {sorted(_BY_NAME)}")


def serialize(optimizer: Optimizer) -> dict:
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config: dict) -> Optimizer:
    if not isinstance(config, dict) or config.get("class_name") not in _CLASSES:
        raise ValueError(f"unknown optimizer {config!r}; expected one of {sorted(_CLASSES)}")
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise ValueError(f"an optimizer config must be a dict, got {inner!r}")
    return _CLASSES[config["class_name"]].from_config(inner)
