"""Tests of `fastconv.reference`, the oracle every kernel is checked against.

The oracle is made trustworthy two ways: its forwards are compared with
direct computations written as explicit Python loops over every index, and
its backwards with central finite differences of its forwards, in float64.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import reference as R

# Central differences of a function that is linear (or piecewise linear, away
# from its kinks) in the perturbed entry are exact up to rounding, which is
# about 1e-16 * |L| / EPS: far below the tolerances below.
EPS = 1e-6
RTOL = 1e-6
ATOL = 1e-8


def numerical_grad(loss, array: np.ndarray) -> np.ndarray:
    """Central-difference gradient of ``loss()`` with respect to ``array``, in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + EPS
        plus = loss()
        array[index] = saved - EPS
        minus = loss()
        array[index] = saved
        grad[index] = (plus - minus) / (2 * EPS)
    return grad


def direct_conv2d(x, w, b, stride, pads, out_hw, dilation):
    """Convolution by explicit loops, with bounds checks instead of a padded copy.

    ``pads`` is (top, left) and ``out_hw`` is (ho, wo), both given by the
    caller, so this does not share the geometry code under test.
    """
    n, h, wd, c = x.shape
    kh, kw, _, f = w.shape
    (sh, sw), (pt, pl), (ho, wo), (dh, dw) = stride, pads, out_hw, dilation
    y = np.zeros((n, ho, wo, f))
    for b_, i, j, o in itertools.product(range(n), range(ho), range(wo), range(f)):
        acc = 0.0 if b is None else b[o]
        for ki, kj, ci in itertools.product(range(kh), range(kw), range(c)):
            r = i * sh + ki * dh - pt
            s = j * sw + kj * dw - pl
            if 0 <= r < h and 0 <= s < wd:
                acc += x[b_, r, s, ci] * w[ki, kj, ci, o]
        y[b_, i, j, o] = acc
    return y


def direct_pool2d(x, pool, stride, pads, out_hw, reduce):
    """Pooling by explicit loops; ``reduce`` gets the list of a window's real cells."""
    n, h, wd, c = x.shape
    (kh, kw), (sh, sw), (pt, pl), (ho, wo) = pool, stride, pads, out_hw
    y = np.zeros((n, ho, wo, c))
    for b_, i, j, ci in itertools.product(range(n), range(ho), range(wo), range(c)):
        cells = [
            x[b_, i * sh + ki - pt, j * sw + kj - pl, ci]
            for ki in range(kh)
            for kj in range(kw)
            if 0 <= i * sh + ki - pt < h and 0 <= j * sw + kj - pl < wd
        ]
        y[b_, i, j, ci] = reduce(cells)
    return y


def distinct_values(rng, shape):
    """Values that differ pairwise by far more than EPS, so every max is unique."""
    return rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.uniform(0, 0.01)


PADDINGS = ["valid", "same", 1, (1, 2), ((0, 2), (1, 0))]


# --- conv2d forward against direct loops ------------------------------------


