"""Keras's training callbacks."""

from fastconv.callbacks.base import Callback, CallbackList
from fastconv.callbacks.csv_logger import CSVLogger
from fastconv.callbacks.early_stopping import EarlyStopping
from fastconv.callbacks.history import History
from fastconv.callbacks.learning_rate_scheduler import LearningRateScheduler
from fastconv.callbacks.model_checkpoint import ModelCheckpoint
from fastconv.callbacks.progbar import Progbar, ProgbarLogger
from fastconv.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from fastconv.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = [
    "Callback",
    "CallbackList",
    "CSVLogger",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "Progbar",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]
