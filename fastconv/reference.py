"""Plain NumPy versions of every op: the correctness oracle and the naive baseline.

Every function here has the same signature and meaning as its counterpart in
`fastconv.ops`, but is written for a reader rather than for speed: each op is
a loop over the kernel (or pooling window) taps, and each tap is one NumPy
product or elementwise step over a strided slice of the whole batch. There
are no loops over pixels, so the module doubles as the "naive NumPy" speed
baseline without being absurdly slow.

Layouts are the package's fixed ones: activations NHWC ``(n, h, w, c)``,
weights HWIO ``(kh, kw, c, f)``, outputs ``(n, ho, wo, f)``. Argument forms
(strides, dilations, "valid" / "same" / explicit padding) are resolved by
`fastconv._geometry`, which the C-backed ops share, so the two can never
disagree about shapes.

Dtypes: unlike the float32-only kernels, these functions also run in float64,
so that their gradients can be checked by finite differences. A call computes
in float64 if any of its array arguments is float64 (a list of Python floats
counts, as NumPy reads it as float64) and in float32 otherwise; integer,
boolean, float16 and other real inputs are converted to float32. Complex,
object, string and other non-real dtypes raise ``TypeError``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fastconv import _random
from fastconv._relu import leaky_relu_arguments
from fastconv._geometry import (
    POOL_ARGMAX_POSITIVE,
    Conv2DGeometry,
    Pool2DGeometry,
    check_argmax_window,
    conv2d_geometry,
    pool2d_geometry,
)

__all__ = [
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "max_pool2d_backward_argmax",
    "avg_pool2d",
    "avg_pool2d_backward",
    "matmul",
    "relu_backward",
    "leaky_relu",
    "leaky_relu_backward",
    "dropout",
    "batch_norm_statistics",
    "batch_norm",
    "batch_norm_backward",
]

# NumPy dtype kinds that hold real numbers: bool, signed, unsigned, float.
_REAL_KINDS = "biuf"


def _as_float_arrays(*named: tuple[ArrayLike, str]) -> list[np.ndarray]:
    """Convert ``(value, name)`` pairs to arrays of one common float dtype.

    float64 wins if any argument is float64, so a finite-difference check
    run in float64 is not silently rounded to float32 by a float32 argument.
    """
    arrays = []
    for value, name in named:
        array = np.asarray(value)
        if array.dtype.kind not in _REAL_KINDS:
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        arrays.append(array)
    dtype = np.float64 if any(a.dtype == np.float64 for a in arrays) else np.float32
    return [a.astype(dtype, copy=False) for a in arrays]


def _check_dy(dy: np.ndarray, expected: tuple[int, ...]) -> None:
    if dy.shape != tuple(expected):
        raise ValueError(
            f"dy must have the forward's output shape {tuple(expected)}, got shape {dy.shape}"
        )


def _pad(x: np.ndarray, g: Conv2DGeometry | Pool2DGeometry, value: float) -> np.ndarray:
    """Pad the two spatial axes of ``x`` (n, h, w, c) by ``g``'s four paddings."""
    return np.pad(
        x, ((0, 0), (g.pt, g.pb), (g.pl, g.pr), (0, 0)), mode="constant", constant_values=value
    )


def _crop(xp: np.ndarray, g: Conv2DGeometry | Pool2DGeometry) -> np.ndarray:
    """Undo `_pad`: the real ``(n, h, w, c)`` cells of a padded array."""
    return np.ascontiguousarray(xp[:, g.pt : g.pt + g.h, g.pl : g.pl + g.w, :])


def _tap(
    g: Conv2DGeometry | Pool2DGeometry, ki: int, kj: int, dh: int = 1, dw: int = 1
) -> tuple[slice, slice, slice]:
    """Slices over (n, h, w) of a padded input that tap (ki, kj) reads.

    Element ``[:, i, j]`` of the slice is padded cell
    ``(i * sh + ki * dh, j * sw + kj * dw)``: the cell that tap meets in
    output position (i, j). Within one tap the cells are all distinct, so
    ``xp[_tap(...)] += ...`` scatters without collisions.
    """
    rows = slice(ki * dh, ki * dh + (g.ho - 1) * g.sh + 1, g.sh)
    cols = slice(kj * dw, kj * dw + (g.wo - 1) * g.sw + 1, g.sw)
    return slice(None), rows, cols