@pytest.mark.parametrize(
    "hw, kernel, stride, padding, pads, out_hw",
    [
        # TensorFlow's "same" with stride 2: in 6, k 3 -> out 3, total pad 1,
        # all of it at the bottom/right (the smaller half, 0, on top/left).
        ((6, 6), (3, 3), 2, "same", (0, 0), (3, 3)),
        # in 6, k 4, stride 1 -> total pad 3: 1 on top/left, 2 at bottom/right.
        ((6, 6), (4, 4), 1, "same", (1, 1), (6, 6)),
        # in 5, k 3, stride 2 -> out 3, total pad 2, split evenly.
        ((5, 5), (3, 3), 2, "same", (1, 1), (3, 3)),
        ((5, 6), (2, 3), 1, "valid", (0, 0), (4, 4)),
        ((5, 6), (2, 3), (2, 1), ((2, 0), (0, 1)), (2, 0), (3, 5)),
        ((4, 4), (1, 1), 1, 1, (1, 1), (6, 6)),
    ],
)
def test_conv2d_matches_direct_loops(hw, kernel, stride, padding, pads, out_hw):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *hw, 3))
    w = rng.standard_normal((*kernel, 3, 2))
    b = rng.standard_normal(2)
    y = R.conv2d(x, w, b, stride=stride, padding=padding)
    expected = direct_conv2d(x, w, b, np.broadcast_to(stride, 2), pads, out_hw, (1, 1))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_conv2d_dilation_matches_direct_loops():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 7, 6, 2))
    w = rng.standard_normal((3, 2, 2, 3))
    # Dilation (2, 3): extents 5 x 4; "same" in 7 x 6 pads 4 = (2, 2) rows, 3 = (1, 2) cols.
    y = R.conv2d(x, w, stride=1, padding="same", dilation=(2, 3))
    expected = direct_conv2d(x, w, None, (1, 1), (2, 1), (7, 6), (2, 3))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 6),
    w=st.integers(1, 6),
    c=st.integers(1, 3),
    f=st.integers(1, 3),
    k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
)
def test_conv2d_matches_direct_loops_drawn(h, w, c, f, k, s, d, pads):
    pt, pb, pl, pr = pads
    eh, ew = (k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1
    if eh > h + pt + pb or ew > w + pl + pr:
        return
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, h, w, c))
    wt = rng.standard_normal((*k, c, f))
    out_hw = ((h + pt + pb - eh) // s[0] + 1, (w + pl + pr - ew) // s[1] + 1)
    y = R.conv2d(x, wt, stride=s, padding=((pt, pb), (pl, pr)), dilation=d)
    expected = direct_conv2d(x, wt, None, s, (pt, pl), out_hw, d)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


# --- conv2d backward against finite differences ------------------------------


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("dilation", [1, 2])
@pytest.mark.parametrize("kernel", [(3, 2), (2, 3)])
def test_conv2d_backward_matches_finite_differences(padding, stride, dilation, kernel):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 5, 2))
    w = rng.standard_normal((*kernel, 2, 3))
    b = rng.standard_normal(3)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    r = rng.standard_normal(R.conv2d(x, w, b, **kwargs).shape)

    def loss():
        return np.sum(R.conv2d(x, w, b, **kwargs) * r)

    dx, dw, db = R.conv2d_backward(r, x, w, **kwargs)
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw, numerical_grad(loss, w), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(db, numerical_grad(loss, b), rtol=RTOL, atol=ATOL)


def test_conv2d_backward_returns_db_without_forward_bias():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 4, 2))
    w = rng.standard_normal((3, 3, 2, 3))
    dy = rng.standard_normal((2, 2, 2, 3))
    _, _, db = R.conv2d_backward(dy, x, w)
    np.testing.assert_allclose(db, dy.sum(axis=(0, 1, 2)), rtol=1e-12)


def test_conv2d_backward_rejects_wrong_dy_shape():
    x = np.zeros((2, 5, 5, 3))
    w = np.zeros((3, 3, 3, 4))
    with pytest.raises(ValueError, match=r"dy.*\(2, 3, 3, 4\).*\(2, 3, 3, 5\)"):
        R.conv2d_backward(np.zeros((2, 3, 3, 5)), x, w)


def test_conv2d_rejects_wrong_bias_shape():
    with pytest.raises(ValueError, match=r"b must have shape \(4,\).*\(3,\)"):
        R.conv2d(np.zeros((1, 3, 3, 2)), np.zeros((1, 1, 2, 4)), np.zeros(3))


# --- max pooling --------------------------------------------------------------


@pytest.mark.parametrize(
    "pool, strides, padding",
    [
        (2, None, "valid"),
        (3, 1, "same"),  # overlapping windows
        (3, 2, "same"),  # overlapping windows, uneven padding
        ((2, 3), (1, 2), 1),
        (3, 2, (1, 2)),
        (3, (2, 1), ((0, 2), (1, 0))),
    ],
)
def test_max_pool2d_backward_matches_finite_differences(pool, strides, padding):
    rng = np.random.default_rng(5)
    x = distinct_values(rng, (2, 6, 5, 2))
    kwargs = dict(strides=strides, padding=padding)
    r = rng.standard_normal(R.max_pool2d(x, pool, **kwargs).shape)

    def loss():
        return np.sum(R.max_pool2d(x, pool, **kwargs) * r)

    dx = R.max_pool2d_backward(r, x, pool, **kwargs)
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL)
    _, argmax = R.max_pool2d(x, pool, return_argmax=True, **kwargs)
    np.testing.assert_array_equal(R.max_pool2d_backward_argmax(r, argmax, x.shape, pool, **kwargs),
                                  dx)


