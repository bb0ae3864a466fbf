"""The functional API over fastconv's C kernels.

Activations are NHWC ``(n, h, w, c)``, weights HWIO ``(kh, kw, c, f)``.
Array-likes of real dtype are converted to C-contiguous float32 (copied only
when needed); outputs are new float32 arrays. `fastconv.reference` has the
same functions in plain NumPy.

Every function takes ``n_threads=None``: None means the global setting
(`fastconv.set_num_threads`, by default ``$OMP_NUM_THREADS`` or the number of
processors). Results do not depend on the number of threads.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from fastconv import _kernels, _random
from fastconv._relu import leaky_relu_arguments
from fastconv._geometry import check_argmax_window, conv2d_geometry, pool2d_geometry

__all__ = [
    "conv2d",
    "conv2d_backward",
    "conv2d_max_pool2d",
    "conv2d_max_pool2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_backward_argmax",
    "avg_pool2d",
    "avg_pool2d_backward",
    "matmul",
    "dense",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "dropout",
    "batch_norm_statistics",
    "batch_norm",
    "batch_norm_backward",
]

_REAL_KINDS = "biuf"
_ACTIVATIONS = (None, "linear", "relu")


def _as_f32(value: ArrayLike, name: str) -> np.ndarray:
    """C-contiguous float32 view or copy of a real array-like."""
    if type(value) is np.ndarray and value.dtype == np.float32 and value.flags.c_contiguous:
        return value
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:  # ragged nesting, a broken __array__
        kind = ValueError if isinstance(error, ValueError) else TypeError
        raise kind(f"{name} could not be read as an array: {error}") from None
    if array.dtype.kind not in _REAL_KINDS:
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    # Not np.ascontiguousarray: it makes a scalar 1-D, and (1,) fits a bias of one.
    return np.asarray(array, dtype=np.float32, order="C")


def _typed(value):
    """``value`` with the type of every item attached, as a cache key.

    1, 1.0 and True are equal and hash alike, but only the first is a valid
    stride or padding: untyped, a cached 1 would let 1.0 and True through.
    """
    if type(value) is tuple:
        return tuple(_typed(item) for item in value)
    return type(value), value


def _cached(resolve):
    """Memoise a geometry resolver on hashable arguments (the common case)."""

    @lru_cache(maxsize=256)
    def cached(key, args):
        return resolve(*args)

    def call(*args):
        key = _typed(args)
        try:
            hash(key)
        except TypeError:  # an unhashable argument, such as a list
            return resolve(*args)
        return cached(key, args)

    return call


def _conv_geometry(x_shape, w_shape, stride, padding, dilation):
    g = conv2d_geometry(x_shape, w_shape, stride, padding, dilation)
    return g, (g.sh, g.sw, g.dh, g.dw, g.pt, g.pb, g.pl, g.pr)


def _pool_geometry(x_shape, pool_size, strides, padding):
    g = pool2d_geometry(x_shape, pool_size, strides, padding)
    return g, (g.kh, g.kw, g.sh, g.sw, g.pt, g.pb, g.pl, g.pr)


_conv_params = _cached(_conv_geometry)
_pool_params = _cached(_pool_geometry)


def _check_dy(dy: np.ndarray, expected: tuple) -> None:
    if dy.shape != expected:
        raise ValueError(
            f"dy must have the forward output's shape {expected}, got {dy.shape}"
        )


def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride=1,
    padding="valid",
    dilation=1,
    activation: str | None = None,
    n_threads: int | None = None,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in Keras and PyTorch).

    Parameters
    ----------
    x : array of shape (n, h, w, c)
    w : array of shape (kh, kw, c, f)
    b : array of shape (f,), optional
    stride, dilation : int or (int, int)
    padding : "valid", "same" (TensorFlow's rule), int, (ph, pw) or
        ((top, bottom), (left, right))
    activation : None, "linear" or "relu"; "relu" is fused into the kernel.

    Returns
    -------
    y : ndarray of shape (n, ho, wo, f), float32
    """
    x, w, b, _, params = _conv_inputs(x, w, b, stride, padding, dilation, activation)
    return _kernels.conv2d_forward(x, w, b, params, activation == "relu", n_threads)


