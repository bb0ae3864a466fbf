"""Session state shared by the model API: which kernels layers run on, and layer names.

Layers never import `fastconv.ops` directly; they ask `kernels()` for the
current kernel set. By default that is fastconv's C kernels (float32). Tests
switch to `use_reference()` to run the same layers on `fastconv.reference` in
float64, so that finite-difference gradient checks are not drowned in float32
rounding.
"""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np

from fastconv import ops, reference
from fastconv._geometry import conv2d_geometry

__all__ = ["kernels", "use_reference", "get_uid", "unique_name", "reserve_name", "clear_session"]


def _reference_conv2d(x, w, b=None, *, stride=1, padding="valid", dilation=1, activation=None):
    y = reference.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    return np.maximum(y, 0, out=y) if activation == "relu" else y


def _reference_conv2d_max_pool2d(x, w, b=None, *, stride=1, padding="valid", dilation=1,
                                 activation=None, pool_size=2, pool_strides=None,
                                 pool_padding="valid", dropout=None, return_argmax=False):
    z = _reference_conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation,
                          activation=activation)
    return reference.max_pool2d(z, pool_size, strides=pool_strides, padding=pool_padding,
                                dropout=dropout, return_argmax=return_argmax)


def _reference_conv2d_max_pool2d_backward(dy, argmax, x, w, *, stride=1, padding="valid",
                                          dilation=1, activation=None, pool_size=2,
                                          pool_strides=None, pool_padding="valid", dropout=None,
                                          input_grad=True, relu=False):
    g = conv2d_geometry(np.shape(x), np.shape(w), stride, padding, dilation)
    dz = reference.max_pool2d_backward_argmax(dy, argmax, g.y_shape, pool_size,
                                              strides=pool_strides, padding=pool_padding,
                                              relu=activation == "relu", dropout=dropout)
    return reference.conv2d_backward(dz, x, w, stride=stride, padding=padding, dilation=dilation,
                                     input_grad=input_grad, relu=relu)


def _reference_dense(x, w, b=None, *, activation=None):
    y = reference.matmul(x, w)
    if b is not None:
        y += b
    return np.maximum(y, 0, out=y) if activation == "relu" else y


# The reference ops lack the fused activation, `dense` and the convolution
# followed by max pooling (both ways); these adapters
# give them the exact signatures of `fastconv.ops`, so layers cannot tell the
# two kernel sets apart.
_REFERENCE = SimpleNamespace(
    conv2d=_reference_conv2d,
    conv2d_backward=reference.conv2d_backward,
    conv2d_max_pool2d=_reference_conv2d_max_pool2d,
    conv2d_max_pool2d_backward=_reference_conv2d_max_pool2d_backward,
    max_pool2d=reference.max_pool2d,
    max_pool2d_backward=reference.max_pool2d_backward,
    max_pool2d_backward_argmax=reference.max_pool2d_backward_argmax,
    avg_pool2d=reference.avg_pool2d,
    avg_pool2d_backward=reference.avg_pool2d_backward,
    matmul=reference.matmul,
    dense=_reference_dense,
    relu_backward=reference.relu_backward,
    leaky_relu=reference.leaky_relu,
    leaky_relu_backward=reference.leaky_relu_backward,
    dropout=reference.dropout,
    batch_norm_statistics=reference.batch_norm_statistics,
    batch_norm=reference.batch_norm,
    batch_norm_backward=reference.batch_norm_backward,
)

_current = ops


def kernels():
    """The kernel set layers call now: `fastconv.ops`, or the reference twin."""
    return _current


@contextlib.contextmanager
def use_reference() -> Iterator[None]:
    """Run layers on `fastconv.reference` (float64-capable) inside a ``with`` block."""
    global _current
    saved = _current
    _current = _REFERENCE
    try:
        yield
    finally:
        _current = saved


_uids: defaultdict[str, int] = defaultdict(int)
# Names given explicitly (or read from a saved model) are never handed out
# again, so a layer added next to loaded ones cannot collide with them.
_taken: set[str] = set()


def to_snake_case(name: str) -> str:
    """``"MaxPooling2D"`` -> ``"max_pooling2d"``, Keras's default-name rule."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def get_uid(prefix: str) -> int:
    """0 the first time ``prefix`` is asked for in this session, then 1, 2, ..."""
    uid = _uids[prefix]
    _uids[prefix] += 1
    return uid


def unique_name(prefix: str) -> str:
    """``prefix``, then ``prefix_1``, ``prefix_2``, ... as Keras names layers,
    skipping names already taken."""
    while True:
        uid = get_uid(prefix)
        name = prefix if uid == 0 else f"{prefix}_{uid}"
        if name not in _taken:
            _taken.add(name)
            return name


def reserve_name(name: str) -> None:
    """Mark an explicitly chosen name as taken."""
    _taken.add(name)


def clear_session() -> None:
    """Forget the layer and model names handed out so far (Keras's clear_session)."""
    _uids.clear()
    _taken.clear()