def _real_cells(g: Pool2DGeometry) -> np.ndarray:
    """Boolean ``(h + pt + pb, w + pl + pr)`` map, True on cells that are not padding."""
    real = np.zeros((g.h + g.pt + g.pb, g.w + g.pl + g.pr), dtype=bool)
    real[g.pt : g.pt + g.h, g.pl : g.pl + g.w] = True
    return real


def conv2d(
    x: ArrayLike,
    w: ArrayLike,
    b: ArrayLike | None = None,
    *,
    stride=1,
    padding="valid",
    dilation=1,
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in every deep-learning library).

    ``y[n, i, j, f] = b[f] + sum over ki, kj, c of
    xpad[n, i*sh + ki*dh, j*sw + kj*dw, c] * w[ki, kj, c, f]``,
    where ``xpad`` is ``x`` zero-padded by ``((pt, pb), (pl, pr))``.

    Parameters
    ----------
    x : array_like of shape (n, h, w, c)
        Input batch, NHWC.
    w : array_like of shape (kh, kw, c, f)
        Filters, HWIO.
    b : array_like of shape (f,), optional
        Bias added to every output position; None for no bias.
    stride : int or (sh, sw), default 1
    padding : "valid", "same", int, (ph, pw) or ((pt, pb), (pl, pr)), default "valid"
        "same" is TensorFlow's: output ``ceil(h / sh)``, the smaller half of
        the padding on top and left.
    dilation : int or (dh, dw), default 1

    Returns
    -------
    y : ndarray of shape (n, ho, wo, f), float32 or float64
    """
    named = [(x, "x"), (w, "w")] if b is None else [(x, "x"), (w, "w"), (b, "b")]
    arrays = _as_float_arrays(*named)
    x, w = arrays[0], arrays[1]
    g = conv2d_geometry(x.shape, w.shape, stride, padding, dilation)
    if b is not None:
        b = arrays[2]
        if b.shape != (g.f,):
            raise ValueError(f"b must have shape ({g.f},) (one per filter), got shape {b.shape}")

    xp = _pad(x, g, 0.0)
    y = np.zeros(g.y_shape, dtype=x.dtype)
    for ki in range(g.kh):
        for kj in range(g.kw):
            # (n, ho, wo, c) . (c, f): one GEMM per tap over the whole batch.
            y += np.tensordot(xp[_tap(g, ki, kj, g.dh, g.dw)], w[ki, kj], axes=1)
    if b is not None:
        y += b
    return y


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
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """Gradients of ``sum(conv2d(x, w, b, ...) * dy)`` with respect to x, w and b.

    Parameters
    ----------
    dy : array_like of shape (n, ho, wo, f)
        Gradient of the loss with respect to the forward's output.
    x : array_like of shape (n, h, w, c)
        The forward's input.
    w : array_like of shape (kh, kw, c, f)
        The forward's filters.
    stride, padding, dilation
        As given to `conv2d`.
    input_grad : bool, default True
        False skips dx and returns None in its place.
    relu : bool, default False
        ``x`` is a ReLU's output ``relu(z)``: dx is the gradient with respect
        to ``z`` instead, ``relu_backward(dx, x)``.

    Returns
    -------
    dx : ndarray of shape (n, h, w, c), or None
    dw : ndarray of shape (kh, kw, c, f)
    db : ndarray of shape (f,)
        ``dy`` summed over (n, ho, wo); returned whether or not the forward
        had a bias, since it does not depend on one.

    Raises
    ------
    ValueError
        If ``dy`` does not have the forward's output shape.
    """
    dy, x, w = _as_float_arrays((dy, "dy"), (x, "x"), (w, "w"))
    g = conv2d_geometry(x.shape, w.shape, stride, padding, dilation)
    _check_dy(dy, g.y_shape)

    xp = _pad(x, g, 0.0)
    dxp = np.zeros_like(xp)
    dw = np.empty(g.w_shape, dtype=x.dtype)
    for ki in range(g.kh):
        for kj in range(g.kw):
            tap = _tap(g, ki, kj, g.dh, g.dw)
            # Each tap's forward was y += patch @ w[ki, kj]; differentiate that GEMM.
            dw[ki, kj] = np.tensordot(xp[tap], dy, axes=([0, 1, 2], [0, 1, 2]))
            dxp[tap] += np.tensordot(dy, w[ki, kj], axes=([3], [1]))
    db = dy.sum(axis=(0, 1, 2))
    if not input_grad:
        return None, dw, db
    dx = _crop(dxp, g)
    return (relu_backward(dx, x, out=dx) if relu else dx), dw, db


def _dropped(a: np.ndarray, rate_seed) -> np.ndarray:
    """``dropout(a, rate, seed)`` for a pooling's ``dropout=(rate, seed)``."""
    if not isinstance(rate_seed, tuple) or len(rate_seed) != 2:
        raise TypeError(f"dropout must be None or a (rate, seed) pair, got {rate_seed!r}")
    rate, seed = rate_seed
    return dropout(a, rate, seed)