def _conv_inputs(x, w, b, stride, padding, dilation, activation):
    """A forward convolution's arguments checked: (x, w, b as float32, its
    geometry, the kernels' params)."""
    x = _as_f32(x, "x")
    w = _as_f32(w, "w")
    g, params = _conv_params(x.shape, w.shape, stride, padding, dilation)
    if b is not None:
        b = _as_f32(b, "b")
        if b.shape != (g.f,):
            raise ValueError(f"b must have shape ({g.f},), got {b.shape}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    return x, w, b, g, params


def conv2d_max_pool2d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride=1,
    padding="valid",
    dilation=1,
    activation: str | None = None,
    pool_size=2,
    pool_strides=None,
    pool_padding="valid",
    dropout=None,
    return_argmax: bool = False,
    n_threads: int | None = None,
):
    """``max_pool2d(conv2d(x, w, b, ...), pool_size, ...)`` in one call, the
    same bits (and with ``return_argmax``, the same argmax).

    Layers on few input channels (the direct kernels: a network's first, on
    grey or RGB images) pooled by windows that do not overlap vertically
    compute the convolution a pooled row at a time in cache and never write
    its output to memory (the default MNIST model's first layer and pooling,
    forward with argmax: 0.58 -> 0.42 ms on 2 cores); so do 3x3 and 5x5
    layers of the Winograd method pooled by 2x2 windows, stride 2, unpadded,
    in its output transform (the Keras example's second layer and pooling,
    with argmax and dropout: 5.27 -> 4.62 ms). Other layers go through the
    convolution's output. Arguments as `conv2d` and `max_pool2d` (``pool_*``
    for the pooling's).
    """
    x, w, b, g, conv_params = _conv_inputs(x, w, b, stride, padding, dilation, activation)
    pool, pool_params = _pool_params(g.y_shape, pool_size, pool_strides, pool_padding)
    if return_argmax:
        check_argmax_window(pool, "return_argmax")
    return _kernels.conv2d_max_pool2d_forward(
        x, w, b, conv_params, activation == "relu", pool_params, n_threads,
        _dropout_args(dropout), bool(return_argmax)
    )