def test_max_pool2d_matches_direct_loops():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 5, 3))
    # pool 3, stride 2, "same" in 5: out 3, total pad 2 -> (1, 1) on each axis.
    y = R.max_pool2d(x, 3, strides=2, padding="same")
    np.testing.assert_array_equal(y, direct_pool2d(x, (3, 3), (2, 2), (1, 1), (3, 3), max))


def test_max_pool2d_ties_go_to_first_maximum_in_row_major_order():
    # One 3x3 window whose maximum 5 appears at (0, 2), (1, 0) and (2, 1):
    # row-major order (ki outer, kj inner) meets (0, 2) first.
    x = np.array([[1.0, 0.0, 5.0], [5.0, 2.0, 3.0], [4.0, 5.0, 0.0]])[None, :, :, None]
    dx = R.max_pool2d_backward(np.full((1, 1, 1, 1), 7.0), x, 3)
    expected = np.zeros_like(x)
    expected[0, 0, 2, 0] = 7.0
    np.testing.assert_array_equal(dx, expected)


def test_max_pool2d_constant_input_sends_each_window_to_its_top_left():
    # Stride 1 windows of an all-equal 3x3 input: each of the four 2x2
    # windows picks its own top-left cell.
    x = np.ones((1, 3, 3, 1))
    dy = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    dx = R.max_pool2d_backward(dy, x, 2, strides=1)
    expected = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool2d_overlapping_windows_add_their_gradients():
    # The centre 9 is the maximum of all four stride-1 2x2 windows.
    x = np.array([[1.0, 2.0, 3.0], [4.0, 9.0, 5.0], [6.0, 7.0, 8.0]])[None, :, :, None]
    dy = np.array([[1.0, 2.0], [3.0, 4.0]])[None, :, :, None]
    dx = R.max_pool2d_backward(dy, x, 2, strides=1)
    expected = np.zeros((3, 3))
    expected[1, 1] = 10.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool2d_propagates_nan_and_routes_gradient_to_first_nan():
    x = np.array(
        [[1.0, np.nan, 2.0, 3.0], [5.0, np.nan, 4.0, 0.0]], dtype=np.float32
    )[None, :, :, None]
    y = R.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0])
    assert y[0, 0, 1, 0] == 4.0
    dx = R.max_pool2d_backward(np.ones((1, 1, 2, 1)), x, 2)
    expected = np.zeros((2, 4), dtype=np.float32)
    expected[0, 1] = 1.0  # the first NaN in row-major window order
    expected[1, 2] = 1.0
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


def test_max_pool2d_pads_with_minus_infinity():
    x = np.full((1, 2, 2, 1), -5.0)
    x[0, 1, 1, 0] = -3.0
    # pool 2, stride 1, padding 1 -> 3x3 windows, each holding padding.
    y = R.max_pool2d(x, 2, strides=1, padding=1)
    expected = np.array([[-5.0, -5.0, -5.0], [-5.0, -3.0, -3.0], [-5.0, -3.0, -3.0]])
    np.testing.assert_array_equal(y[0, :, :, 0], expected)


def test_max_pool2d_never_sends_gradient_to_padding():
    # Real cells of -inf tie with the -inf padding; the real cell must win.
    x = np.full((1, 3, 3, 2), -np.inf)
    dy = np.arange(1.0, 2 * 2 * 2 + 1).reshape(1, 2, 2, 2)
    dx = R.max_pool2d_backward(dy, x, 2, strides=2, padding=((1, 0), (1, 0)))
    assert np.all(R.max_pool2d(x, 2, strides=2, padding=((1, 0), (1, 0))) == -np.inf)
    np.testing.assert_array_equal(dx.sum(axis=(1, 2)), dy.sum(axis=(1, 2)))
    # Window (0, 0) holds only real cell (0, 0).
    np.testing.assert_array_equal(dx[0, 0, 0], dy[0, 0, 0])


