"""The one place randomness comes from.

Every weight initialisation, dropout mask and shuffle in fastconv draws from
generators that descend from the global generator here, so
`fastconv.utils.set_random_seed` makes a whole run reproducible.
"""

from __future__ import annotations

import contextlib
import math
import numbers
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


# ---- dropout masks ----------------------------------------------------------
#
# A dropout mask is a function of (seed, element index), not a draw from a
# stream: the C kernel (src/dropout.c) computes any element on any thread, the
# backward pass recomputes the mask instead of storing it, and `keep_mask`
# below reproduces it bit for bit. Element i is kept when the 24 high bits of
# mix32(mix32(lo(i) ^ lo(seed)) ^ hi(i) ^ hi(seed)) are at least
# dropout_threshold(rate), i.e. when that 24-bit uniform number is >= rate.


def dropout_threshold(rate) -> int:
    """The 24-bit threshold of a dropout rate in [0, 1); ValueError otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
        raise ValueError(f"rate must be a number in [0, 1), got {rate!r}")
    return math.ceil(float(rate) * 2**24)


def dropout_seed(seed) -> int:
    """seed as an int in [0, 2**64); ValueError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def _mix32(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def keep_mask(seed: int, n: int, rate) -> np.ndarray:
    """The dropout mask of n elements: True where element i is kept."""
    threshold = dropout_threshold(rate)
    seed = dropout_seed(seed)
    index = np.arange(n, dtype=np.uint64)
    lo = (index & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    hi = (index >> np.uint64(32)).astype(np.uint32)
    with np.errstate(over="ignore"):
        h = _mix32(_mix32(lo ^ np.uint32(seed & 0xFFFFFFFF)) ^ hi ^ np.uint32(seed >> 32))
    return (h >> np.uint32(8)) >= np.uint32(threshold)
