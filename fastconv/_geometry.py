"""Argument normalisation and output-shape arithmetic shared by `ops` and `reference`.

Both the C-backed ops and the NumPy reference accept the same argument forms
(ints or pairs for strides, TensorFlow's "same" padding, explicit paddings).
They resolve them here, once, into a frozen geometry object, so the two
implementations can never disagree about shapes.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

__all__ = [
    "Conv2DGeometry",
    "Pool2DGeometry",
    "conv2d_geometry",
    "pool2d_geometry",
    "as_pair",
]


# The largest stride, dilation, pool size or padding accepted. Larger values
# have no use, and bounding them keeps the kernels' 64-bit size arithmetic
# (sizes plus paddings, kernel extents, output sizes) far from overflow.
MAX_PARAM = 2**31 - 1

# More output elements than this cannot exist: NumPy cannot even address as
# many bytes of float64.
_MAX_OUTPUT_ELEMENTS = 2**60


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as ``(h, w)`` ints, each in ``[minimum, MAX_PARAM]``.

    Accepts an int or a sequence of two ints. Raises ``ValueError`` (or
    ``TypeError`` for non-integers) naming the argument.
    """
    if _is_int(value):
        pair = (int(value), int(value))
    else:
        try:
            items = tuple(value)
        except TypeError:
            raise TypeError(
                f"{name} must be an int or a pair of ints, got {value!r}"
            ) from None
        if len(items) != 2 or not all(_is_int(v) for v in items):
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    if pair[0] > MAX_PARAM or pair[1] > MAX_PARAM:
        raise ValueError(f"{name} must be at most {MAX_PARAM}, got {value!r}")
    return pair


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same": output ceil(size / stride), smaller half first."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding, in_hw, kernel_hw, stride_hw, dilation_hw):
    """Return ``((top, bottom), (left, right))`` for any accepted padding form."""
    if isinstance(padding, str):
        word = padding.lower()
        if word == "valid":
            return (0, 0), (0, 0)
        if word == "same":
            return (
                _same_padding(in_hw[0], kernel_hw[0], stride_hw[0], dilation_hw[0]),
                _same_padding(in_hw[1], kernel_hw[1], stride_hw[1], dilation_hw[1]),
            )
        raise ValueError(
            f"padding must be 'valid', 'same', an int, (ph, pw) or "
            f"((top, bottom), (left, right)), got {padding!r}"
        )
    if _is_int(padding):
        p = int(padding)
        pads = ((p, p), (p, p))
    else:
        try:
            items = tuple(padding)
        except TypeError:
            raise TypeError(
                f"padding must be 'valid', 'same', an int or a sequence, got {padding!r}"
            ) from None
        if len(items) == 2 and all(_is_int(v) for v in items):
            pads = ((int(items[0]),) * 2, (int(items[1]),) * 2)
        elif (
            len(items) == 2
            and all(not isinstance(v, str) and hasattr(v, "__len__") and len(v) == 2 for v in items)
            and all(_is_int(p) for v in items for p in v)
        ):
            pads = tuple((int(v[0]), int(v[1])) for v in items)
        else:
            raise ValueError(
                f"padding must be 'valid', 'same', an int, (ph, pw) or "
                f"((top, bottom), (left, right)), got {padding!r}"
            )
    if min(pads[0] + pads[1]) < 0:
        raise ValueError(f"padding must not be negative, got {padding!r}")
    if max(pads[0] + pads[1]) > MAX_PARAM:
        raise ValueError(f"padding must be at most {MAX_PARAM}, got {padding!r}")
    return pads


def _check_shape(shape, ndim: int, name: str, layout: str) -> tuple[int, ...]:
    if len(shape) != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions {layout}, got shape {tuple(shape)}"
        )
    return tuple(int(s) for s in shape)


def _out_size(size: int, pad: int, extent: int, stride: int) -> int:
    return (size + pad - extent) // stride + 1


def _check_output(shape: tuple[int, ...], x_shape, padding) -> None:
    """A ValueError, rather than NumPy's, for an output no machine can hold."""
    elements = 1
    for size in shape:
        elements *= max(size, 1)  # as NumPy counts, even for an empty array
    if elements >= _MAX_OUTPUT_ELEMENTS:
        raise ValueError(
            f"the output would have shape {shape}, too large to allocate "
            f"(x of shape {tuple(x_shape)}, padding {padding!r})"
        )


@dataclass(frozen=True)
class Conv2DGeometry:
    """Every size of one convolution, in the fixed names used in C and Python."""

    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    f: int
    sh: int
    sw: int
    dh: int
    dw: int
    pt: int
    pb: int
    pl: int
    pr: int
    ho: int
    wo: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.c)

    @property
    def w_shape(self) -> tuple[int, int, int, int]:
        return (self.kh, self.kw, self.c, self.f)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.ho, self.wo, self.f)

    @property
    def flops(self) -> int:
        """Multiply-adds times two of one pass (forward, or either backward)."""
        return 2 * self.n * self.ho * self.wo * self.f * self.c * self.kh * self.kw