# --- average pooling ----------------------------------------------------------


@pytest.mark.parametrize(
    "pool, strides, padding",
    [
        (2, None, "valid"),
        (3, 1, "same"),
        (3, 2, "same"),
        ((2, 3), (1, 2), 1),
        (3, 2, (1, 2)),
        (3, (2, 1), ((0, 2), (1, 0))),
    ],
)
def test_avg_pool2d_backward_matches_finite_differences(pool, strides, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 5, 2))
    kwargs = dict(strides=strides, padding=padding)
    r = rng.standard_normal(R.avg_pool2d(x, pool, **kwargs).shape)

    def loss():
        return np.sum(R.avg_pool2d(x, pool, **kwargs) * r)

    dx = R.avg_pool2d_backward(r, x, pool, **kwargs)
    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=RTOL, atol=ATOL)


def test_avg_pool2d_divisor_excludes_padding():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y = R.avg_pool2d(x, 3, strides=1, padding="same")
    # Corner window covers rows -1..1, cols -1..1; its real cells are
    # x[0:2, 0:2] = 0, 1, 4, 5, so the mean is 10 / 4.
    assert y[0, 0, 0, 0] == 2.5
    # Edge window (0, 1): real cells x[0:2, 0:3] = 0, 1, 2, 4, 5, 6.
    assert y[0, 0, 1, 0] == 3.0
    np.testing.assert_array_equal(
        y, direct_pool2d(x, (3, 3), (1, 1), (1, 1), (4, 4), np.mean)
    )
    np.testing.assert_array_equal(R.avg_pool2d(np.ones((1, 4, 4, 1)), 3, strides=1, padding=1), 1.0)


# --- matmul -------------------------------------------------------------------


def test_matmul_matches_numpy_and_finite_differences():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((4, 3))
    b = rng.standard_normal((3, 5))
    np.testing.assert_allclose(R.matmul(a, b), a @ b, rtol=1e-14)
    r = rng.standard_normal((4, 5))

    def loss():
        return np.sum(R.matmul(a, b) * r)

    # The gradients a Dense layer's backward uses: dA = R B^T, dB = A^T R.
    np.testing.assert_allclose(numerical_grad(loss, a), r @ b.T, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(numerical_grad(loss, b), a.T @ r, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "a_shape, b_shape, match",
    [
        ((3,), (3, 2), r"a must be 2-D.*\(3,\)"),
        ((2, 3), (3, 2, 1), r"b must be 2-D.*\(3, 2, 1\)"),
        ((2, 3), (4, 2), r"b must have shape \(3, n\).*\(4, 2\)"),
    ],
)
def test_matmul_rejects_bad_shapes(a_shape, b_shape, match):
    with pytest.raises(ValueError, match=match):
        R.matmul(np.zeros(a_shape), np.zeros(b_shape))


# --- dtypes, empty batches, bad inputs -----------------------------------------

OPS = {
    "conv2d": lambda x: R.conv2d(x, np.ones((2, 2, 3, 4), x.dtype), padding="same"),
    "conv2d_backward": lambda x: R.conv2d_backward(
        np.ones((x.shape[0], 3, 3, 4), x.dtype), x, np.ones((2, 2, 3, 4), x.dtype)
    )[0],
    "max_pool2d": lambda x: R.max_pool2d(x, 2, strides=1),
    "max_pool2d_backward": lambda x: R.max_pool2d_backward(
        np.ones((x.shape[0], 3, 3, 3), x.dtype), x, 2, strides=1
    ),
    "avg_pool2d": lambda x: R.avg_pool2d(x, 3, strides=2, padding="same"),
    "avg_pool2d_backward": lambda x: R.avg_pool2d_backward(
        np.ones((x.shape[0], 2, 2, 3), x.dtype), x, 3, strides=2, padding="same"
    ),
    "matmul": lambda x: R.matmul(x.reshape(x.shape[0], 48), np.ones((48, 2), x.dtype)),
}
EXPECTED_SHAPES = {
    "conv2d": (4, 4, 4),
    "conv2d_backward": (4, 4, 3),
    "max_pool2d": (3, 3, 3),
    "max_pool2d_backward": (4, 4, 3),
    "avg_pool2d": (2, 2, 3),
    "avg_pool2d_backward": (4, 4, 3),
    "matmul": (2,),
}


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize(
    "dtype, expected",
    [
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int32, np.float32),
        (np.int64, np.float32),
        (np.float16, np.float32),
    ],
)
def test_output_dtype(op, dtype, expected):
    x = np.arange(2 * 4 * 4 * 3).reshape(2, 4, 4, 3).astype(dtype)
    out = OPS[op](x)
    assert out.dtype == expected
    assert out.shape == (2, *EXPECTED_SHAPES[op])