def max_pool2d(x: ArrayLike, pool_size=2, *, strides=None, padding="valid",
               dropout=None, return_argmax: bool = False):
    """Maximum over each pooling window, channel by channel.

    Padding cells count as -inf, so they never win against a real cell. NaN
    propagates: a window holding a NaN gives NaN.

    Parameters
    ----------
    x : array_like of shape (n, h, w, c)
    pool_size : int or (kh, kw), default 2
    strides : int or (sh, sw), optional
        Defaults to ``pool_size`` (windows that tile without overlap).
    padding : "valid", "same", int, (ph, pw) or ((pt, pb), (pl, pr)), default "valid"
        Each side's padding must be smaller than the window.
    dropout : (rate, seed), optional
        The output goes through ``dropout(y, rate, seed)`` (a Dropout layer
        right above the pooling).
    return_argmax : bool, default False
        Also return where each maximum is, for `max_pool2d_backward_argmax`.

    Returns
    -------
    y : ndarray of shape (n, ho, wo, c), float32 or float64
    argmax : ndarray of shape (n, ho, wo, c), uint8, with ``return_argmax``
        The cell `max_pool2d_backward` sends each window's gradient to,
        numbered row-major in the ``kh x kw`` window (padding included),
        plus 128 where the maximum is positive (a ReLU
        below passes the gradient). For windows of at most 128 cells.
    """
    (x,) = _as_float_arrays((x, "x"))
    g = pool2d_geometry(x.shape, pool_size, strides, padding)
    if return_argmax:
        check_argmax_window(g, "return_argmax")
    xp = _pad(x, g, -np.inf)
    y = np.full(g.y_shape, -np.inf, dtype=x.dtype)
    for ki in range(g.kh):
        for kj in range(g.kw):
            # np.maximum (unlike np.fmax) returns NaN when either side is NaN.
            np.maximum(y, xp[_tap(g, ki, kj)], out=y)
    if return_argmax:
        argmax = _chosen_cells(xp, y, g).astype(np.uint8)
        argmax[y > 0] |= POOL_ARGMAX_POSITIVE
    if dropout is not None:
        y = _dropped(y, dropout)
    return (y, argmax) if return_argmax else y