def conv2d_geometry(x_shape, w_shape, stride=1, padding="valid", dilation=1) -> Conv2DGeometry:
    """Validate convolution arguments and compute the output size.

    x_shape is ``(n, h, w, c)`` (NHWC), w_shape is ``(kh, kw, c, f)`` (HWIO).
    """
    n, h, w, c = _check_shape(x_shape, 4, "x", "(n, h, w, c)")
    kh, kw, wc, f = _check_shape(w_shape, 4, "w", "(kh, kw, c, f)")
    if wc != c:
        raise ValueError(
            f"w has {wc} input channels (shape {tuple(w_shape)}) but x has {c} "
            f"(shape {tuple(x_shape)}); expected w of shape ({kh}, {kw}, {c}, {f})"
        )
    if min(kh, kw) < 1:
        raise ValueError(f"w must have a kernel of at least 1x1, got shape {tuple(w_shape)}")
    sh, sw = as_pair(stride, "stride")
    dh, dw = as_pair(dilation, "dilation")
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), (kh, kw), (sh, sw), (dh, dw))
    eh, ew = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if eh > h + pt + pb or ew > w + pl + pr:
        raise ValueError(
            f"w's kernel of extent {eh}x{ew} (size {kh}x{kw}, dilation {dh}x{dw}) is larger "
            f"than the padded input {h + pt + pb}x{w + pl + pr} (x of shape {tuple(x_shape)})"
        )
    ho = _out_size(h, pt + pb, eh, sh)
    wo = _out_size(w, pl + pr, ew, sw)
    _check_output((n, ho, wo, f), x_shape, padding)
    return Conv2DGeometry(n, h, w, c, kh, kw, f, sh, sw, dh, dw, pt, pb, pl, pr, ho, wo)


@dataclass(frozen=True)
class Pool2DGeometry:
    """Every size of one pooling window sweep."""

    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pb: int
    pl: int
    pr: int
    ho: int
    wo: int

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.h, self.w, self.c)

    @property
    def y_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.ho, self.wo, self.c)


# Max pooling's argmax (`max_pool2d(..., return_argmax=True)`), one byte per
# output: the number of the window cell its gradient goes to, plus
# POOL_ARGMAX_POSITIVE where the window's maximum is positive. The C kernels
# use the same (FC_POOL_POSITIVE, FC_POOL_ARGMAX_MAX_CELLS in fastconv.h).
POOL_ARGMAX_POSITIVE = 128
POOL_ARGMAX_MAX_CELLS = 128


def check_argmax_window(g: Pool2DGeometry, name: str) -> None:
    """Refuse windows too large for a one-byte argmax, naming the argument."""
    if g.kh * g.kw > POOL_ARGMAX_MAX_CELLS:
        raise ValueError(
            f"{name} needs pooling windows of at most {POOL_ARGMAX_MAX_CELLS} cells, "
            f"got pool_size {g.kh}x{g.kw}"
        )


def pool2d_geometry(x_shape, pool_size=2, strides=None, padding="valid") -> Pool2DGeometry:
    """Validate pooling arguments; ``strides=None`` means ``pool_size``.

    Each side's padding must be smaller than the window, so that every window
    holds at least one real cell.
    """
    n, h, w, c = _check_shape(x_shape, 4, "x", "(n, h, w, c)")
    if h < 1 or w < 1:
        raise ValueError(f"x must have a height and width of at least 1, got shape {tuple(x_shape)}")
    kh, kw = as_pair(pool_size, "pool_size")
    sh, sw = (kh, kw) if strides is None else as_pair(strides, "strides")
    (pt, pb), (pl, pr) = resolve_padding(padding, (h, w), (kh, kw), (sh, sw), (1, 1))
    if max(pt, pb) >= kh or max(pl, pr) >= kw:
        raise ValueError(
            f"padding must be smaller than pool_size {kh}x{kw} on every side, "
            f"got ((top, bottom), (left, right)) = {((pt, pb), (pl, pr))}"
        )
    if kh > h + pt + pb or kw > w + pl + pr:
        raise ValueError(
            f"pool_size {kh}x{kw} is larger than the padded input {h + pt + pb}x{w + pl + pr}"
        )
    ho = _out_size(h, pt + pb, kh, sh)
    wo = _out_size(w, pl + pr, kw, sw)
    _check_output((n, ho, wo, c), x_shape, padding)
    return Pool2DGeometry(n, h, w, c, kh, kw, sh, sw, pt, pb, pl, pr, ho, wo)