@pytest.mark.parametrize("op", OPS)
def test_empty_batch_gives_empty_output(op):
    out = OPS[op](np.zeros((0, 4, 4, 3), np.float32))
    assert out.shape == (0, *EXPECTED_SHAPES[op])


def test_empty_batch_conv2d_backward_gives_zero_weight_gradients():
    dx, dw, db = R.conv2d_backward(
        np.zeros((0, 2, 2, 4)), np.zeros((0, 3, 3, 2)), np.ones((2, 2, 2, 4))
    )
    assert dx.shape == (0, 3, 3, 2)
    np.testing.assert_array_equal(dw, np.zeros((2, 2, 2, 4)))
    np.testing.assert_array_equal(db, np.zeros(4))


def test_accepts_nested_lists():
    y = R.conv2d([[[[1.0], [2.0]], [[3.0], [4.0]]]], [[[[1.0]]]], [0.5])
    np.testing.assert_array_equal(y[0, :, :, 0], [[1.5, 2.5], [3.5, 4.5]])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((1, 3, 3, 1), np.complex128),
        np.zeros((1, 3, 3, 1), object),
        np.full((1, 3, 3, 1), "a"),
    ],
    ids=["complex", "object", "string"],
)
def test_rejects_non_real_dtypes_naming_the_argument(bad):
    good = np.zeros((1, 3, 3, 1))
    w = np.zeros((1, 1, 1, 1))
    with pytest.raises(TypeError, match="^x must hold real numbers"):
        R.conv2d(bad, w)
    with pytest.raises(TypeError, match="^w must hold real numbers"):
        R.conv2d(good, bad[:1, :1])
    with pytest.raises(TypeError, match="^b must hold real numbers"):
        R.conv2d(good, w, bad[0, 0, 0])
    with pytest.raises(TypeError, match="^dy must hold real numbers"):
        R.conv2d_backward(bad, good, w)
    with pytest.raises(TypeError, match="^x must hold real numbers"):
        R.max_pool2d(bad, 1)
    with pytest.raises(TypeError, match="^dy must hold real numbers"):
        R.max_pool2d_backward(bad, good, 1)
    with pytest.raises(TypeError, match="^x must hold real numbers"):
        R.avg_pool2d(bad, 1)
    with pytest.raises(TypeError, match="^x must hold real numbers"):
        R.avg_pool2d_backward(good, bad, 1)
    with pytest.raises(TypeError, match="^a must hold real numbers"):
        R.matmul(bad[0, :, :, 0], good[0, :, :, 0])
    with pytest.raises(TypeError, match="^b must hold real numbers"):
        R.matmul(good[0, :, :, 0], bad[0, :, :, 0])


@pytest.mark.parametrize(
    "call",
    [
        lambda dy: R.max_pool2d_backward(dy, np.zeros((1, 4, 4, 2)), 2),
        lambda dy: R.avg_pool2d_backward(dy, np.zeros((1, 4, 4, 2)), 2),
    ],
    ids=["max", "avg"],
)
def test_pool_backward_rejects_wrong_dy_shape(call):
    with pytest.raises(ValueError, match=r"dy.*\(1, 2, 2, 2\).*\(1, 2, 3, 2\)"):
        call(np.zeros((1, 2, 3, 2)))


