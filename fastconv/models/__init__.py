"""Models: Sequential, and loading saved ones."""

from fastconv.models.sequential import Sequential
from fastconv.models.training import Model
from fastconv.saving import load_model, save_model

__all__ = ["Model", "Sequential", "load_model", "save_model"]
