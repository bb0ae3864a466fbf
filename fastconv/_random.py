"""The one place randomness comes from.

Every weight initialisation, dropout mask and shuffle in fastconv draws from
generators that descend from the global generator here, so
`fastconv.utils.set_random_seed` makes a whole run reproducible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

_global = np.random.default_rng()


def seed(value: int) -> None:
    """Reset the global generator to a fixed seed."""
    global _global
    _global = np.random.default_rng(value)


def generator() -> np.random.Generator:
    """The global generator, for draws made once (weight initialisation)."""
    return _global


def spawn() -> np.random.Generator:
    """A new generator seeded from the global one.

    Models own such a generator for shuffling and dropout, so that their draws
    do not depend on what else in the program uses the global one after the
    model is made, and so that its state can be saved with the model.
    """
    return np.random.default_rng(int(_global.integers(0, 2**63)))


@contextlib.contextmanager
def preserved() -> Iterator[None]:
    """Undo every draw from the global generator made inside a ``with`` block."""
    state = _global.bit_generator.state
    try:
        yield
    finally:
        _global.bit_generator.state = state