def test_batch_norm_backward_through_its_relu_matches_finite_differences():
    """relu_beta: the gradient of relu(batch_norm(x)) with x's own statistics,
    away from the ReLU's kink."""
    rng = np.random.default_rng(6)
    x = rng.normal(1.0, 2.0, (7, 3))
    gamma, beta = rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)
    weights = rng.standard_normal(x.shape)

    def output(x):
        mean, var = R.batch_norm_statistics(x)
        return R.batch_norm(x, mean, 1 / np.sqrt(var + 1e-3), gamma, beta, relu=True)

    mean, var = R.batch_norm_statistics(x)
    pre = R.batch_norm(x, mean, 1 / np.sqrt(var + 1e-3), gamma, beta)
    assert np.abs(pre).min() > 1e-3 and (pre < 0).any() and (pre > 0).any()
    dx, dgamma, dbeta = R.batch_norm_backward(weights, x, mean, 1 / np.sqrt(var + 1e-3), gamma,
                                              relu_beta=beta)
    np.testing.assert_allclose(dx, numerical_grad(lambda: np.sum(output(x) * weights), x),
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dbeta, np.where(pre > 0, weights, 0).sum(axis=0), rtol=1e-12)


# ---- leaky ReLU ---------------------------------------------------------------------


@pytest.mark.parametrize("negative_slope, max_value", [(0.0, None), (0.2, None), (1.5, None),
                                                       (0.1, 1.0), (0.0, 6.0)])
def test_leaky_relu_backward_matches_finite_differences(negative_slope, max_value):
    """Away from its kinks at 0 and at the cap, where it has no derivative."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-3, 3, (3, 4, 5))
    x[np.abs(x) < 0.05] = 0.5
    if max_value is not None:
        x[np.abs(x - max_value) < 0.05] = 0.5
    weights = rng.standard_normal(x.shape)
    y = R.leaky_relu(x, negative_slope, max_value=max_value)
    dx = R.leaky_relu_backward(weights, y, negative_slope, max_value=max_value)

    def loss():
        return np.sum(R.leaky_relu(x, negative_slope, max_value=max_value) * weights)

    np.testing.assert_allclose(dx, numerical_grad(loss, x), rtol=1e-6, atol=1e-8)


# ---- batch normalisation -------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 4, 5), (1, 1, 1, 2)])
def test_batch_norm_backward_matches_finite_differences(shape):
    """Through the statistics too: mean and inv_std are x's own."""
    rng = np.random.default_rng(4)
    x = rng.normal(2.0, 1.5, shape)
    gamma, beta = rng.uniform(0.5, 1.5, shape[-1]), rng.standard_normal(shape[-1])
    weights = rng.standard_normal(shape)

    def normalized(x):
        mean, var = R.batch_norm_statistics(x)
        return R.batch_norm(x, mean, 1 / np.sqrt(var + 1e-3), gamma, beta)

    mean, var = R.batch_norm_statistics(x)
    dx, dgamma, dbeta = R.batch_norm_backward(weights, x, mean, 1 / np.sqrt(var + 1e-3), gamma)
    np.testing.assert_allclose(dx, numerical_grad(lambda: np.sum(normalized(x) * weights), x),
                               rtol=1e-5, atol=1e-7)
    xhat = (x - mean) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(dgamma, (weights * xhat).reshape(-1, shape[-1]).sum(axis=0))
    np.testing.assert_allclose(dbeta, weights.reshape(-1, shape[-1]).sum(axis=0))


def test_batch_norm_statistics_are_the_mean_and_biased_variance():
    x = np.arange(24.0).reshape(2, 3, 4)
    mean, var = R.batch_norm_statistics(x)
    np.testing.assert_allclose(mean, x.reshape(-1, 4).mean(axis=0))
    np.testing.assert_allclose(var, x.reshape(-1, 4).var(axis=0))


@pytest.mark.parametrize("call,match", [
    (lambda: R.batch_norm_statistics(np.ones((0, 3))), "at least one row"),
    (lambda: R.batch_norm_statistics(np.ones((3, 0))), "at least one channel"),
    (lambda: R.batch_norm(np.ones((2, 3)), np.zeros(3), np.ones(2), np.ones(3), np.zeros(3)),
     r"inv_std must have shape \(3,\)"),
    (lambda: R.batch_norm_backward(np.ones((2, 4)), np.ones((2, 3)), np.zeros(3), np.ones(3),
                                   np.ones(3)), "dy must have x's shape"),
])
def test_batch_norm_rejects_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
