"""The leaky ReLU's scalar arguments, checked alike by `fastconv.ops` and
`fastconv.reference`."""

from __future__ import annotations

import math
import numbers


def leaky_relu_arguments(negative_slope, max_value) -> tuple[float, float]:
    """``(negative_slope, max_value)`` as floats, ``max_value`` None becoming
    +inf; ValueError unless the slope is finite and not negative (a negative
    one would flip the sign the backward pass reads from the output) and the
    cap is None or not negative."""
    if (isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real)
            or not 0 <= negative_slope < math.inf):
        raise ValueError(
            f"negative_slope must be a finite number >= 0, got {negative_slope!r}"
        )
    if max_value is None:
        return float(negative_slope), math.inf
    if (isinstance(max_value, bool) or not isinstance(max_value, numbers.Real)
            or not max_value >= 0):
        raise ValueError(f"max_value must be None or a number >= 0, got {max_value!r}")
    return float(negative_slope), float(max_value)