def _chosen_cells(xp: np.ndarray, y: np.ndarray, g: Pool2DGeometry) -> np.ndarray:
    """For each window of the padded input xp, whose maxima are y, the number
    (ki * kw + kj) of the first real cell, in row-major window order, that
    equals the maximum, or the first NaN."""
    y_nan = np.isnan(y)
    real = _real_cells(g)
    # Padding is excluded so that a window whose real cells are all -inf
    # still routes its gradient to a real cell.
    chosen = np.full(g.y_shape, -1, dtype=np.int64)
    for t in range(g.kh * g.kw):
        tap = _tap(g, t // g.kw, t % g.kw)
        window = xp[tap]
        hits = (window == y) | (np.isnan(window) & y_nan)
        hits &= real[tap[1:]][None, :, :, None]
        chosen[hits & (chosen < 0)] = t
    return chosen


def _scatter_to_cells(dy: np.ndarray, chosen: np.ndarray, g: Pool2DGeometry) -> np.ndarray:
    """dx: each window's dy added to its chosen cell (numbered as in
    `_chosen_cells`), zero elsewhere."""
    dxp = np.zeros((g.n, g.h + g.pt + g.pb, g.w + g.pl + g.pr, g.c), dtype=dy.dtype)
    for t in range(g.kh * g.kw):
        dxp[_tap(g, t // g.kw, t % g.kw)] += np.where(chosen == t, dy, 0.0)
    return _crop(dxp, g)


def max_pool2d_backward(
    dy: ArrayLike, x: ArrayLike, pool_size=2, *, strides=None, padding="valid", relu=False,
    dropout=None
) -> np.ndarray:
    """Gradient of ``sum(max_pool2d(x, ...) * dy)`` with respect to x.

    Each window sends its whole gradient to one cell: the first real cell, in
    row-major window order (ki outer, kj inner), that equals the window's
    maximum. Ties therefore go to the top-left-most maximum, as in
    TensorFlow's CPU kernel and PyTorch. A window holding NaN sends its
    gradient to its first NaN, since that is the cell its NaN output came
    from. Padding cells never receive gradient. Where windows overlap
    (strides smaller than pool_size) a cell adds the gradients of every
    window that chose it.

    Parameters
    ----------
    dy : array_like of shape (n, ho, wo, c)
        Gradient of the loss with respect to the forward's output.
    x : array_like of shape (n, h, w, c)
        The forward's input.
    pool_size, strides, padding
        As given to `max_pool2d`.
    relu : bool, default False
        ``x`` is a ReLU's output ``relu(z)``: return the gradient with respect
        to ``z`` instead, ``relu_backward(dx, x)``.
    dropout : (rate, seed), optional
        dy is the gradient of the forward's dropout output (as the forward's
        ``dropout``): ``dropout(dy, rate, seed)`` is taken first.

    Returns
    -------
    dx : ndarray of shape (n, h, w, c)

    Raises
    ------
    ValueError
        If ``dy`` does not have the forward's output shape.
    """
    dy, x = _as_float_arrays((dy, "dy"), (x, "x"))
    if dropout is not None:
        return max_pool2d_backward(_dropped(dy, dropout), x, pool_size, strides=strides,
                                   padding=padding, relu=relu)
    if relu:
        dx = max_pool2d_backward(dy, x, pool_size, strides=strides, padding=padding)
        return relu_backward(dx, x, out=dx)
    g = pool2d_geometry(x.shape, pool_size, strides, padding)
    _check_dy(dy, g.y_shape)
    y = max_pool2d(x, (g.kh, g.kw), strides=(g.sh, g.sw), padding=((g.pt, g.pb), (g.pl, g.pr)))
    return _scatter_to_cells(dy, _chosen_cells(_pad(x, g, -np.inf), y, g), g)


def max_pool2d_backward_argmax(
    dy: ArrayLike, argmax: ArrayLike, x_shape, pool_size=2, *, strides=None, padding="valid",
    relu=False, dropout=None
) -> np.ndarray:
    """`max_pool2d_backward` from the argmax `max_pool2d` returned, instead of x.

    Parameters
    ----------
    dy : array_like of shape (n, ho, wo, c)
    argmax : array_like of uint8, shape (n, ho, wo, c)
        ``max_pool2d(x, ..., return_argmax=True)[1]``.
    x_shape : (n, h, w, c)
        The forward input's shape.
    pool_size, strides, padding, relu, dropout
        As for `max_pool2d_backward`; ``relu`` reads the argmax's positive bit.

    Returns
    -------
    dx : ndarray of shape x_shape, dy's float type

    Raises
    ------
    ValueError
        If ``dy`` or ``argmax`` does not have the forward's output shape.
    """
    (dy,) = _as_float_arrays((dy, "dy"))
    argmax = np.asarray(argmax)
    if argmax.dtype != np.uint8:
        raise TypeError(f"argmax must be uint8 (max_pool2d's), got {argmax.dtype}")
    if dropout is not None:
        dy = _dropped(dy, dropout)
    g = pool2d_geometry(x_shape, pool_size, strides, padding)
    check_argmax_window(g, "argmax")
    _check_dy(dy, g.y_shape)
    if argmax.shape != g.y_shape:
        raise ValueError(f"argmax must have shape {g.y_shape}, got {argmax.shape}")
    if relu:
        dy = np.where(argmax & POOL_ARGMAX_POSITIVE, dy, 0.0).astype(dy.dtype, copy=False)
    return _scatter_to_cells(dy, argmax & ~np.uint8(POOL_ARGMAX_POSITIVE), g)


def _avg_divisor(g: Pool2DGeometry, dtype) -> np.ndarray:
    """Number of real (non-padding) cells in each window, shape (1, ho, wo, 1)."""
    real = _real_cells(g).astype(dtype)
    count = np.zeros((g.ho, g.wo), dtype=dtype)
    for ki in range(g.kh):
        for kj in range(g.kw):
            count += real[_tap(g, ki, kj)[1:]]
    return count[None, :, :, None]


def avg_pool2d(x: ArrayLike, pool_size=2, *, strides=None, padding="valid",
               dropout=None) -> np.ndarray:
    """Mean over the real cells of each pooling window, channel by channel.

    Padding cells are left out of both the sum and the divisor (TensorFlow's
    rule), so a corner window of a "same" pooling averages fewer cells
    rather than averaging in zeros.

    Parameters
    ----------
    x : array_like of shape (n, h, w, c)
    pool_size : int or (kh, kw), default 2
    strides : int or (sh, sw), optional
        Defaults to ``pool_size``.
    padding : "valid", "same", int, (ph, pw) or ((pt, pb), (pl, pr)), default "valid"
        Each side's padding must be smaller than the window.
    dropout : (rate, seed), optional
        The output goes through ``dropout(y, rate, seed)`` (a Dropout layer
        right above the pooling).

    Returns
    -------
    y : ndarray of shape (n, ho, wo, c), float32 or float64
    """
    (x,) = _as_float_arrays((x, "x"))
    if dropout is not None:
        return _dropped(avg_pool2d(x, pool_size, strides=strides, padding=padding), dropout)
    g = pool2d_geometry(x.shape, pool_size, strides, padding)
    xp = _pad(x, g, 0.0)
    total = np.zeros(g.y_shape, dtype=x.dtype)
    for ki in range(g.kh):
        for kj in range(g.kw):
            total += xp[_tap(g, ki, kj)]
    return total / _avg_divisor(g, x.dtype)


def avg_pool2d_backward(
    dy: ArrayLike, x: ArrayLike, pool_size=2, *, strides=None, padding="valid", relu=False,
    dropout=None
) -> np.ndarray:
    """Gradient of ``sum(avg_pool2d(x, ...) * dy)`` with respect to x.

    Each window shares ``dy / divisor`` equally among its real cells; where
    windows overlap, a cell adds the shares of every window that holds it.

    Parameters
    ----------
    dy : array_like of shape (n, ho, wo, c)
        Gradient of the loss with respect to the forward's output.
    x : array_like of shape (n, h, w, c)
        The forward's input; only its shape and dtype matter, but with ``relu``.
    pool_size, strides, padding
        As given to `avg_pool2d`.
    relu : bool, default False
        ``x`` is a ReLU's output ``relu(z)``: return the gradient with respect
        to ``z`` instead, ``relu_backward(dx, x)``.
    dropout : (rate, seed), optional
        dy is the gradient of the forward's dropout output (as the forward's
        ``dropout``): ``dropout(dy, rate, seed)`` is taken first.

    Returns
    -------
    dx : ndarray of shape (n, h, w, c)

    Raises
    ------
    ValueError
        If ``dy`` does not have the forward's output shape.
    """
    if dropout is not None:
        return avg_pool2d_backward(_dropped(dy, dropout), x, pool_size, strides=strides,
                                   padding=padding, relu=relu)
    dy, x = _as_float_arrays((dy, "dy"), (x, "x"))
    if relu:
        dx = avg_pool2d_backward(dy, x, pool_size, strides=strides, padding=padding)
        return relu_backward(dx, x, out=dx)
    g = pool2d_geometry(x.shape, pool_size, strides, padding)
    _check_dy(dy, g.y_shape)

    share = dy / _avg_divisor(g, dy.dtype)
    # Shares scattered onto padding cells are dropped by the final crop.
    dxp = np.zeros((g.n, g.h + g.pt + g.pb, g.w + g.pl + g.pr, g.c), dtype=dy.dtype)
    for ki in range(g.kh):
        for kj in range(g.kw):
            dxp[_tap(g, ki, kj)] += share
    return _crop(dxp, g)


def matmul(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Matrix product ``a @ b`` of two 2-D arrays.

    Parameters
    ----------
    a : array_like of shape (m, k)
    b : array_like of shape (k, n)

    Returns
    -------
    c : ndarray of shape (m, n), float32 or float64

    Raises
    ------
    ValueError
        If either argument is not 2-D or the inner dimensions differ.
    """
    a, b = _as_float_arrays((a, "a"), (b, "b"))
    if a.ndim != 2:
        raise ValueError(f"a must be 2-D with shape (m, k), got shape {a.shape}")
    if b.ndim != 2:
        raise ValueError(f"b must be 2-D with shape (k, n), got shape {b.shape}")
    if b.shape[0] != a.shape[1]:
        raise ValueError(
            f"b must have shape ({a.shape[1]}, n) to match a of shape {a.shape}, "
            f"got shape {b.shape}"
        )
    return a @ b


def dropout(x: ArrayLike, rate: float, seed: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Inverted dropout with the mask of ``seed``: ``x * keep / (1 - rate)``.

    The mask is `fastconv._random.keep_mask`, a function of (seed, element
    index), so the same call on ``dy`` is the backward pass, and
    `fastconv.ops.dropout` gives the same result bit for bit in float32.

    Parameters
    ----------
    x : array_like
    rate : float in [0, 1), the fraction of elements dropped
    seed : int in [0, 2**64)
    out : ndarray of x's shape, optional; receives the result (it may be x)

    Returns
    -------
    y : ndarray, float32 or float64 (``out`` when given)
    """
    (x,) = _as_float_arrays((x, "x"))
    keep = _random.keep_mask(seed, x.size, rate).reshape(x.shape)
    with np.errstate(invalid="ignore"):  # x * 0, not 0: a dropped infinity gives NaN
        y = np.multiply(x, keep)
    y *= x.dtype.type(1.0 / (1.0 - rate))
    if out is None:
        return y
    out[...] = y
    return out


def relu_backward(dy: ArrayLike, y: ArrayLike, *, out: np.ndarray | None = None) -> np.ndarray:
    """Gradient through a ReLU from its output ``y``: ``dy`` where ``y > 0``, else 0.

    Parameters
    ----------
    dy : array_like, the gradient of the ReLU's output
    y : array_like of dy's shape, the ReLU's output
    out : ndarray of dy's shape, optional; receives the result (it may be dy)

    Returns
    -------
    dz : ndarray, float32 or float64 (``out`` when given)
    """
    dy, y = _as_float_arrays((dy, "dy"), (y, "y"))
    if y.shape != dy.shape:
        raise ValueError(f"y must have dy's shape {dy.shape}, got {y.shape}")
    dz = np.where(y > 0, dy, np.zeros((), dy.dtype))
    if out is None:
        return dz
    out[...] = dz
    return out


def leaky_relu(x: ArrayLike, negative_slope: float, *, max_value: float | None = None,
               out: np.ndarray | None = None) -> np.ndarray:
    """The leaky ReLU capped at ``max_value``: ``x`` where ``x > 0``,
    ``negative_slope * x`` elsewhere (0 for a slope of 0), then ``max_value``
    wherever that is above it. NaN stays NaN.

    Parameters
    ----------
    x : array_like
    negative_slope : float >= 0
    max_value : float >= 0, optional (None: no cap)
    out : ndarray of x's shape, optional; receives the result (it may be x)

    Returns
    -------
    y : ndarray, float32 or float64 (``out`` when given)
    """
    negative_slope, cap = leaky_relu_arguments(negative_slope, max_value)
    (x,) = _as_float_arrays((x, "x"))
    zero = np.zeros((), x.dtype)
    below = zero if negative_slope == 0 else x * x.dtype.type(negative_slope)
    y = np.where(x > 0, x, np.where(np.isnan(x), x, below))
    y = np.where(y > cap, x.dtype.type(cap), y)
    if out is None:
        return y
    out[...] = y
    return out


def leaky_relu_backward(dy: ArrayLike, y: ArrayLike, negative_slope: float, *,
                        max_value: float | None = None,
                        out: np.ndarray | None = None) -> np.ndarray:
    """Gradient through `leaky_relu` from its output ``y``: 0 where a cap is
    set and ``y >= max_value``, else ``dy`` where ``y > 0``, else
    ``negative_slope * dy`` (0 for a slope of 0).

    Parameters
    ----------
    dy : array_like, the gradient of the output
    y : array_like of dy's shape, the output
    negative_slope, max_value : as `leaky_relu`'s
    out : ndarray of dy's shape, optional; receives the result (it may be dy)

    Returns
    -------
    dz : ndarray, float32 or float64 (``out`` when given)
    """
    negative_slope, cap = leaky_relu_arguments(negative_slope, max_value)
    dy, y = _as_float_arrays((dy, "dy"), (y, "y"))
    if y.shape != dy.shape:
        raise ValueError(f"y must have dy's shape {dy.shape}, got {y.shape}")
    zero = np.zeros((), dy.dtype)
    below = zero if negative_slope == 0 else dy * dy.dtype.type(negative_slope)
    dz = np.where(y > 0, dy, below)
    if cap < np.inf:
        dz = np.where(y >= cap, zero, dz)
    if out is None:
        return dz
    out[...] = dz
    return out


def _channels(x: np.ndarray, name: str) -> tuple[int, int]:
    """Rows and channels of x taken as (rows, channels), channels last."""
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ValueError(
            f"{name} must have at least one channel on its last axis, got shape {x.shape}"
        )
    return x.size // x.shape[-1], x.shape[-1]


def _per_channel(v: np.ndarray, c: int, name: str) -> None:
    if v.shape != (c,):
        raise ValueError(f"{name} must have shape ({c},), got {v.shape}")


def batch_norm_statistics(x: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (biased) variance of each channel (the last axis) over all
    the other axes: the batch statistics of a batch normalisation.

    Returns ``(mean, var)``, each of shape ``(c,)``.
    """
    (x,) = _as_float_arrays((x, "x"))
    m, c = _channels(x, "x")
    if m == 0:
        raise ValueError(f"x must have at least one row to average, got shape {x.shape}")
    x2 = x.reshape(m, c)
    mean = x2.mean(axis=0)
    return mean, np.square(x2 - mean).mean(axis=0)


def batch_norm(x: ArrayLike, mean: ArrayLike, inv_std: ArrayLike, gamma: ArrayLike,
               beta: ArrayLike, *, relu: bool = False) -> np.ndarray:
    """``(x - mean) * (inv_std * gamma) + beta``, per channel (the last axis):
    a batch normalisation's forward pass, ``inv_std = 1 / sqrt(var +
    epsilon)`` of the batch's or the moving variance; with ``relu``, then its
    `leaky_relu` with a slope of 0."""
    x, mean, inv_std, gamma, beta = _as_float_arrays(
        (x, "x"), (mean, "mean"), (inv_std, "inv_std"), (gamma, "gamma"), (beta, "beta"))
    _, c = _channels(x, "x")
    for v, name in ((mean, "mean"), (inv_std, "inv_std"), (gamma, "gamma"), (beta, "beta")):
        _per_channel(v, c, name)
    y = (x - mean) * (inv_std * gamma) + beta
    return leaky_relu(y, 0.0) if relu else y


def batch_norm_backward(
    dy: ArrayLike, x: ArrayLike, mean: ArrayLike, inv_std: ArrayLike, gamma: ArrayLike, *,
    relu_beta: ArrayLike | None = None, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``y = (x - mean) * inv_std * gamma + beta`` where mean and
    ``inv_std = 1 / sqrt(var + epsilon)`` are x's batch statistics (they
    depend on x too). With ``xhat = (x - mean) * inv_std`` and m rows:
    ``dgamma = sum(dy * xhat)``, ``dbeta = sum(dy)`` and
    ``dx = gamma * inv_std * (dy - dbeta / m - xhat * dgamma / m)``; given
    ``relu_beta`` (the forward's beta), through ``batch_norm(..., relu=True)``:
    dy first taken through the ReLU by `relu_backward`.

    Returns ``(dx, dgamma, dbeta)``; ``dx`` is ``out`` when given (an array of
    x's shape, which may be dy).
    """
    dy, x, mean, inv_std, gamma = _as_float_arrays(
        (dy, "dy"), (x, "x"), (mean, "mean"), (inv_std, "inv_std"), (gamma, "gamma"))
    m, c = _channels(x, "x")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have x's shape {x.shape}, got {dy.shape}")
    for v, name in ((mean, "mean"), (inv_std, "inv_std"), (gamma, "gamma")):
        _per_channel(v, c, name)
    if relu_beta is not None:
        (relu_beta,) = _as_float_arrays((relu_beta, "relu_beta"))
        _per_channel(relu_beta, c, "relu_beta")
        dy = relu_backward(dy, batch_norm(x, mean, inv_std, gamma, relu_beta, relu=True))
    xhat = ((x - mean) * inv_std).reshape(m, c)
    dy2 = dy.reshape(m, c)
    dgamma, dbeta = (dy2 * xhat).sum(axis=0), dy2.sum(axis=0)
    dx = gamma * inv_std * (dy2 - dbeta / max(m, 1) - xhat * (dgamma / max(m, 1)))
    if out is None:
        return dx.reshape(x.shape), dgamma, dbeta
    out[...] = dx.reshape(x.shape)
    return out, dgamma, dbeta