def conv2d_max_pool2d_backward(
    dy: ArrayLike,
    argmax: np.ndarray,
    x: ArrayLike,
    w: ArrayLike,
    *,
    stride=1,
    padding="valid",
    dilation=1,
    activation: str | None = None,
    pool_size=2,
    pool_strides=None,
    pool_padding="valid",
    dropout=None,
    input_grad: bool = True,
    relu: bool = False,
    n_threads: int | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """The gradients of `conv2d_max_pool2d` from its argmax: ``conv2d_backward(
    max_pool2d_backward_argmax(dy, argmax, z.shape, ..., relu=activation ==
    'relu', dropout=dropout), x, w, ..., input_grad=input_grad, relu=relu)``,
    z the convolution's output, bit for bit.

    dy is the gradient of the pooled output; the arguments are the forward's
    (``activation="relu"``: the convolution's ReLU, whose gradient the pooling
    takes) and `conv2d_backward`'s (``relu=True``: x is a ReLU's output and dx
    the gradient of its input). The 3x3 layers whose two gradients come from
    one pass of the Winograd method, pooled by 2x2 windows, stride 2,
    unpadded, read z's gradient a tile at a time from dy and argmax and never
    write it (the Keras example's second layer: 18.9 MB neither written nor
    read back; both passes 11.4 -> 10.0 ms on 2 cores). Returns ``(dx or
    None, dw, db)``.
    """
    dy = _as_f32(dy, "dy")
    x = _as_f32(x, "x")
    w = _as_f32(w, "w")
    g, conv_params = _conv_params(x.shape, w.shape, stride, padding, dilation)
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    pool, pool_params = _pool_params(g.y_shape, pool_size, pool_strides, pool_padding)
    argmax = _checked_argmax(argmax, dy, pool)
    return _kernels.conv2d_max_pool2d_backward(
        dy, argmax, x, w, conv_params, activation == "relu", pool_params, n_threads,
        _dropout_args(dropout), bool(input_grad), bool(relu)
    )


def conv2d_backward(
    dy: ArrayLike,
    x: ArrayLike,
    w: ArrayLike,
    *,
    stride=1,
    padding="valid",
    dilation=1,
    input_grad: bool = True,
    relu: bool = False,
    n_threads: int | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``sum(conv2d(x, w, b) * dy)``.

    ``input_grad=False`` skips dx (returned as None): a network's first layer
    never needs it. With ``relu=True``, x is a ReLU's output ``relu(z)`` and
    dx is the gradient with respect to ``z`` instead, ``relu_backward(dx, x)``,
    in the pass that writes dx where the method allows (3x3 and 5x5 layers of
    16 or more channels).

    Returns
    -------
    dx : ndarray of shape (n, h, w, c), or None
    dw : ndarray of shape (kh, kw, c, f)
    db : ndarray of shape (f,), the sum of dy over n, h and w (also when the
        forward pass had no bias)
    """
    dy = _as_f32(dy, "dy")
    x = _as_f32(x, "x")
    w = _as_f32(w, "w")
    g, params = _conv_params(x.shape, w.shape, stride, padding, dilation)
    _check_dy(dy, g.y_shape)
    return _kernels.conv2d_backward(dy, x, w, params, input_grad, n_threads, bool(relu))


def _dropout_args(dropout):
    """The kernels' (seed, threshold, scale) of ``dropout=(rate, seed)``, or None."""
    if dropout is None:
        return None
    if not isinstance(dropout, tuple) or len(dropout) != 2:
        raise TypeError(f"dropout must be None or a (rate, seed) pair, got {dropout!r}")
    rate, seed = dropout
    return (_random.dropout_seed(seed), _random.dropout_threshold(rate),
            1.0 / (1.0 - float(rate)))


def _pool_forward(kind, x, pool_size, strides, padding, n_threads, dropout=None,
                  return_argmax=False):
    x = _as_f32(x, "x")
    g, params = _pool_params(x.shape, pool_size, strides, padding)
    if return_argmax:
        check_argmax_window(g, "return_argmax")
    return _kernels.pool2d_forward(kind, x, params, n_threads, _dropout_args(dropout),
                                   bool(return_argmax))


def _pool_backward(kind, dy, x, pool_size, strides, padding, n_threads, relu=False, dropout=None):
    dy = _as_f32(dy, "dy")
    x = _as_f32(x, "x")
    g, params = _pool_params(x.shape, pool_size, strides, padding)
    _check_dy(dy, g.y_shape)
    return _kernels.pool2d_backward(kind, x, dy, params, n_threads, relu, _dropout_args(dropout))


def max_pool2d(x, pool_size=2, *, strides=None, padding="valid", dropout=None,
               return_argmax=False, n_threads=None):
    """Max pooling of x ``(n, h, w, c)`` to ``(n, ho, wo, c)``.

    ``strides=None`` means ``pool_size``. Padding cells count as -inf; NaN
    propagates. With ``dropout=(rate, seed)``, the output goes through
    ``dropout(y, rate, seed)`` in the same pass (the same bits).

    With ``return_argmax=True`` (windows of at most 128 cells), returns
    ``(y, argmax)``: argmax (uint8, y's shape) is the cell each window's
    gradient goes to, numbered row-major in the window, plus 128 where the
    maximum is positive, as `fastconv.reference.max_pool2d` describes it.
    `max_pool2d_backward_argmax` then reads one byte per output instead of
    the whole input.
    """
    return _pool_forward("max", x, pool_size, strides, padding, n_threads, dropout,
                         return_argmax)


def max_pool2d_backward(
    dy, x, pool_size=2, *, strides=None, padding="valid", relu=False, dropout=None,
    n_threads=None
) -> np.ndarray:
    """Gradient of max pooling: each window's dy goes to its first maximum
    (row-major window order), or to its first NaN. Returns dx ``(n, h, w, c)``.

    With ``relu=True``, x is a ReLU's output ``relu(z)`` and the result is the
    gradient with respect to ``z``, ``relu_backward(dx, x)``, in the same pass:
    a window whose maximum is not positive passes nothing. With
    ``dropout=(rate, seed)``, dy is the gradient of the forward's dropout
    output (as `max_pool2d`'s): ``dropout(dy, rate, seed)`` is taken in the
    same pass.
    """
    return _pool_backward("max", dy, x, pool_size, strides, padding, n_threads, bool(relu),
                          dropout)


def _checked_argmax(argmax, dy, g) -> np.ndarray:
    """A pooling's argmax and its output gradient dy checked against its
    geometry g; argmax as a C-contiguous array."""
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.uint8:
        got = getattr(argmax, "dtype", type(argmax))
        raise TypeError(f"argmax must be max_pool2d's uint8 array, got {got}")
    check_argmax_window(g, "argmax")
    _check_dy(dy, g.y_shape)
    if argmax.shape != g.y_shape:
        raise ValueError(f"argmax must have shape {g.y_shape}, got {argmax.shape}")
    return np.ascontiguousarray(argmax)


def max_pool2d_backward_argmax(
    dy, argmax, x_shape, pool_size=2, *, strides=None, padding="valid", relu=False,
    dropout=None, n_threads=None
) -> np.ndarray:
    """`max_pool2d_backward` from the argmax of ``max_pool2d(x, ...,
    return_argmax=True)`` and x's shape ``(n, h, w, c)``, instead of x: the
    same dx, bit for bit. ``relu`` and ``dropout`` as there."""
    dy = _as_f32(dy, "dy")
    g, params = _pool_params(x_shape, pool_size, strides, padding)
    argmax = _checked_argmax(argmax, dy, g)
    return _kernels.max_pool2d_backward_argmax(
        argmax, dy, g.x_shape, params, n_threads, bool(relu), _dropout_args(dropout)
    )


def avg_pool2d(x, pool_size=2, *, strides=None, padding="valid", dropout=None,
               n_threads=None) -> np.ndarray:
    """Average pooling; padded cells are left out of each window's count.
    ``dropout`` as for `max_pool2d`."""
    return _pool_forward("avg", x, pool_size, strides, padding, n_threads, dropout)


def avg_pool2d_backward(
    dy, x, pool_size=2, *, strides=None, padding="valid", relu=False, dropout=None,
    n_threads=None
) -> np.ndarray:
    """Gradient of average pooling. Returns dx ``(n, h, w, c)``. ``relu``
    and ``dropout`` as for `max_pool2d_backward` (x is read only with relu:
    the mask of the ReLU that produced it)."""
    return _pool_backward("avg", dy, x, pool_size, strides, padding, n_threads, bool(relu),
                          dropout)


def _stored(array: ArrayLike, name: str) -> tuple[np.ndarray, bool]:
    """A 2-D float32 operand as (C-contiguous storage, transposed?).

    A transposed view of a C-contiguous matrix, such as ``x.T``, is passed as
    its storage with a transpose flag, so the GEMM reads it without a copy.
    """
    if (
        type(array) is np.ndarray
        and array.ndim == 2
        and array.dtype == np.float32
        and array.flags.f_contiguous
        and not array.flags.c_contiguous
    ):
        return array.T, True
    array = _as_f32(array, name)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {array.shape}")
    return array, False


def matmul(a: ArrayLike, b: ArrayLike, *, n_threads: int | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays on fastconv's packed GEMM.

    a : (m, k), b : (k, n) -> (m, n) float32. Transposed views (``x.T``) are
    read in place, not copied.
    """
    a_stored, trans_a = _stored(a, "a")
    b_stored, trans_b = _stored(b, "b")
    a_shape = a_stored.shape[::-1] if trans_a else a_stored.shape
    b_shape = b_stored.shape[::-1] if trans_b else b_stored.shape
    if a_shape[1] != b_shape[0]:
        raise ValueError(f"a's columns must match b's rows, got a {a_shape} and b {b_shape}")
    return _kernels.gemm(a_stored, b_stored, None, False, n_threads, trans_a, trans_b)


def dense(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    activation: str | None = None,
    n_threads: int | None = None,
) -> np.ndarray:
    """``x @ w + b`` with an optional fused ReLU (a Dense layer's forward pass).

    x : (m, k), w : (k, n), b : (n,) or None -> (m, n) float32
    """
    x = _as_f32(x, "x")
    w = _as_f32(w, "w")
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(
            f"x must be (m, k) and w (k, n) with matching k, got x {x.shape} and w {w.shape}"
        )
    if b is not None:
        b = _as_f32(b, "b")
        if b.shape != (w.shape[1],):
            raise ValueError(f"b must have shape ({w.shape[1]},), got {b.shape}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    return _kernels.gemm(x, w, b, activation == "relu", n_threads)


def _output_like(like: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """A new float32 array shaped like ``like``, or ``out`` checked to be one
    the kernels can write: a writeable C-contiguous float32 array of that shape."""
    if out is None:
        # From the kernels' buffer pool, as their outputs: a fresh block of
        # some MB faults in every page on first touch (a leaky ReLU over 33.5
        # MB took 4.8 ms so, 1.5 into memory already mapped).
        return _kernels.empty(like.shape)
    if not (
        type(out) is np.ndarray
        and out.dtype == np.float32
        and out.flags.c_contiguous
        and out.flags.writeable
        and out.shape == like.shape
    ):
        raise ValueError(
            f"out must be a writeable C-contiguous float32 array of shape {like.shape}, got "
            f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}".rstrip()
        )
    return out


def _check_no_overlap(out: np.ndarray, out_name: str, other: np.ndarray, other_name: str, *,
                      same_ok: tuple[np.ndarray, str]) -> None:
    """Raises ValueError unless ``out`` shares no memory with ``other`` and
    either is ``same_ok``'s array itself or shares none with it either."""
    alias, alias_name = same_ok
    if np.may_share_memory(out, other):
        raise ValueError(f"{out_name} must not overlap {other_name}")
    same = (out.__array_interface__["data"][0] == alias.__array_interface__["data"][0]
            and out.shape == alias.shape and alias.flags.c_contiguous)
    if not same and np.may_share_memory(out, alias):
        raise ValueError(
            f"{out_name} may be {alias_name} itself but must not otherwise overlap it")


def relu_backward(dy: ArrayLike, y: ArrayLike, *, out: np.ndarray | None = None,
                  n_threads: int | None = None) -> np.ndarray:
    """Gradient through a ReLU, from its output ``y``: ``dy`` where ``y > 0``,
    else 0 (also where ``dy`` is infinite, and where ``y`` is NaN).

    ``out``, when given, receives the result and is returned: a C-contiguous,
    writeable float32 array of ``dy``'s shape, which may be ``dy`` itself (an
    in-place update, as layers do) but must not otherwise overlap ``dy`` or
    ``y``.
    """
    dy = _as_f32(dy, "dy")
    y = _as_f32(y, "y")
    if y.shape != dy.shape:
        raise ValueError(f"y must have dy's shape {dy.shape}, got {y.shape}")
    out = _output_like(dy, out)
    _kernels.relu_backward(dy.reshape(-1), y.reshape(-1), out.reshape(-1), n_threads)
    return out


def leaky_relu(x: ArrayLike, negative_slope: float, *, max_value: float | None = None,
               out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
    """The leaky ReLU, optionally capped: ``x`` where ``x > 0``,
    ``negative_slope * x`` elsewhere, then ``max_value`` wherever that is
    above it (Keras's ``ReLU(max_value, negative_slope)`` and ``LeakyReLU``;
    a slope of 0 is the ReLU, and gives 0 for -inf, not NaN). NaN stays NaN.

    ``out``, when given, receives the result and is returned: a C-contiguous,
    writeable float32 array of ``x``'s shape, which may be ``x`` itself.
    """
    negative_slope, cap = leaky_relu_arguments(negative_slope, max_value)
    x = _as_f32(x, "x")
    out = _output_like(x, out)
    _kernels.leaky_relu(x.reshape(-1), out.reshape(-1), negative_slope, cap, n_threads)
    return out


def leaky_relu_backward(dy: ArrayLike, y: ArrayLike, negative_slope: float, *,
                        max_value: float | None = None, out: np.ndarray | None = None,
                        n_threads: int | None = None) -> np.ndarray:
    """Gradient through `leaky_relu`, from its output ``y``: 0 where a cap is
    set and ``y >= max_value``, else ``dy`` where ``y > 0``, else
    ``negative_slope * dy`` (at 0 too, as TensorFlow and PyTorch take it; 0
    for a slope of 0, even where ``dy`` is infinite).

    ``out``, when given, receives the result and is returned: a C-contiguous,
    writeable float32 array of ``dy``'s shape, which may be ``dy`` itself but
    must not otherwise overlap ``dy`` or ``y``.
    """
    negative_slope, cap = leaky_relu_arguments(negative_slope, max_value)
    dy = _as_f32(dy, "dy")
    y = _as_f32(y, "y")
    if y.shape != dy.shape:
        raise ValueError(f"y must have dy's shape {dy.shape}, got {y.shape}")
    out = _output_like(dy, out)
    _kernels.leaky_relu_backward(dy.reshape(-1), y.reshape(-1), out.reshape(-1),
                                 negative_slope, cap, n_threads)
    return out


def dropout(x: ArrayLike, rate: float, seed: int, *, out: np.ndarray | None = None,
            n_threads: int | None = None) -> np.ndarray:
    """Inverted dropout with the mask of ``seed``: ``x * keep / (1 - rate)``,
    each element kept with probability ``1 - rate``.

    The mask is a function of (seed, element index), computed in one threaded
    sweep; the same call on the output's gradient, with the same seed, is the
    backward pass. `fastconv.reference.dropout` gives the same result bit for
    bit. A dropped infinite or NaN element gives NaN (``x * 0``), as NumPy's
    ``x * mask`` does.

    ``out``, when given, receives the result and is returned: a C-contiguous,
    writeable float32 array of ``x``'s shape, which may be ``x`` itself.
    """
    threshold = _random.dropout_threshold(rate)
    seed = _random.dropout_seed(seed)
    x = _as_f32(x, "x")
    out = _output_like(x, out)
    scale = 1.0 / (1.0 - float(rate))
    _kernels.dropout(x.reshape(-1), out.reshape(-1), seed, threshold, scale, n_threads)
    return out


def _channel_rows(x: np.ndarray, name: str) -> tuple[int, int]:
    """Rows and channels of x taken as (rows, channels), channels last."""
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(
            f"{name} must have at least one channel on its last axis, got shape {x.shape}"
        )
    return x.size // x.shape[-1], x.shape[-1]


def _per_channel(value: ArrayLike, c: int, name: str) -> np.ndarray:
    v = _as_f32(value, name)
    if v.shape != (c,):
        raise ValueError(f"{name} must have shape ({c},), got {v.shape}")
    return v


def batch_norm_statistics(x: ArrayLike, *, n_threads: int | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (biased) variance of each channel (the last axis) of ``x`` over
    all its other axes: the batch statistics of a batch normalisation.

    Summed in double over fixed chunks of rows, the variance around the mean:
    the same bits for any thread count. Returns ``(mean, var)``, each ``(c,)``.
    """
    x = _as_f32(x, "x")
    m, c = _channel_rows(x, "x")
    if m == 0:
        raise ValueError(f"x must have at least one row to average, got shape {x.shape}")
    mean, var = np.empty(c, np.float32), np.empty(c, np.float32)
    _kernels.batch_norm_statistics(x.reshape(m, c), mean, var, n_threads)
    return mean, var


def batch_norm(x: ArrayLike, mean: ArrayLike, inv_std: ArrayLike, gamma: ArrayLike,
               beta: ArrayLike, *, relu: bool = False, out: np.ndarray | None = None,
               n_threads: int | None = None) -> np.ndarray:
    """``(x - mean) * (inv_std * gamma) + beta`` per channel (the last axis):
    a batch normalisation's forward pass, with the batch's statistics
    (`batch_norm_statistics`) or the moving ones, ``inv_std = 1 / sqrt(var +
    epsilon)``; with ``relu``, then ``max(y, 0)`` in the same pass (as
    `leaky_relu` with a slope of 0 takes it: NaN stays).

    ``out``, when given, receives the result: a C-contiguous, writeable float32
    array of ``x``'s shape, which may be ``x`` itself.
    """
    x = _as_f32(x, "x")
    m, c = _channel_rows(x, "x")
    mean = _per_channel(mean, c, "mean")
    inv_std = _per_channel(inv_std, c, "inv_std")
    gamma = _per_channel(gamma, c, "gamma")
    beta = _per_channel(beta, c, "beta")
    out = _output_like(x, out)
    _kernels.batch_norm_forward(x.reshape(m, c), mean, inv_std, gamma, beta, out.reshape(m, c),
                                bool(relu), n_threads)
    return out


def batch_norm_backward(dy: ArrayLike, x: ArrayLike, mean: ArrayLike, inv_std: ArrayLike,
                        gamma: ArrayLike, *, relu_beta: ArrayLike | None = None,
                        out: np.ndarray | None = None, n_threads: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``y = (x - mean) * inv_std * gamma + beta`` where ``mean``
    and ``inv_std = 1 / sqrt(var + epsilon)`` are ``x``'s own batch statistics
    (`batch_norm_statistics`), so that they depend on ``x`` too.

    With ``xhat = (x - mean) * inv_std`` over m rows: ``dgamma = sum(dy *
    xhat)``, ``dbeta = sum(dy)`` (summed in double, the same bits for any
    thread count) and ``dx = gamma * inv_std * (dy - dbeta / m - xhat *
    dgamma / m)``. Returns ``(dx, dgamma, dbeta)``.

    Given ``relu_beta``, the forward's ``beta``, the gradients are those of
    ``batch_norm(..., relu=True)``: ``dy`` is first taken as 0 where that
    output is not positive (recomputed from ``x``, the same bits as the
    forward's), as `relu_backward` would, in the same passes.

    ``out``, when given, receives ``dx``: a C-contiguous, writeable float32
    array of ``x``'s shape, which may be ``dy`` itself (dy is read in full
    before dx is written; in place, as the layer runs it, a 16.8 MB dx is
    stored without first reading its cold lines in) but must not otherwise
    overlap ``dy`` or ``x``.
    """
    dy = _as_f32(dy, "dy")
    x = _as_f32(x, "x")
    m, c = _channel_rows(x, "x")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have x's shape {x.shape}, got {dy.shape}")
    mean = _per_channel(mean, c, "mean")
    inv_std = _per_channel(inv_std, c, "inv_std")
    gamma = _per_channel(gamma, c, "gamma")
    if relu_beta is not None:
        relu_beta = _per_channel(relu_beta, c, "relu_beta")
    dx = _output_like(x, out)
    _check_no_overlap(dx, "out", x, "x", same_ok=(dy, "dy"))
    dgamma, dbeta = np.empty(c, np.float32), np.empty(c, np.float32)
    _kernels.batch_norm_backward(dy.reshape(m, c), x.reshape(m, c), mean, inv_std, gamma,
                                 dx.reshape(m, c), dgamma, dbeta, relu_beta, n_threads)
    return dx, dgamma, dbeta

