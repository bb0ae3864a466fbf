"""fastconv.ops (the C kernels) against fastconv.reference, on every SIMD path.

The reference runs in float64 on the same float32 inputs, and results must
agree to about 1e-4 of the largest magnitude. Thread counts must not change
results at all.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from child_process import python_env, run_python
from fastconv import ops, reference

PATHS = fastconv.available_simd_paths()


@pytest.fixture(params=PATHS, scope="module")
def simd_path(request):
    before = fastconv.get_simd_path()
    fastconv.set_simd_path(request.param)
    yield request.param
    fastconv.set_simd_path(before)


def assert_close(got, expected, tol=1e-4):
    assert got.shape == expected.shape
    assert got.dtype == np.float32
    scale = max(float(np.abs(expected).max(initial=0.0)), 1.0)
    err = float(np.abs(got.astype(np.float64) - expected).max(initial=0.0))
    assert err <= tol * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def f64(a):
    return np.asarray(a, dtype=np.float64)


padding_forms = st.one_of(
    st.sampled_from(["valid", "same"]),
    st.integers(0, 3),
    st.tuples(st.integers(0, 3), st.integers(0, 3)),
    st.tuples(
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 7)), draw(st.integers(1, 7))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(padding_forms)
    # Sizes from "kernel as large as the input" upwards.
    h = draw(st.integers(max(1, (kh - 1) * dh + 1 - 6), (kh - 1) * dh + 6))
    w = draw(st.integers(max(1, (kw - 1) * dw + 1 - 6), (kw - 1) * dw + 6))
    n = draw(st.sampled_from([0, 1, 2, 3]))
    c = draw(st.sampled_from([1, 2, 3, 5, 8, 17]))
    f = draw(st.sampled_from([1, 3, 7, 16, 19, 33]))
    try:
        fastconv._geometry.conv2d_geometry((n, h, w, c), (kh, kw, c, f), stride, padding, (dh, dw))
    except ValueError:
        padding = "same"  # always valid: the padded input covers the kernel
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(n=n, h=h, w=w, c=c, f=f, kh=kh, kw=kw, stride=stride, padding=padding,
                dilation=(dh, dw), seed=seed)


def make_conv_inputs(case, dtype=np.float32):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal((case["n"], case["h"], case["w"], case["c"])).astype(dtype)
    w = rng.standard_normal((case["kh"], case["kw"], case["c"], case["f"])).astype(dtype)
    b = rng.standard_normal(case["f"]).astype(dtype)
    return x, w, b


def conv_args(case):
    return dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])


@settings(max_examples=60, deadline=None)
@given(case=conv_cases())
def test_conv2d_matches_reference(simd_path, case):
    x, w, b = make_conv_inputs(case)
    args = conv_args(case)
    y = ops.conv2d(x, w, b, **args)
    assert_close(y, reference.conv2d(f64(x), f64(w), f64(b), **args))
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx, dw, db = ops.conv2d_backward(dy, x, w, **args)
    rdx, rdw, rdb = reference.conv2d_backward(f64(dy), f64(x), f64(w), **args)
    assert_close(dx, rdx)
    assert_close(dw, rdw)
    assert_close(db, rdb)


@settings(max_examples=20, deadline=None)
@given(case=conv_cases())
def test_conv2d_fused_relu(case):
    x, w, b = make_conv_inputs(case)
    args = conv_args(case)
    y = ops.conv2d(x, w, b, activation="relu", **args)
    assert_close(y, np.maximum(reference.conv2d(f64(x), f64(w), f64(b), **args), 0.0))
    assert (y >= 0).all()


def test_conv2d_noncontiguous_and_float64_inputs():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, 6, 9, 10))
    x = base[:, :, ::2, 1:8]  # non-contiguous float64 view, shape (2, 6, 5, 7)
    w = rng.standard_normal((7, 3, 3, 4)).transpose(1, 2, 0, 3)  # (3, 3, 7, 4), strided
    y = ops.conv2d(x, w, padding="same")
    assert y.dtype == np.float32
    assert_close(y, reference.conv2d(x, w, padding="same"))
    dy = rng.standard_normal(y.shape)
    for got, want in zip(ops.conv2d_backward(dy, x, w, padding="same"),
                         reference.conv2d_backward(dy, x, w, padding="same")):
        assert_close(got, want)


def test_conv2d_accepts_lists_and_ints():
    x = [[[[1], [2]], [[3], [4]]]]  # (1, 2, 2, 1) ints
    w = np.ones((2, 2, 1, 1), dtype=np.int64)
    np.testing.assert_array_equal(ops.conv2d(x, w), np.array([[[[10.0]]]], np.float32))


@st.composite
def pool_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = draw(st.one_of(st.none(), st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(st.one_of(
        st.sampled_from(["valid", "same"]),
        st.tuples(st.tuples(st.integers(0, kh - 1), st.integers(0, kh - 1)),
                  st.tuples(st.integers(0, kw - 1), st.integers(0, kw - 1))),
    ))
    n = draw(st.sampled_from([0, 1, 2]))
    # Wide rows too: the forward takes pixels of under 16 channels (but 8) in
    # runs of up to 64 values, several a row.
    wider = draw(st.sampled_from([6, 6, 40]))
    h, w = draw(st.integers(kh, kh + 6)), draw(st.integers(kw, kw + wider))
    c = draw(st.sampled_from([1, 3, 6, 8, 12, 16, 17, 24, 32, 300]))
    seed = draw(st.integers(0, 2**31 - 1))
    return dict(n=n, h=h, w=w, c=c, pool_size=(kh, kw), strides=strides, padding=padding, seed=seed)


@settings(max_examples=60, deadline=None)
@given(case=pool_cases(), kind=st.sampled_from(["max", "avg"]), ties=st.booleans())
def test_pooling_matches_reference(case, kind, ties):
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["h"], case["w"], case["c"])
    # Small integers make ties common, exercising the first-maximum rule.
    x = (rng.integers(0, 3, shape) if ties else rng.standard_normal(shape)).astype(np.float32)
    args = dict(strides=case["strides"], padding=case["padding"])
    forward = getattr(ops, f"{kind}_pool2d")
    backward = getattr(ops, f"{kind}_pool2d_backward")
    y = forward(x, case["pool_size"], **args)
    assert_close(y, getattr(reference, f"{kind}_pool2d")(f64(x), case["pool_size"], **args))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = backward(dy, x, case["pool_size"], **args)
    want = getattr(reference, f"{kind}_pool2d_backward")(f64(dy), f64(x), case["pool_size"], **args)
    assert_close(dx, want)


@settings(max_examples=40, deadline=None)
@given(case=pool_cases(), ties=st.booleans(), kind=st.sampled_from(["max", "avg"]))
def test_pool_backward_through_relu(case, ties, kind):
    """relu=True is relu_backward(pool2d_backward(...), x) in one pass:
    bit for bit, with maxima that are zero (a ReLU's output is often) or NaN,
    overlapping windows and padding; and the reference's (float64 sums where
    windows overlap) within rounding."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = (rng.integers(-1, 2, shape) if ties else rng.standard_normal(shape)).astype(np.float32)
    x = np.maximum(x, 0.0)  # a ReLU's output
    if x.size:
        x.flat[rng.integers(0, x.size, 3)] = np.nan
    args = dict(strides=case["strides"], padding=case["padding"])
    forward, backward = getattr(ops, f"{kind}_pool2d"), getattr(ops, f"{kind}_pool2d_backward")
    dy = rng.standard_normal(forward(x, case["pool_size"], **args).shape).astype(np.float32)
    dx = backward(dy, x, case["pool_size"], **args)
    fused = backward(dy, x, case["pool_size"], relu=True, **args)
    np.testing.assert_array_equal(fused.view(np.uint32), ops.relu_backward(dx, x).view(np.uint32))
    want = getattr(reference, f"{kind}_pool2d_backward")(f64(dy), f64(x), case["pool_size"],
                                                         relu=True, **args)
    np.testing.assert_array_equal(fused == 0, want == 0)
    assert_close(fused, want)


@settings(max_examples=30, deadline=None)
@given(case=pool_cases(), kind=st.sampled_from(["max", "avg"]), relu=st.booleans(),
       rate=st.sampled_from([0.0, 0.25, 0.5, 0.9]))
def test_pooling_with_the_dropout_above_it(case, kind, relu, rate):
    """dropout=(rate, seed) is ops.dropout of the pooled output, and in the
    backward pass the pooling's gradient of ops.dropout(dy), bitwise (with
    relu for max pooling, NaN and infinite inputs, padding and overlapping
    windows); the reference's within rounding."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = np.maximum(rng.standard_normal(shape), 0.0).astype(np.float32)
    if x.size:
        x.flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, 0.0]
    args = dict(strides=case["strides"], padding=case["padding"])
    relu = relu and kind == "max"
    forward = getattr(ops, f"{kind}_pool2d")
    backward = getattr(ops, f"{kind}_pool2d_backward")
    mask = (rate, case["seed"] * 7919)
    y = forward(x, case["pool_size"], **args)
    got = forward(x, case["pool_size"], dropout=mask, **args)
    np.testing.assert_array_equal(got, ops.dropout(y, *mask))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    extra = {"relu": True} if relu else {}
    got = backward(dy, x, case["pool_size"], dropout=mask, **extra, **args)
    np.testing.assert_array_equal(got, backward(ops.dropout(dy, *mask), x, case["pool_size"],
                                                **extra, **args))
    want = getattr(reference, f"{kind}_pool2d_backward")(
        f64(dy), f64(np.nan_to_num(x, nan=0.0, posinf=9.0)), case["pool_size"], dropout=mask,
        **extra, **args)
    finite = backward(dy, np.nan_to_num(x, nan=0.0, posinf=9.0), case["pool_size"], dropout=mask,
                      **extra, **args)
    assert_close(finite, want)


def test_pooling_dropout_argument_is_checked():
    x = np.ones((1, 4, 4, 2), np.float32)
    for bad, error, words in (((0.5,), TypeError, "dropout must be None or a (rate, seed)"),
                              ([0.5, 1], TypeError, "dropout must be None or a (rate, seed)"),
                              ((1.0, 1), ValueError, "rate must be a number in [0, 1)"),
                              ((0.5, -1), ValueError, "seed must be an integer")):
        for call in (lambda: ops.max_pool2d(x, dropout=bad),
                     lambda: ops.avg_pool2d_backward(np.ones((1, 2, 2, 2)), x, dropout=bad)):
            with pytest.raises(error, match=re.escape(words)):
                call()


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", [
    ((3, 13, 13, 32), (3, 3, 32, 64), 1, "same"),  # 6x6 Winograd: masked in its output pass
    ((2, 11, 10, 16), (5, 5, 16, 24), 1, "valid"),  # 6x6 Winograd, 5x5, partial edge tiles
    ((3, 13, 13, 40), (3, 3, 40, 24), 1, "valid"),  # dy's tiles, transposed: masked at last shares
    ((3, 13, 13, 16), (3, 3, 16, 32), 1, "valid"),  # ... in the pass that takes dw too
    ((2, 8, 8, 128), (3, 3, 128, 256), 1, "same"),  # F(2x2, 3x3)
    ((2, 10, 9, 3), (3, 3, 3, 8), 1, "same"),  # direct kernels
    ((2, 12, 12, 24), (1, 1, 24, 40), 1, "valid"),  # pointwise GEMM
    ((2, 15, 15, 24), (3, 3, 24, 40), 2, 1),  # strided: phase GEMMs
    ((2, 9, 9, 5), (3, 3, 5, 6), 2, "same"),  # col2im
])
def test_conv_backward_through_relu(simd_path, x_shape, w_shape, stride, padding):
    """relu=True is relu_backward(dx, x) (x a ReLU's output, with zeros, NaN
    and an infinity) bitwise, on every backward-input path, and the weight
    gradients are unchanged; the reference's within rounding."""
    rng = np.random.default_rng(sum(x_shape))
    x = np.maximum(rng.standard_normal(x_shape), 0.0).astype(np.float32)
    x.flat[rng.integers(0, x.size, 4)] = [np.nan, np.inf, 0.0, -0.0]
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
    args = dict(stride=stride, padding=padding)
    dy = rng.standard_normal(ops.conv2d(x, w, **args).shape).astype(np.float32)
    dx, dw, db = ops.conv2d_backward(dy, x, w, **args)
    fused = ops.conv2d_backward(dy, x, w, relu=True, **args)
    np.testing.assert_array_equal(fused[0], ops.relu_backward(dx, x))
    np.testing.assert_array_equal(fused[1], dw)
    np.testing.assert_array_equal(fused[2], db)
    finite = np.where(np.isfinite(x), x, 0.0)  # the reference's float64 sums would spread NaN
    want = reference.conv2d_backward(f64(dy), f64(finite), f64(w), relu=True, **args)[0]
    got = ops.conv2d_backward(dy, finite.astype(np.float32), w, relu=True, **args)[0]
    np.testing.assert_array_equal(got == 0, want == 0)
    assert_close(got, want)


@pytest.mark.parametrize("pool_size,strides,padding,hw", [
    ((2, 2), (3, 3), "valid", (8, 7)),  # gaps between windows, a leftover row and column
    ((2, 3), (2, 4), ((1, 0), (1, 2)), (7, 9)),  # padding clips the edge windows
    ((1, 1), (2, 2), "valid", (5, 5)),
    ((2, 2), (2, 2), "valid", (5, 7)),  # exact tiling but for the odd last row and column
    ((12, 12), (12, 12), "valid", (25, 26)),  # windows of 144 cells
])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_backward_with_disjoint_windows_writes_every_cell(pool_size, strides, padding, hw,
                                                               kind):
    """Windows that do not overlap write each dx cell once, with no zeroing
    pass: cells outside every window must still come out zero, though dx
    comes from np.empty (here reusing freed memory full of NaN)."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (2, *hw, 20)).astype(np.float32)  # ties: the first maximum wins
    y = getattr(ops, f"{kind}_pool2d")(x, pool_size, strides=strides, padding=padding)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    backward = getattr(ops, f"{kind}_pool2d_backward")
    want = getattr(reference, f"{kind}_pool2d_backward")(f64(dy), f64(x), pool_size,
                                                         strides=strides, padding=padding)
    for _ in range(3):
        del_me = np.full(x.shape, np.nan, np.float32)
        del del_me
        dx = backward(dy, x, pool_size, strides=strides, padding=padding)
        if kind == "max":  # copies of dy
            np.testing.assert_array_equal(dx, want.astype(np.float32))
        else:
            np.testing.assert_array_equal(dx == 0, want == 0)
            assert_close(dx, want)


@pytest.mark.parametrize("shape", [(0,), (7,), (3, 4, 5, 6), (128, 24, 24, 64)])
def test_relu_backward_is_a_select_on_the_output(shape):
    """dy where y > 0, else 0: also 0 (not NaN) for an infinite dy where
    y <= 0, and 0 where y is NaN; in place when out is dy; any thread count."""
    rng = np.random.default_rng(11)
    y = np.maximum(rng.standard_normal(shape), 0).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    flat_y, flat_dy = y.reshape(-1), dy.reshape(-1)
    if flat_y.size >= 7:
        flat_y[:4] = [np.nan, -0.0, 1.0, 0.0]
        flat_dy[:7] = [1.0, 2.0, np.nan, np.inf, 5.0, 6.0, 7.0]
    want = np.where(y > 0, dy, np.float32(0))
    np.testing.assert_array_equal(ops.relu_backward(dy, y), want)
    np.testing.assert_array_equal(ops.relu_backward(dy, y, n_threads=1), want)
    np.testing.assert_array_equal(reference.relu_backward(f64(dy), f64(y)), want.astype(np.float64))
    inplace = dy.copy()
    assert ops.relu_backward(inplace, y, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, want)


def test_relu_backward_refuses_bad_arguments():
    dy, y = np.ones((2, 3), np.float32), np.ones((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"y must have dy's shape \(2, 3\), got \(3, 2\)"):
        ops.relu_backward(dy, y.T.copy())
    for out in (np.ones((2, 3)), np.ones((3, 2), np.float32).T, np.ones((6,), np.float32), [[0.0] * 3] * 2):
        with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array"):
            ops.relu_backward(dy, y, out=out)
    frozen = np.ones((2, 3), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out must be"):
        ops.relu_backward(dy, y, out=frozen)


SPECIALS = np.array([np.nan, -np.inf, np.inf, 0.0, -0.0, -1e-45, 1e-45, 6.0, 1.0, -6.0],
                    np.float32)


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from([(0,), (1,), (10,), (33,), (3, 4, 5, 6), (16, 9, 9, 32)]),
    negative_slope=st.one_of(st.sampled_from([0.0, 0.01, 0.2, 0.3, 1.0, 1.5]),
                             st.floats(0, 4, width=32)),
    max_value=st.one_of(st.none(), st.sampled_from([0.0, 1.0, 6.0]), st.floats(0, 8, width=32)),
    threads=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_leaky_relu_matches_the_reference_bit_for_bit(shape, negative_slope, max_value, threads,
                                                      seed):
    """Both passes against the NumPy twin in float32, bit for bit, with NaN,
    infinities, signed zeros, values whose product with the slope underflows
    and values at the cap; dy with infinities and NaN; in place; any thread
    count."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    flat_x, flat_dy = x.reshape(-1), dy.reshape(-1)
    k = min(flat_x.size, SPECIALS.size)
    flat_x[:k] = rng.permutation(SPECIALS)[:k]
    flat_dy[:k] = rng.permutation(SPECIALS)[:k]
    kwargs = dict(max_value=max_value)
    y = ops.leaky_relu(x, negative_slope, n_threads=threads, **kwargs)
    want = reference.leaky_relu(x, negative_slope, **kwargs)
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))
    dz = ops.leaky_relu_backward(dy, y, negative_slope, n_threads=threads, **kwargs)
    want_dz = reference.leaky_relu_backward(dy, want, negative_slope, **kwargs)
    np.testing.assert_array_equal(dz.view(np.uint32), want_dz.view(np.uint32))
    inplace = x.copy()
    assert ops.leaky_relu(inplace, negative_slope, out=inplace, **kwargs) is inplace
    np.testing.assert_array_equal(inplace.view(np.uint32), want.view(np.uint32))
    assert ops.leaky_relu_backward(dy, y, negative_slope, out=dy, **kwargs) is dy
    np.testing.assert_array_equal(dy.view(np.uint32), want_dz.view(np.uint32))


def test_leaky_relu_special_values():
    """Spelt out: NaN stays NaN, -inf gives -inf times the slope (0 for a
    slope of 0: the ReLU's max(x, 0)), the cap applies to +inf; the gradient
    at 0 takes the slope (TensorFlow's and PyTorch's choice), at and above the
    cap 0, and a slope of 0 passes 0 even for an infinite or NaN dy."""
    x = np.array([np.nan, -np.inf, np.inf, 0.0, -2.0, 3.0, 6.0, 7.0], np.float32)
    y = ops.leaky_relu(x, 0.5, max_value=6)
    np.testing.assert_array_equal(y, [np.nan, -np.inf, 6, 0, -1, 3, 6, 6])
    np.testing.assert_array_equal(ops.leaky_relu(x, 0.0), [np.nan, 0, np.inf, 0, 0, 3, 6, 7])
    dy = np.full(x.shape, 2.0, np.float32)
    np.testing.assert_array_equal(ops.leaky_relu_backward(dy, y, 0.5, max_value=6),
                                  [1, 1, 0, 1, 1, 2, 0, 0])
    dy[:] = [np.inf, np.nan, 1, 1, -np.inf, 1, 1, 1]
    got = ops.leaky_relu_backward(dy, ops.leaky_relu(x, 0.0), 0.0)
    np.testing.assert_array_equal(got, [0, 0, 1, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(got, ops.relu_backward(dy, ops.leaky_relu(x, 0.0)))


def test_leaky_relu_refuses_bad_arguments():
    x = np.ones((2, 3), np.float32)
    for slope in (-0.1, np.inf, np.nan, True, "0.2", None):
        with pytest.raises(ValueError, match="negative_slope must be a finite number >= 0"):
            ops.leaky_relu(x, slope)
        with pytest.raises(ValueError, match="negative_slope must be a finite number >= 0"):
            reference.leaky_relu_backward(x, x, slope)
    for cap in (-1.0, np.nan, False, "6"):
        with pytest.raises(ValueError, match="max_value must be None or a number >= 0"):
            ops.leaky_relu_backward(x, x, 0.2, max_value=cap)
        with pytest.raises(ValueError, match="max_value must be None or a number >= 0"):
            reference.leaky_relu(x, 0.2, max_value=cap)
    with pytest.raises(ValueError, match=r"y must have dy's shape \(2, 3\), got \(3, 2\)"):
        ops.leaky_relu_backward(x, x.T.copy(), 0.2)
    for out in (np.ones((2, 3)), np.ones((3, 2), np.float32).T, np.ones((6,), np.float32)):
        with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array"):
            ops.leaky_relu(x, 0.2, out=out)


@pytest.mark.parametrize("shape", [(0,), (1,), (17,), (3, 4, 5, 6), (128, 12, 12, 64)])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 12345, 2**64 - 1])
def test_dropout_matches_the_reference_bit_for_bit(simd_path, shape, rate, seed):
    """The C kernel and the NumPy twin compute the same mask from (seed, index)
    and round alike; in place when out is x; any thread count."""
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    want = reference.dropout(x, rate, seed)
    assert want.dtype == np.float32
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(ops.dropout(x, rate, seed, n_threads=threads), want)
    inplace = x.copy()
    assert ops.dropout(inplace, rate, seed, out=inplace) is inplace
    np.testing.assert_array_equal(inplace, want)
    assert reference.dropout(f64(x), rate, seed).dtype == np.float64


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.75])
def test_dropout_drops_the_rate_independently_and_scales_the_rest(rate):
    n = 1_000_000
    y = ops.dropout(np.ones(n, np.float32), rate, 2026)
    kept = y != 0
    np.testing.assert_array_equal(y[kept], np.float32(1.0 / (1.0 - rate)))
    # Binomial standard deviations are about 0.0005: 0.003 is six of them.
    assert abs((~kept).mean() - rate) < 0.003
    assert abs((kept[:-1] & kept[1:]).mean() - (1 - rate) ** 2) < 0.003  # neighbours
    other = ops.dropout(np.ones(n, np.float32), rate, 2027) != 0  # the next seed
    assert abs((kept & other).mean() - (1 - rate) ** 2) < 0.003


def test_dropout_nan_and_inf():
    """x * 0 for a dropped element, as NumPy's x * mask: NaN from an infinity."""
    x = np.full(64, np.inf, np.float32)
    x[::2] = np.nan
    y = ops.dropout(x, 0.5, 9)
    kept = reference.dropout(np.ones(64, np.float32), 0.5, 9) != 0
    assert kept.any() and not kept.all()
    np.testing.assert_array_equal(y, reference.dropout(x, 0.5, 9))
    assert np.isnan(y[~kept]).all()
    np.testing.assert_array_equal(y[kept], (x * np.float32(2))[kept])


def test_dropout_refuses_bad_arguments():
    x = np.ones((2, 3), np.float32)
    for rate in (-0.1, 1.0, 1.5, float("nan"), "0.5", True, None):
        with pytest.raises(ValueError, match=r"rate must be a number in \[0, 1\)"):
            ops.dropout(x, rate, 0)
    for seed in (-1, 2**64, 1.5, "3", None):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\)"):
            ops.dropout(x, 0.5, seed)
    for out in (np.ones((2, 3)), np.ones((3, 2), np.float32).T, np.ones((6,), np.float32)):
        with pytest.raises(ValueError, match="out must be a writeable C-contiguous float32 array"):
            ops.dropout(x, 0.5, 0, out=out)


def test_max_pool_nan_and_inf_propagate():
    x = np.zeros((1, 4, 4, 2), np.float32)
    x[0, 0, 1, 0] = np.nan
    x[0, 2, 2, 1] = np.inf
    x[0, 3, 3, 1] = -np.inf
    y = ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 0, 1])
    assert y[0, 1, 1, 1] == np.inf
    dx = ops.max_pool2d_backward(np.ones_like(y), x, 2)
    assert dx[0, 0, 1, 0] == 1.0 and dx[0, 0, 0, 0] == 0.0


@settings(max_examples=100, deadline=None)
@given(case=pool_cases(), ties=st.booleans(), relu=st.booleans(),
       rate=st.sampled_from([None, 0.0, 0.5]))
def test_max_pool_backward_from_the_argmax_is_the_backward_from_x(case, ties, relu, rate):
    """max_pool2d(..., return_argmax=True) gives the same y bits as without,
    the reference's argmax, and a backward from it that is the backward from x
    bit for bit: ties (zeros of both signs), NaN, infinities, padding,
    overlapping windows, relu, the dropout above; 300 channels run blocks of
    64, 32, 8 and a remainder, 17 and 24 of 16 and the rest, 8, 16 and 32 the
    forward's several pixels at once."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["n"], case["h"], case["w"], case["c"])
    x = (rng.integers(-1, 2, shape) if ties else rng.standard_normal(shape)).astype(np.float32)
    x[rng.random(shape) < 0.2] = -0.0
    if relu:
        x = np.maximum(x, np.float32(0))
    if x.size:
        x.flat[rng.integers(0, x.size, 3)] = [np.nan, np.inf, -np.inf]
    args = dict(strides=case["strides"], padding=case["padding"])
    if rate is not None:
        args["dropout"] = (rate, case["seed"] * 31)
    y, argmax = ops.max_pool2d(x, case["pool_size"], return_argmax=True, **args)
    np.testing.assert_array_equal(y.view(np.uint32),
                                  ops.max_pool2d(x, case["pool_size"], **args).view(np.uint32))
    assert argmax.dtype == np.uint8 and argmax.shape == y.shape
    want_y, want_argmax = reference.max_pool2d(x, case["pool_size"], return_argmax=True, **args)
    np.testing.assert_array_equal(argmax, want_argmax)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    from_x = ops.max_pool2d_backward(dy, x, case["pool_size"], relu=relu, **args)
    from_argmax = ops.max_pool2d_backward_argmax(dy, argmax, x.shape, case["pool_size"],
                                                 relu=relu, **args)
    np.testing.assert_array_equal(from_argmax.view(np.uint32), from_x.view(np.uint32))
    finite = np.nan_to_num(x, nan=0.0, posinf=9.0, neginf=-9.0)
    _, finite_argmax = reference.max_pool2d(f64(finite), case["pool_size"], return_argmax=True,
                                            **args)
    want = reference.max_pool2d_backward(f64(dy), f64(finite), case["pool_size"], relu=relu, **args)
    np.testing.assert_array_equal(
        reference.max_pool2d_backward_argmax(f64(dy), finite_argmax, x.shape, case["pool_size"],
                                             relu=relu, **args), want)
    finite_argmax_bwd = ops.max_pool2d_backward_argmax(
        dy, ops.max_pool2d(finite, case["pool_size"], return_argmax=True, **args)[1], x.shape,
        case["pool_size"], relu=relu, **args)
    assert_close(finite_argmax_bwd, want)


def special_values(x, rng):
    """x with a fifth of its cells -0.0, and NaN, +inf and -inf scattered."""
    x[rng.random(x.shape) < 0.2] = -0.0
    x.flat[rng.integers(0, x.size, 12)] = np.repeat([np.nan, np.inf, -np.inf], 4)
    return x


def pooling_passes(x, k, padding, relu, dy, strides=None):
    """Max pooling's forward (y and argmax) and backward (from x and from the
    argmax), with relu, and average pooling's forward, on the current SIMD
    path."""
    xr = np.maximum(x, np.float32(0)) if relu else x
    args = dict(strides=strides, padding=padding)
    y, argmax = ops.max_pool2d(xr, k, return_argmax=True, **args)
    return dict(y=y, argmax=argmax, plain_y=ops.max_pool2d(xr, k, **args),
                dx=ops.max_pool2d_backward(dy, xr, k, relu=relu, **args),
                dx_from_argmax=ops.max_pool2d_backward_argmax(dy, argmax, x.shape, k, relu=relu,
                                                              **args),
                avg=ops.avg_pool2d(x, k, **args))


@pytest.mark.parametrize("c", [16, 48, 64, 72])
@pytest.mark.parametrize("k, strides, padding", [
    (2, None, "valid"), (3, None, "valid"), (2, None, "same"), ((2, 3), None, "same"),
    (3, 2, "same"), ((3, 2), 1, "valid"),
])
def test_pooling_row_kernels_on_every_path(simd_path, c, k, strides, padding):
    """Whole windows with channels in whole vectors go to the SIMD path's row
    kernels (blocks of four, two and one vectors; 72 channels stay on
    pool2d.c's loops where a vector is 16): the forwards at any stride, the
    backward passes for windows side by side. The bits of the portable path,
    which runs pool2d.c's loops alone, with ties of both zeros, NaN,
    infinities, a ReLU, and padded windows and remainder columns left to
    pool2d.c; the backward from x also the backward from the argmax."""
    rng = np.random.default_rng(c + 7)
    x = special_values(rng.integers(-1, 2, (2, 9, 11, c)).astype(np.float32), rng)
    y_shape = ops.max_pool2d(x, k, strides=strides, padding=padding).shape
    dy = rng.standard_normal(y_shape).astype(np.float32)
    for relu in (False, True):
        got = pooling_passes(x, k, padding, relu, dy, strides)
        fastconv.set_simd_path("portable")
        try:
            want = pooling_passes(x, k, padding, relu, dy, strides)
        finally:
            fastconv.set_simd_path(simd_path)
        for name in got:
            np.testing.assert_array_equal(got[name].view(np.uint8), want[name].view(np.uint8),
                                          err_msg=name)
        np.testing.assert_array_equal(got["plain_y"].view(np.uint32), got["y"].view(np.uint32))
        np.testing.assert_array_equal(got["dx"].view(np.uint32),
                                      got["dx_from_argmax"].view(np.uint32))
    finite = np.nan_to_num(x, nan=0.0, posinf=9.0, neginf=-9.0)
    args = dict(strides=strides, padding=padding)
    assert_close(ops.max_pool2d_backward(dy, finite, k, **args),
                 reference.max_pool2d_backward(f64(dy), f64(finite), k, **args))
    assert_close(ops.avg_pool2d(finite, k, **args), reference.avg_pool2d(f64(finite), k, **args))


def test_pooling_streamed_past_the_cache_is_exact(simd_path):
    """Outputs past the streaming bound (a forward's y, a backward's dx) are
    written by streaming stores (and a fence before returning): the bits of
    the portable path, on any thread count."""
    pixels = 32 * 32 * 64  # floats of one pooled image's output, and a quarter of its input
    n = -(-fastconv._kernels.stream_min_bytes() // (4 * pixels))
    rng = np.random.default_rng(5)
    x = special_values(rng.standard_normal((n, 64, 64, 64)).astype(np.float32), rng)
    dy = rng.standard_normal((n, 32, 32, 64)).astype(np.float32)
    fastconv.set_simd_path("portable")
    try:
        want = pooling_passes(x, 2, "valid", False, dy)
    finally:
        fastconv.set_simd_path(simd_path)
    before = fastconv.get_num_threads()
    try:
        for threads in (1, 2, 3):
            fastconv.set_num_threads(threads)
            got = pooling_passes(x, 2, "valid", False, dy)
            for name in got:
                np.testing.assert_array_equal(got[name].view(np.uint8),
                                              want[name].view(np.uint8), err_msg=name)
    finally:
        fastconv.set_num_threads(before)


def test_max_pool_argmax_numbers_the_window_and_marks_positive_maxima():
    """The cell number counts the whole window, padding included (i * kw + j),
    plus 128 for a positive maximum; NaN: the first NaN, whose bits y keeps."""
    x = np.array([[1, 3], [3, 0]], np.float32).reshape(1, 2, 2, 1)
    y, argmax = ops.max_pool2d(x, 2, return_argmax=True)
    assert y.item() == 3 and argmax.item() == 128 + 1
    y, argmax = ops.max_pool2d(-x, 2, return_argmax=True)
    assert y.item() == 0 and argmax.item() == 3  # -0.0 at the last cell, not positive
    # "same" 3x3 windows, stride 3, over 2x2: the window starts one cell up and left.
    y, argmax = ops.max_pool2d(x, 3, strides=3, padding=((1, 1), (1, 1)), return_argmax=True)
    assert argmax.item() == 128 + 1 * 3 + 2
    nans = np.array([1.0, 0.0, 0.0, 0.0], np.float32).reshape(1, 2, 2, 1)
    bits = nans.view(np.uint32)
    bits.flat[1], bits.flat[2] = 0x7FC00001, 0xFFC00002  # two NaNs, other payloads
    y, argmax = ops.max_pool2d(nans, 2, return_argmax=True)
    assert y.view(np.uint32).item() == 0x7FC00001 and argmax.item() == 1
    dx = ops.max_pool2d_backward(np.ones_like(y), nans, 2)
    np.testing.assert_array_equal(dx.reshape(-1), [0, 1, 0, 0])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 2), h=st.integers(3, 14), w=st.integers(3, 14),
       c=st.sampled_from([1, 3, 8]), f=st.sampled_from([1, 6, 8, 16, 17, 32, 40]),
       k=st.integers(1, 3), stride=st.integers(1, 2), dilation=st.integers(1, 2),
       padding=st.sampled_from(["valid", "same"]), relu=st.booleans(), bias=st.booleans(),
       pool=st.sampled_from([(2, None, "valid"), (2, 2, "same"), (3, 2, "same"), (3, 3, "valid"),
                             (2, 1, "valid"), ((1, 3), (1, 2), "same")]),
       rate=st.sampled_from([None, 0.5]), seed=st.integers(0, 2**31 - 1))
def test_conv2d_max_pool2d_is_the_two_ops(simd_path, n, h, w, c, f, k, stride, dilation,
                                          padding, relu, bias, pool, rate, seed):
    """conv2d then max_pool2d in one call: the same y and argmax, bit for
    bit, fused (few input channels, windows apart vertically) or not (the
    last two pools overlap rows; 8 input channels times 9 taps leave the
    direct kernels), with NaN and infinities, on every SIMD path and thread
    count."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if x.size:
        x.flat[rng.integers(0, x.size, 2)] = [np.nan, np.inf]
    wt = rng.standard_normal((k, k, c, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    conv = dict(stride=stride, padding=padding, dilation=dilation,
                activation="relu" if relu else None)
    pool_size, pool_strides, pool_padding = pool
    try:
        z = ops.conv2d(x, wt, b, **conv)
        want, want_argmax = ops.max_pool2d(z, pool_size, strides=pool_strides, padding=pool_padding,
                                           return_argmax=True,
                                           dropout=None if rate is None else (rate, seed))
    except ValueError:  # the kernel or the pooling window larger than its input
        return
    for threads in (1, 2, 3):
        got, argmax = ops.conv2d_max_pool2d(
            x, wt, b, **conv, pool_size=pool_size, pool_strides=pool_strides,
            pool_padding=pool_padding, dropout=None if rate is None else (rate, seed),
            return_argmax=True, n_threads=threads)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(argmax, want_argmax)
    plain = ops.conv2d_max_pool2d(x, wt, b, **conv, pool_size=pool_size,
                                  pool_strides=pool_strides, pool_padding=pool_padding,
                                  dropout=None if rate is None else (rate, seed))
    np.testing.assert_array_equal(plain.view(np.uint32), want.view(np.uint32))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(5, 19), w=st.integers(5, 19),
       c=st.sampled_from([16, 24]), f=st.sampled_from([16, 17, 64, 80]), k=st.sampled_from([3, 5]),
       padding=st.sampled_from(["valid", "same"]), relu=st.booleans(), bias=st.booleans(),
       rate=st.sampled_from([None, 0.5]), nan=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_conv2d_max_pool2d_pools_in_the_winograd_output_transform(
        simd_path, n, h, w, c, f, k, padding, relu, bias, rate, nan, seed):
    """Layers of the 6x6 Winograd method pooled by 2x2 windows, stride 2, in
    its output transform: the same bits and argmax as the two ops, on odd and
    even sizes (tiles cut by the image's edge, windows cut by the pooling),
    past 64 filters, and through the unfused path where a NaN reaches the
    convolution's output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if nan:
        x.flat[rng.integers(0, x.size)] = np.nan
    wt = (rng.standard_normal((k, k, c, f)) / k).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    conv = dict(padding=padding, activation="relu" if relu else None)
    dropout = None if rate is None else (rate, seed)
    try:
        z = ops.conv2d(x, wt, b, **conv)
        want, want_argmax = ops.max_pool2d(z, 2, return_argmax=True, dropout=dropout)
    except ValueError:  # the kernel or the pooling window larger than its input
        return
    for threads in (1, 2, 3):
        got, argmax = ops.conv2d_max_pool2d(x, wt, b, **conv, pool_size=2, dropout=dropout,
                                            return_argmax=True, n_threads=threads)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
        np.testing.assert_array_equal(argmax, want_argmax)
    plain = ops.conv2d_max_pool2d(x, wt, b, **conv, pool_size=2, dropout=dropout)
    np.testing.assert_array_equal(plain.view(np.uint32), want.view(np.uint32))


def test_conv2d_max_pool2d_arguments_are_checked():
    x = np.ones((2, 8, 8, 1), np.float32)
    w = np.ones((3, 3, 1, 4), np.float32)
    with pytest.raises(ValueError, match=re.escape("b must have shape (4,), got (3,)")):
        ops.conv2d_max_pool2d(x, w, np.ones(3, np.float32))
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.conv2d_max_pool2d(x, w, activation="tanh")
    with pytest.raises(ValueError, match="pool_size 7x7 is larger than the padded input 6x6"):
        ops.conv2d_max_pool2d(x, w, pool_size=7)
    with pytest.raises(ValueError, match="return_argmax needs pooling windows of at most 128"):
        ops.conv2d_max_pool2d(np.ones((1, 20, 20, 1), np.float32), w, pool_size=12,
                              return_argmax=True)
    with pytest.raises(ValueError, match="w has 2 input channels"):
        ops.conv2d_max_pool2d(x, np.ones((3, 3, 2, 4), np.float32))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(3, 14), w=st.integers(3, 14),
       c=st.sampled_from([3, 16, 24]), f=st.sampled_from([16, 17, 32, 64]),
       k=st.sampled_from([3, 5]), padding=st.sampled_from(["valid", "same"]),
       activation=st.sampled_from([None, "relu"]), relu=st.booleans(),
       input_grad=st.booleans(), pool=st.sampled_from([(2, None, "valid"), (3, 2, "same")]),
       rate=st.sampled_from([None, 0.5]), nan=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_conv2d_max_pool2d_backward_is_the_two_ops(simd_path, n, h, w, c, f, k, padding,
                                                   activation, relu, input_grad, pool, rate, nan,
                                                   seed):
    """The backward of conv2d_max_pool2d from its argmax: the same dx, dw and
    db, bit for bit, as max_pool2d_backward_argmax then conv2d_backward, on
    every SIMD path and thread count, for any layer and pooling (most through
    the convolution's output gradient; see the next test), through the pooled
    layer's ReLU and the one below, with a NaN."""
    check_conv2d_max_pool2d_backward(n, h, w, c, f, k, padding, activation, relu, input_grad,
                                     pool, rate, nan, seed)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 2), h=st.sampled_from([5, 6, 9, 10, 13]),
       w=st.sampled_from([5, 6, 9, 10, 13]), c=st.sampled_from([16, 24]),
       f=st.sampled_from([16, 32, 64]), activation=st.sampled_from([None, "relu"]),
       relu=st.booleans(), input_grad=st.booleans(), rate=st.sampled_from([None, 0.5]),
       nan=st.sampled_from([False, False, False, True]), seed=st.integers(0, 2**31 - 1))
def test_conv2d_max_pool2d_backward_reads_the_pooled_gradient_in_the_winograd_pass(
        simd_path, n, h, w, c, f, activation, relu, input_grad, rate, nan, seed):
    """As above for the layers whose two gradients come from one pass of the
    Winograd method (unpadded 3x3 layers of 16 channels or more; on AVX-512
    with 16, 32 or 64 filters), pooled by 2x2 windows: that pass reads the
    convolution's output gradient a tile at a time from the pooling's (odd
    sizes leave pixels and windows at the edges), or, with a NaN, hands over
    to the other methods."""
    check_conv2d_max_pool2d_backward(n, h, w, c, f, 3, "valid", activation, relu, input_grad,
                                     (2, None, "valid"), rate, nan, seed)


def check_conv2d_max_pool2d_backward(n, h, w, c, f, k, padding, activation, relu, input_grad,
                                     pool, rate, nan, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if relu:
        x = np.maximum(x, 0)
    if nan:
        x.flat[rng.integers(0, x.size)] = np.nan
    wt = (rng.standard_normal((k, k, c, f)) / k).astype(np.float32)
    conv = dict(padding=padding)
    pool_size, pool_strides, pool_padding = pool
    pooling = dict(pool_size=pool_size, pool_strides=pool_strides, pool_padding=pool_padding,
                   dropout=None if rate is None else (rate, seed))
    try:
        _, argmax = ops.conv2d_max_pool2d(x, wt, **conv, activation=activation, **pooling,
                                          return_argmax=True)
    except ValueError:  # the kernel or the pooling window larger than its input
        return
    z_shape = ops.conv2d(x, wt, **conv).shape
    dy = rng.standard_normal(argmax.shape).astype(np.float32)
    dz = ops.max_pool2d_backward_argmax(dy, argmax, z_shape, pool_size, strides=pool_strides,
                                        padding=pool_padding, relu=activation == "relu",
                                        dropout=pooling["dropout"])
    want = ops.conv2d_backward(dz, x, wt, **conv, input_grad=input_grad, relu=relu)
    for threads in (1, 2, 3):
        got = ops.conv2d_max_pool2d_backward(dy, argmax, x, wt, **conv, activation=activation,
                                             **pooling, input_grad=input_grad, relu=relu,
                                             n_threads=threads)
        assert (got[0] is None) == (not input_grad)
        for have, expected in zip(got, want):
            if expected is not None:
                np.testing.assert_array_equal(have.view(np.uint32), expected.view(np.uint32))


def test_conv2d_max_pool2d_backward_arguments_are_checked():
    x = np.ones((1, 6, 6, 2), np.float32)
    w = np.ones((3, 3, 2, 4), np.float32)
    dy = np.ones((1, 2, 2, 4), np.float32)
    argmax = np.zeros((1, 2, 2, 4), np.uint8)
    ops.conv2d_max_pool2d_backward(dy, argmax, x, w)  # the shapes that fit
    with pytest.raises(TypeError, match="argmax must be max_pool2d's uint8 array, got float32"):
        ops.conv2d_max_pool2d_backward(dy, dy, x, w)
    with pytest.raises(ValueError, match=re.escape("argmax must have shape (1, 2, 2, 4)")):
        ops.conv2d_max_pool2d_backward(dy, argmax[:, :1], x, w)
    with pytest.raises(ValueError, match=re.escape("dy must have the forward output's shape (1, 2, 2, 4)")):
        ops.conv2d_max_pool2d_backward(dy[..., :3], argmax, x, w)
    with pytest.raises(ValueError, match="activation must be one of"):
        ops.conv2d_max_pool2d_backward(dy, argmax, x, w, activation="tanh")
    with pytest.raises(ValueError, match="w has 3 input channels"):
        ops.conv2d_max_pool2d_backward(dy, argmax, x, np.ones((3, 3, 3, 4), np.float32))
    with pytest.raises(TypeError, match="dropout must be None or a"):
        ops.conv2d_max_pool2d_backward(dy, argmax, x, w, dropout=0.5)


@pytest.mark.parametrize("pool_size,strides", [(2, 2), (3, 1), (3, 2)])
def test_max_pool_backward_from_any_bytes_stays_in_its_windows(pool_size, strides):
    """An argmax that max_pool2d did not write (any byte) only picks cells by
    comparing numbers, never indexes with them: each dx cell is a sum of its
    windows' dy or zero, nothing is written outside x's shape, nothing
    crashes."""
    rng = np.random.default_rng(pool_size * 10 + strides)
    x_shape = (2, 9, 8, 21)
    g_y = ops.max_pool2d(np.zeros(x_shape, np.float32), pool_size, strides=strides)
    argmax = rng.integers(0, 256, g_y.shape).astype(np.uint8)
    dy = np.ones(g_y.shape, np.float32)
    dx = ops.max_pool2d_backward_argmax(dy, argmax, x_shape, pool_size, strides=strides)
    assert dx.shape == x_shape and np.all((dx >= 0) & (dx == np.round(dx)))
    cells = (argmax & 127).astype(int)
    assert dx.sum() == np.count_nonzero(cells < pool_size * pool_size)


def test_max_pool_argmax_arguments_are_checked():
    x = np.ones((1, 12, 12, 2), np.float32)
    with pytest.raises(ValueError, match="return_argmax needs pooling windows of at most 128 "
                                         "cells, got pool_size 12x12"):
        ops.max_pool2d(x, 12, return_argmax=True)
    y, argmax = ops.max_pool2d(x, 2, return_argmax=True)
    dy = np.ones_like(y)
    with pytest.raises(TypeError, match="argmax must be max_pool2d's uint8 array, got int64"):
        ops.max_pool2d_backward_argmax(dy, argmax.astype(np.int64), x.shape)
    with pytest.raises(ValueError,
                       match=re.escape("argmax must have shape (1, 6, 6, 2), got (1, 6, 6, 1)")):
        ops.max_pool2d_backward_argmax(dy, argmax[..., :1], x.shape)
    with pytest.raises(ValueError, match="dy must have the forward output.s shape"):
        ops.max_pool2d_backward_argmax(dy[:, :5], argmax, x.shape)
    with pytest.raises(ValueError, match="argmax needs pooling windows of at most 128 cells"):
        ops.max_pool2d_backward_argmax(dy, argmax, (1, 24, 24, 2), 12, strides=2)
    with pytest.raises(ValueError, match="x must"):
        ops.max_pool2d_backward_argmax(dy, argmax, (12, 12, 2))
    np.testing.assert_array_equal(
        ops.max_pool2d_backward_argmax(dy, argmax[:, ::1], list(x.shape)),
        ops.max_pool2d_backward(dy, x))


@settings(max_examples=40, deadline=None)
@given(m=st.integers(0, 70), k=st.integers(0, 300), n=st.integers(0, 70), seed=st.integers(0, 1000))
def test_matmul_matches_numpy(simd_path, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    assert_close(ops.matmul(a, b), f64(a) @ f64(b))


def test_matmul_large_blocks(simd_path):
    """Shapes past every block size (MC, KC, NC) and not multiples of them;
    and a B too large to pack whole (past 16 MiB) under one row block,
    packed a depth block at a time: the same bits on 1-3 threads."""
    rng = np.random.default_rng(5)
    a = rng.standard_normal((301, 613)).astype(np.float32)
    b = rng.standard_normal((613, 4200)).astype(np.float32)
    assert_close(ops.matmul(a, b), f64(a) @ f64(b))
    a = rng.standard_normal((100, 1100)).astype(np.float32)
    b = rng.standard_normal((1100, 4100)).astype(np.float32)
    got = [ops.matmul(a, b, n_threads=t) for t in (1, 2, 3)]
    assert_close(got[0], f64(a) @ f64(b))
    for other in got[1:]:
        np.testing.assert_array_equal(other, got[0])


@pytest.mark.parametrize("n", [1, 8, 15, 16, 17, 32, 33, 64, 96, 160])
def test_products_as_wide_as_each_register_tile(simd_path, n):
    """Widths at and around the register tiles (AVX-512: a 6 x 16 set for
    products up to 16 columns, 6 x 32 up to 32, else 6 x 64, whose last panel
    may fill only half of it): plain, 1x1 (in place) and strided (taps read
    through row pointers) products, on 1 and 2 threads, and a Winograd layer
    whose backward-input pass is a product onto its 16 input channels."""
    rng = np.random.default_rng(n)
    a = rng.standard_normal((150, 70)).astype(np.float32)
    b = rng.standard_normal((70, n)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    for threads in (1, 2):
        assert_close(ops.matmul(a, b, n_threads=threads), f64(a) @ f64(b))
    for w_shape, stride in (((1, 1, 24, n), 1), ((3, 3, 24, n), 2), ((3, 3, 16, n), 1)):
        x = rng.standard_normal((2, 9, 11, w_shape[2])).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        y = ops.conv2d(x, w, bias, stride=stride, padding="same", activation="relu")
        want = reference.conv2d(f64(x), f64(w), f64(bias), stride=stride, padding="same")
        assert_close(y, np.maximum(want, 0))
        dy = rng.standard_normal(y.shape).astype(np.float32)
        got = ops.conv2d_backward(dy, x, w, stride=stride, padding="same")
        want = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=stride, padding="same")
        for g, r in zip(got, want):
            assert_close(g, r)


def test_products_of_few_rows_read_b_in_place_with_the_packed_bits(simd_path):
    """Products of few rows read B's whole panels where B lies (a partial
    last panel still packed): the same bits as the packed product of more
    rows, on 1-3 threads, with bias and ReLU (split along a deep K, in
    test_matmul_few_row_blocks_deep_k_same_for_any_thread_count); and a
    convolution's forward on one image (its weights read in place) is that
    image's part of the same layer over a batch (weights packed). Row counts
    are whole slivers of 6 rows: a partial one adds its bias last."""
    rng = np.random.default_rng(21)
    a = rng.standard_normal((300, 700)).astype(np.float32)
    b = rng.standard_normal((700, 200)).astype(np.float32)  # 64-wide panels: 3 and 8 columns
    bias = rng.standard_normal(200).astype(np.float32)
    packed = ops.dense(a, b, bias, activation="relu")
    assert_close(packed, np.maximum(f64(a) @ f64(b) + bias, 0))
    for threads in (1, 2, 3):
        np.testing.assert_array_equal(
            ops.dense(a[:30], b, bias, activation="relu", n_threads=threads), packed[:30])
    x = rng.standard_normal((8, 10, 12, 32)).astype(np.float32)  # 5 x 6 outputs an image
    w = rng.standard_normal((3, 3, 32, 130)).astype(np.float32)
    conv_bias = rng.standard_normal(130).astype(np.float32)
    batch = ops.conv2d(x, w, conv_bias, stride=2, padding=1)  # 240 rows: packed
    assert_close(batch, reference.conv2d(f64(x), f64(w), f64(conv_bias), stride=2, padding=1))
    for threads in (1, 2):
        np.testing.assert_array_equal(
            ops.conv2d(x[:1], w, conv_bias, stride=2, padding=1, n_threads=threads), batch[:1])


def test_threads_with_columns_of_their_own_give_the_one_thread_bits(simd_path):
    """On several threads a product whose B is past half an L2, with few rows
    per column of B and panels the threads share evenly (or many), gives
    each thread its own panels of C and its own
    packed part of B (a partial last panel, and with few rows panels read in
    place; a thread's columns past 4096 in blocks): the bits of the
    one-thread product, with bias and ReLU; and a convolution's forward and
    backward passes and a weight gradient (with its bias gradient) on such
    GEMMs."""
    rng = np.random.default_rng(22)
    for m, k, n in ((256, 700, 700), (30, 2000, 1100), (1000, 300, 520), (50, 200, 9000)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        got = [ops.dense(a, b, bias, activation="relu", n_threads=t) for t in (1, 2, 3)]
        assert_close(got[0], np.maximum(f64(a) @ f64(b) + bias, 0))
        for other in got[1:]:
            np.testing.assert_array_equal(other, got[0])
    x = rng.standard_normal((8, 7, 7, 64)).astype(np.float32)
    w = rng.standard_normal((3, 3, 64, 250)).astype(np.float32)  # 4 panels, the last partial
    dy = rng.standard_normal((8, 4, 4, 250)).astype(np.float32)
    forward = [ops.conv2d(x, w, stride=2, padding=1, n_threads=t) for t in (1, 2, 3)]
    backward = [ops.conv2d_backward(dy, x, w, stride=2, padding=1, n_threads=t)
                for t in (1, 2, 3)]
    assert_close(forward[0], reference.conv2d(f64(x), f64(w), stride=2, padding=1))
    for g, r in zip(backward[0], reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=2,
                                                           padding=1)):
        assert_close(g, r)
    for t in (1, 2):
        np.testing.assert_array_equal(forward[t], forward[0])
        for g, g0 in zip(backward[t], backward[0]):
            np.testing.assert_array_equal(g, g0)
    # A weight gradient of 2048 filters in one product (18 panels of 3 x 3 x
    # 128), dy^T read in place with its row sums (the bias gradient) taken by
    # the thread owning the first columns.
    x = rng.standard_normal((1, 70, 70, 128)).astype(np.float32)
    w = rng.standard_normal((3, 3, 128, 2048)).astype(np.float32)
    dy = rng.standard_normal((1, 34, 34, 2048)).astype(np.float32)
    weight = [ops.conv2d_backward(dy, x, w, stride=2, input_grad=False, n_threads=t)[1:]
              for t in (1, 2)]
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=2)
    assert_close(weight[0][0], want[1])
    assert_close(weight[0][1], f64(dy).sum(axis=(0, 1, 2)))
    for g, g0 in zip(weight[1], weight[0]):
        np.testing.assert_array_equal(g, g0)


def test_large_outputs_streamed_past_the_cache_are_exact(simd_path):
    """A GEMM writing 64 MiB or more in one pass (past the streaming bound
    on any machine) uses streaming stores (and a fence before returning): the
    values must be those of ordinary stores, on any thread count, and outputs
    start on a 64-byte boundary."""
    rng = np.random.default_rng(12)
    a = rng.standard_normal((16400, 64)).astype(np.float32)
    b = rng.standard_normal((64, 1030)).astype(np.float32)  # a partial last panel
    results = [ops.matmul(a, b, n_threads=t) for t in (1, 2, 3)]
    assert results[0].ctypes.data % 64 == 0
    assert_close(results[0], f64(a) @ f64(b))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    x = rng.standard_normal((8, 48, 48, 64)).astype(np.float32)
    w = rng.standard_normal((1, 1, 64, 1024)).astype(np.float32)
    assert_close(ops.conv2d(x, w), reference.conv2d(f64(x), f64(w)))


def test_matmul_few_row_blocks_deep_k_same_for_any_thread_count(simd_path):
    """A Dense layer's shape (one row block, a few panels, K far past KC) is
    split along K into chunks fixed by the shape, their partial sums added
    to the bias in order: every thread count gives the same bits. Also with
    A and B read transposed, a partial last sliver and panel, a narrow
    tile, bias and ReLU (NaN kept), and K just under and over the split; 32
    rows read B's whole panels in place."""
    rng = np.random.default_rng(6)
    b = rng.standard_normal((9216, 130)).astype(np.float32)
    for m in (128, 32):
        a = rng.standard_normal((m, 9216)).astype(np.float32)
        results = [ops.matmul(a, b, n_threads=t) for t in (1, 2, 3)]
        assert_close(results[0], f64(a) @ f64(b))
        for other in results[1:]:
            np.testing.assert_array_equal(other, results[0])
    for m, k, n in ((37, 5000, 10), (97, 4095, 70), (144, 4096, 256), (5, 20000, 33)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        a[m // 2, k // 3] = np.nan
        want = np.maximum(f64(a) @ f64(b) + bias, 0.0)
        got = [ops.dense(a, b, bias, activation="relu", n_threads=t) for t in (1, 2, 3)]
        assert np.isnan(got[0][m // 2]).all() and not np.isnan(got[0][m // 2 - 1]).any()
        assert_close(np.nan_to_num(got[0]), np.nan_to_num(want))
        for other in got[1:]:
            np.testing.assert_array_equal(other, got[0])
        a_t = np.ascontiguousarray(a.T).T  # the same values, read transposed
        b_t = np.ascontiguousarray(b.T).T
        product = f64(a) @ f64(b)
        for x, y in ((a_t, b), (a, b_t), (a_t, b_t)):
            got = ops.matmul(x, y)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(product))
            assert_close(np.nan_to_num(got), np.nan_to_num(product))


@pytest.mark.parametrize("x_shape,w_shape", [
    ((1, 256, 256, 80), (1, 1, 80, 16)),  # pointwise: chunks of one block of dy each
    ((1, 258, 260, 5), (3, 3, 5, 8)),  # im2col^T packed
])
def test_weight_gradient_chunks_split_by_depth(x_shape, w_shape):
    """A weight gradient over 64K pixels into few filters: each of its 16
    chunks of pixels is a product of one row block at least 4096 deep,
    itself split along the depth (but for the pointwise layer, whose chunks
    are walked in blocks of dy); the same bits on any thread count."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d(x, w).shape).astype(np.float32)
    backward_on_1_2_3_threads(dy, x, w)


def backward_on_1_2_3_threads(dy, x, w):
    """conv2d_backward on 1, 2 and 3 threads: the reference's values and the
    same bits on each. Returns the gradients."""
    got = [ops.conv2d_backward(dy, x, w, n_threads=t) for t in (1, 2, 3)]
    for g, r in zip(got[0], reference.conv2d_backward(f64(dy), f64(x), f64(w))):
        assert_close(g, r)
    for other in got[1:]:
        for g, o in zip(got[0], other):
            np.testing.assert_array_equal(o, g)
    return got[0]


@pytest.mark.parametrize("x_shape,w_shape", [
    ((4, 40, 25, 48), (1, 1, 48, 256)),  # dy^T x: chunks of 1000 pixels in 3 blocks
    ((4, 40, 25, 300), (1, 1, 300, 200)),  # more channels than filters: x^T dy
    ((2, 20, 25, 40), (1, 1, 40, 600)),  # wide dy rows: 2 blocks of whole slivers a chunk
    ((1, 6, 7, 1040), (1, 1, 1040, 1040)),  # dw too large for 4 partial sums: the GEMMs
    ((2, 30, 30, 64), (1, 1, 64, 160)),  # x's rows one panel of B (AVX-512): read in place
    ((2, 30, 30, 100), (1, 1, 100, 16)),  # x^T dy, dy's rows one panel: read in place
    ((1, 56, 56, 512), (1, 1, 512, 512)),  # 4.2 MB of partial sums: added by every thread
    ((1, 56, 56, 640), (1, 1, 640, 480)),  # the same, x^T dy
])
def test_pointwise_backward_in_blocks_of_dy(simd_path, x_shape, w_shape):
    """A pointwise layer's gradients come from one pass over dy, chunk by
    chunk in blocks that stay in L2 (but for the largest dw): the reference's
    values (and through a ReLU, relu_backward's), the weight gradient alone
    the same bits as with dx, and the same bits on any thread count."""
    rng = np.random.default_rng(sum(w_shape))
    x = np.maximum(rng.standard_normal(x_shape), 0.0).astype(np.float32)  # a ReLU's output
    w = (rng.standard_normal(w_shape) / np.sqrt(w_shape[2])).astype(np.float32)
    dy = rng.standard_normal(x_shape[:3] + w_shape[3:]).astype(np.float32)
    dx, dw, db = backward_on_1_2_3_threads(dy, x, w)
    alone = ops.conv2d_backward(dy, x, w, input_grad=False, n_threads=2)
    assert alone[0] is None
    np.testing.assert_array_equal(alone[1], dw)
    np.testing.assert_array_equal(alone[2], db)
    fused = ops.conv2d_backward(dy, x, w, relu=True, n_threads=2)
    np.testing.assert_array_equal(fused[0], ops.relu_backward(dx, x))
    np.testing.assert_array_equal(fused[1], dw)


@pytest.mark.parametrize("x_shape,w_shape", [
    ((32, 16, 16, 64), (3, 3, 64, 128)),  # 4 partial sums of 0.3 MB: added by the last thread
    ((16, 14, 14, 256), (3, 3, 256, 256)),  # 4 of 2.4 MB: by every thread, after
])
def test_weight_gradient_partial_sums_added_in_chunk_order(simd_path, x_shape, w_shape):
    """A stride-2 layer's weight gradient (a GEMM per chunk of pixels): its
    partial sums added by one thread or by all, the reference's values and
    the same bits on any thread count."""
    rng = np.random.default_rng(w_shape[3])
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d(x, w, stride=2, padding=1).shape).astype(np.float32)
    got = [ops.conv2d_backward(dy, x, w, stride=2, padding=1, input_grad=False, n_threads=t)
           for t in (1, 2, 3)]
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=2, padding=1)
    for g, r in zip(got[0][1:], want[1:]):
        assert_close(g, r)
    for other in got[1:]:
        for g, o in zip(got[0][1:], other[1:]):
            np.testing.assert_array_equal(o, g)


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_products_of_few_rows(simd_path, m):
    """Up to FC_SMALL_M rows take their own path (B read once, in place): A
    plain and transposed, bias and relu, widths past one pass of columns and
    not whole vectors, the same bits on any thread count."""
    rng = np.random.default_rng(20 + m)
    for k, n in ((300, 37), (1000, 600), (9, 1)):
        a = rng.standard_normal((m, k)).astype(np.float32)
        at = np.ascontiguousarray(a.T).T  # a transposed view of the same values
        b = rng.standard_normal((k, n)).astype(np.float32)
        bias = rng.standard_normal(n).astype(np.float32)
        want = f64(a) @ f64(b)
        assert_close(ops.matmul(a, b), want)
        assert_close(ops.matmul(at, b), want)
        relu = [ops.dense(a, b, bias, activation="relu", n_threads=t) for t in (1, 2, 3)]
        assert_close(relu[0], np.maximum(want + bias, 0.0))
        for other in relu[1:]:
            np.testing.assert_array_equal(other, relu[0])


@pytest.mark.parametrize("shape_a,shape_b", [((64, 300), (64, 50)), ((5, 7), (5, 3))])
def test_matmul_reads_transposed_views_in_place(simd_path, shape_a, shape_b):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape_a).astype(np.float32)
    dy = rng.standard_normal(shape_b).astype(np.float32)
    assert_close(ops.matmul(x.T, dy), f64(x).T @ f64(dy))  # a transposed
    assert_close(ops.matmul(dy.T, x), f64(dy).T @ f64(x))
    w = rng.standard_normal((shape_b[1], shape_a[1])).astype(np.float32)
    assert_close(ops.matmul(dy, w), f64(dy) @ f64(w))
    assert_close(ops.matmul(x, w.T), f64(x) @ f64(w).T)  # b transposed
    assert_close(ops.matmul(w.T.T.T, dy.T), f64(w).T @ f64(dy).T)  # both


@pytest.mark.parametrize("x_shape,w_shape", [
    ((2, 6, 6, 3), (3, 3, 3, 4)),  # direct kernels: both gradients from one pass
    ((3, 14, 14, 16), (3, 3, 16, 32)),  # 6x6 Winograd: both from dy's transformed tiles
])
def test_conv2d_backward_can_skip_the_input_gradient(x_shape, w_shape):
    """Without dx the weight and bias gradients are bitwise those computed
    beside it (where one pass serves both, the same pass computes them)."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d(x, w).shape).astype(np.float32)
    dx, dw, db = ops.conv2d_backward(dy, x, w, input_grad=False)
    full = ops.conv2d_backward(dy, x, w)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])


@pytest.mark.parametrize("x_shape,w_shape,stride,padding,dilation", [
    ((40, 28, 28, 1), (3, 3, 1, 32), 1, "valid", 1),  # S1 at batch 40: 16 chunks of dy rows
    ((6, 23, 27, 3), (3, 3, 3, 40), 2, "same", 1),  # strided, a partial filter block
    ((5, 19, 17, 2), (3, 4, 2, 16), (1, 2), ((3, 0), (1, 4)), (2, 1)),  # dilated, uneven padding
])
def test_one_backward_pass_equals_the_two_passes(simd_path, x_shape, w_shape, stride, padding,
                                                 dilation):
    """Few channels take both gradients from one pass over dy; they are bit for
    bit those of the separate backward-input and backward-weight passes."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    args = dict(stride=stride, padding=padding, dilation=dilation)
    dy = np.cos(ops.conv2d(x, w, **args))
    g, params = ops._conv_params(x.shape, w.shape, stride, padding, dilation)
    for threads in (1, 2):
        dx, dw, db = ops.conv2d_backward(dy, x, w, n_threads=threads, **args)
        np.testing.assert_array_equal(
            dx, fastconv._kernels.conv2d_backward_input(dy, w, x_shape, params, threads))
        sep_dw, sep_db = fastconv._kernels.conv2d_backward_weight(x, dy, w_shape, params, threads)
        np.testing.assert_array_equal(dw, sep_dw)
        np.testing.assert_array_equal(db, sep_db)
    rdx, rdw, rdb = reference.conv2d_backward(f64(dy), f64(x), f64(w), **args)
    assert_close(dx, rdx)
    assert_close(dw, rdw)
    assert_close(db, rdb)


def test_dense_fused_bias_relu():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((37, 29)).astype(np.float32)
    w = rng.standard_normal((29, 45)).astype(np.float32)
    b = rng.standard_normal(45).astype(np.float32)
    assert_close(ops.dense(x, w, b), f64(x) @ f64(w) + b)
    assert_close(ops.dense(x, w, b, activation="relu"), np.maximum(f64(x) @ f64(w) + b, 0))


WINOGRAD_CASES = [
    # Stride 1, kernels from 3x3, at least 16 channels and filters: the Winograd path,
    # F(4x4, 3x3) and F(2x2, 5x5) for most square 3x3 and 5x5 kernels here (tiles cut by
    # every edge), F(2x2, 3x3) in 3x3 pieces for the others.
    ((2, 7, 9, 16), (3, 3, 16, 16), "valid"),
    ((3, 8, 5, 20), (3, 3, 20, 33), "same"),
    ((1, 6, 6, 17), (3, 3, 17, 40), ((2, 0), (1, 2))),
    ((2, 11, 10, 64), (3, 3, 64, 70), 1),
    ((1, 3, 3, 16), (3, 3, 16, 16), "valid"),
    ((2, 5, 4, 300), (3, 3, 300, 17), "same"),
    ((40, 12, 12, 16), (3, 3, 16, 16), "same"),  # many weight-gradient chunks
    ((1, 5, 5, 16), (3, 3, 16, 16), 3),  # padding past 2: backward-input by GEMM
    # U past L2: F(4x4, 3x3) in fewer, larger blocks of tiles; F(3x3, 4x4) for the weight
    # gradient
    ((2, 6, 6, 128), (3, 3, 128, 160), "same"),
    ((5, 9, 7, 128), (3, 3, 128, 272), "valid"),  # several large blocks, the last short
    # too many weights for F(4x4, 3x3) (and its weight gradient): F(2x2, 3x3)
    ((1, 4, 4, 264), (3, 3, 264, 256), "same"),
    # Larger kernels, cut into 3x3 pieces.
    ((2, 9, 9, 16), (5, 5, 16, 16), "valid"),
    ((3, 8, 7, 20), (5, 5, 20, 33), "same"),
    ((1, 9, 9, 17), (7, 7, 17, 40), ((2, 0), (1, 3))),
    ((2, 11, 10, 24), (3, 5, 24, 20), 1),
    ((2, 8, 8, 16), (6, 6, 16, 16), "same"),
    ((1, 60, 60, 16), (5, 4, 16, 16), "same"),  # a large image: blocks of tile rows
    ((12, 9, 9, 16), (4, 5, 16, 24), "same"),  # small images: several per block
    ((3, 30, 30, 16), (5, 5, 16, 24), "same"),  # F(2x2, 5x5), several blocks of tiles
    # Unpadded (or less padded) 3x3: backward-input from dy's tiles, its transposed
    # F(4x4, 3x3) adding overlapping patches into dx.
    ((20, 13, 13, 16), (3, 3, 16, 32), "valid"),  # 8 images a block, the last block short
    ((3, 26, 26, 40), (3, 3, 40, 24), "valid"),  # an image a block; channels 16 + 16 + 8
    ((2, 13, 9, 20), (3, 3, 20, 24), ((1, 0), (0, 1))),  # padding shifts the patches
    ((2, 6, 5, 16), (3, 3, 16, 17), "valid"),  # one tile an image, cut by both edges
    # ... with 16, 32 or 64 filters (one panel of the micro-kernel on AVX-512): the weight
    # gradient in the same pass, from the same transformed tiles of dy.
    ((3, 14, 14, 24), (3, 3, 24, 64), "valid"),  # a chunk an image
    ((17, 6, 6, 16), (3, 3, 16, 16), "valid"),  # 16 chunks of 1-2 images
    ((2, 13, 9, 20), (3, 3, 20, 32), ((1, 0), (0, 1))),
]


@pytest.mark.parametrize("x_shape,w_shape,padding", WINOGRAD_CASES)
def test_winograd_path_matches_reference(simd_path, x_shape, w_shape, padding):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[3]).astype(np.float32)
    y = ops.conv2d(x, w, b, padding=padding, activation="relu")
    assert_close(y, np.maximum(reference.conv2d(f64(x), f64(w), f64(b), padding=padding), 0))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.conv2d_backward(dy, x, w, padding=padding)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), padding=padding)
    for g, r in zip(got, want):
        assert_close(g, r)
    for threads in (1, 3):
        again = ops.conv2d_backward(dy, x, w, padding=padding, n_threads=threads)
        for g, a in zip(got, again):
            np.testing.assert_array_equal(g, a)


@pytest.mark.parametrize("x_shape,w_shape", [
    ((8, 26, 26, 32), (3, 3, 32, 64)),  # S2 (MNIST's second layer), a smaller batch
    ((4, 16, 16, 64), (3, 3, 64, 128)),  # S4
    ((8, 14, 14, 32), (5, 5, 32, 64)),  # S3
    ((4, 8, 8, 128), (3, 3, 128, 256)),  # S5: U past L2, large blocks of tiles
])
def test_winograd_6x6_rounding_stays_small(simd_path, x_shape, w_shape):
    """F(4x4, 3x3) and F(2x2, 5x5) and their weight-gradient transposes
    transform with coefficients up to 8 and 1/24: their error is about 10-20x
    F(2x2, 3x3)'s, and must stay within 2e-5 of each gradient's scale for a
    layer initialised as Keras does (variance 1 / fan-in)."""
    rng = np.random.default_rng(12)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
    y = ops.conv2d(x, w, padding="same")
    assert_close(y, reference.conv2d(f64(x), f64(w), padding="same"), tol=2e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.conv2d_backward(dy, x, w, padding="same")
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), padding="same")
    for g, r in zip(got, want):  # dx, dw (F(3x3, 4x4) or F(5x5, 2x2)), db
        assert_close(g, r, tol=2e-5)


@st.composite
def winograd_6x6_layers(draw):
    k = draw(st.sampled_from([3, 5]))
    padding = draw(st.one_of(st.sampled_from(["same", "valid"]), st.integers(0, k - 1)))
    shape = (draw(st.integers(1, 3)), draw(st.integers(k, 20)), draw(st.integers(k, 20)),
             draw(st.integers(16, 40)))
    return shape, (k, k, shape[3], draw(st.integers(16, 40))), padding, draw(st.integers(0, 2**31))


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(layer=winograd_6x6_layers())
def test_winograd_6x6_rounding_on_random_layers(layer):
    """Random 3x3 and 5x5 layers of 16-40 channels: every gradient within 4e-5
    of its scale (a sweep of 352 such layers found at most 1.6e-5, in 5x5
    weight gradients)."""
    x_shape, w_shape, padding, seed = layer
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
    y = ops.conv2d(x, w, padding=padding)
    assert_close(y, reference.conv2d(f64(x), f64(w), padding=padding), tol=4e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = ops.conv2d_backward(dy, x, w, padding=padding)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), padding=padding)
    for g, r in zip(got, want):
        assert_close(g, r, tol=4e-5)


@pytest.fixture
def winograd_mode():
    before = fastconv.get_winograd()
    yield fastconv.set_winograd
    fastconv.set_winograd(before)


def keras_layer(x_shape, w_shape, seed=13):
    """x, w and dy for a layer initialised as Keras does (variance 1 / fan-in)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
    dy = rng.standard_normal(x_shape[:3] + w_shape[3:]).astype(np.float32)
    return x, w, dy


@pytest.mark.parametrize("mode,tol", [("off", 2e-6), ("accurate", 2e-6), ("fast", 2e-5)])
@pytest.mark.parametrize("w_shape", [(3, 3, 32, 64), (5, 5, 32, 48)])
def test_winograd_modes_match_the_reference(winograd_mode, mode, tol, w_shape):
    """'accurate' (F(2x2, 3x3) only) and 'off' round like the direct method;
    'fast' within the 6x6 domain's larger bound."""
    winograd_mode(mode)
    x, w, dy = keras_layer((4, 14, 14, 32), w_shape)
    assert_close(ops.conv2d(x, w, padding="same"), reference.conv2d(f64(x), f64(w), padding="same"),
                 tol=tol)
    got = ops.conv2d_backward(dy, x, w, padding="same")
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), padding="same")
    for g, r in zip(got, want):
        assert_close(g, r, tol=tol)


@pytest.mark.parametrize("x_shape,w_shape", [
    ((5, 9, 9, 200), (3, 3, 200, 170)),  # one piece: runs of tiles
    ((3, 8, 7, 64), (5, 5, 64, 130)),  # four 3x3 pieces: whole images
])
def test_winograd_with_weights_past_l2_matches_the_reference(winograd_mode, x_shape, w_shape):
    """F(2x2, 3x3) whose transformed kernel is too large for L2 (over 512K
    floats) runs blocks of many tiles, as many as the threads share: every
    thread count gives the same bits, which round like the direct method."""
    winograd_mode("accurate")
    x, w, dy = keras_layer(x_shape, w_shape)
    want = reference.conv2d(f64(x), f64(w), padding="same")
    want_dx, want_dw, _ = reference.conv2d_backward(f64(dy), f64(x), f64(w), padding="same")
    ys = [ops.conv2d(x, w, padding="same", n_threads=t) for t in (1, 2, 3)]
    dxs = [ops.conv2d_backward(dy, x, w, padding="same", n_threads=t)[0] for t in (1, 2, 3)]
    assert_close(ys[0], want, tol=2e-6)
    assert_close(dxs[0], want_dx, tol=2e-6)
    for y, dx in zip(ys[1:], dxs[1:]):
        assert np.array_equal(y, ys[0])
        assert np.array_equal(dx, dxs[0])


def test_winograd_modes_choose_different_methods(winograd_mode):
    x, w, dy = keras_layer((4, 14, 14, 32), (3, 3, 32, 64))
    results = {}
    for mode in ("off", "accurate", "fast"):
        winograd_mode(mode)
        assert fastconv.get_winograd() == mode
        results[mode] = (ops.conv2d(x, w, padding="same"),
                         *ops.conv2d_backward(dy, x, w, padding="same")[:2])
    for a, b in (("off", "accurate"), ("accurate", "fast"), ("off", "fast")):
        for i in range(3):  # y, dx, dw: each a different method's rounding
            assert not np.array_equal(results[a][i], results[b][i]), (a, b, i)


def test_winograd_mode_refuses_unknown_names_and_reads_the_environment():
    before = fastconv.get_winograd()
    with pytest.raises(ValueError, match="Winograd mode must be one of"):
        fastconv.set_winograd("f6")
    assert fastconv.get_winograd() == before
    env = python_env(FASTCONV_WINOGRAD="accurate")
    out = run_python(["-c", "import fastconv; print(fastconv.get_winograd())"], env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "accurate"


def check_scale_setting(name):
    """fastconv.set_<name>(scale) refuses what is not a number from 0 to 1e6
    and keeps the tests' 0; FASTCONV_<NAME> sets it at import (empty: the
    default, 1), and a child process fails on a value that is not a number."""
    setter, getter = getattr(fastconv, f"set_{name}"), getattr(fastconv, f"get_{name}")
    for bad, error in ((-1, ValueError), (float("nan"), ValueError), (2e6, ValueError),
                       ("1", TypeError), (True, TypeError)):
        with pytest.raises(error, match="scale must be"):
            setter(bad)
    assert getter() == 0
    variable, code = f"FASTCONV_{name.upper()}", f"import fastconv; print(fastconv.get_{name}())"
    out = run_python(["-c", code], env=python_env(**{variable: "0.25"}))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.25"
    out = run_python(["-c", code], env=python_env(**{variable: "many"}))
    assert out.returncode != 0
    assert f"{variable} must be a number, got 'many'" in out.stderr
    out = run_python(["-c", code], env=python_env(**{variable: ""}))
    assert out.stdout.strip() == "1.0"


def test_parallel_threshold_keeps_results_and_reads_the_environment():
    """The scale only decides how many threads a call wakes: the default
    (small calls on one thread) and 0 (every call on all of them) give the
    same bits, here for calls on either side of each kind's threshold."""
    assert fastconv.get_parallel_threshold() == 0  # tests/conftest.py
    rng = np.random.default_rng(3)
    cases = [((1, 28, 28, 1), (3, 3, 1, 32)), ((16, 28, 28, 1), (3, 3, 1, 32)),  # direct
             ((1, 26, 26, 32), (3, 3, 32, 64)), ((12, 26, 26, 32), (3, 3, 32, 64)),  # Winograd
             ((2, 16, 16, 64), (1, 1, 64, 128)), ((12, 16, 16, 64), (1, 1, 64, 128))]  # GEMM

    def outputs():
        out = []
        for x_shape, w_shape in cases:
            x, w, dy = keras_layer(x_shape, w_shape)
            y = ops.conv2d(x, w, activation="relu", n_threads=2)
            out += [y, *ops.conv2d_backward(dy[:, :y.shape[1], :y.shape[2]], x, w, n_threads=2),
                    ops.max_pool2d(y, 2, n_threads=2), ops.relu_backward(y, y, n_threads=2)]
        a = rng.standard_normal((24, 9216)).astype(np.float32)  # a Dense layer on 24 rows
        b = rng.standard_normal((9216, 128)).astype(np.float32)
        return out + [ops.matmul(a, b, n_threads=2)]

    everything = outputs()
    rng = np.random.default_rng(3)
    try:
        fastconv.set_parallel_threshold(1)
        assert fastconv.get_parallel_threshold() == 1
        small_on_one = outputs()
    finally:
        fastconv.set_parallel_threshold(0)
    for k, (a, b) in enumerate(zip(everything, small_on_one)):
        assert a.tobytes() == b.tobytes(), f"output {k} differs"
    check_scale_setting("parallel_threshold")


def test_winograd_threshold_sends_few_tiles_to_the_gemm_and_reads_the_environment(winograd_mode):
    """At the default scale a layer of few tiles (one 7 x 7 image) takes the
    GEMM for its forward and backward-input passes (the bits of Winograd
    'off'), and for its weight gradient too when its kernel is large (384 x
    384: 2.4M transformed floats); a layer of many tiles (16 images of 14 x
    14) keeps its Winograd methods, as every layer does at 0 (the tests')."""
    assert fastconv.get_winograd_threshold() == 0  # tests/conftest.py
    layers = {"few tiles": keras_layer((1, 7, 7, 64), (3, 3, 64, 64)),
              "many tiles": keras_layer((16, 14, 14, 64), (3, 3, 64, 64)),
              "few tiles, large kernel": keras_layer((1, 7, 7, 384), (3, 3, 384, 384))}

    def passes(x, w, dy):  # y, dx, dw
        return (ops.conv2d(x, w, padding="same"),
                *ops.conv2d_backward(dy, x, w, padding="same")[:2])

    winograd_mode("off")
    gemm = {name: passes(*layer) for name, layer in layers.items()}
    winograd_mode("fast")
    always = {name: passes(*layer) for name, layer in layers.items()}
    try:
        fastconv.set_winograd_threshold(1)
        assert fastconv.get_winograd_threshold() == 1
        weighed = {name: passes(*layer) for name, layer in layers.items()}
    finally:
        fastconv.set_winograd_threshold(0)
    takes_gemm = {"few tiles": (True, True, False), "many tiles": (False, False, False),
                  "few tiles, large kernel": (True, True, True)}
    for name in layers:
        for i in range(3):
            # at 0, Winograd everywhere: no pass rounds as the GEMM does
            assert not np.array_equal(always[name][i], gemm[name][i]), (name, i)
            assert np.array_equal(weighed[name][i], gemm[name][i]) == takes_gemm[name][i], (name, i)
    check_scale_setting("winograd_threshold")


# ---- threads and paths ------------------------------------------------------

BIG_CASES = [
    # (x shape, w shape, stride, padding): several row blocks, several
    # weight-gradient chunks, channels past the register tile.
    ((6, 20, 20, 13), (3, 3, 13, 37), 1, "same"),
    ((3, 17, 19, 40), (5, 3, 40, 70), 2, 1),
    ((2, 30, 30, 64), (1, 1, 64, 96), 1, "valid"),
    ((4, 30, 30, 24), (3, 3, 24, 40), 1, "same"),  # Winograd
    ((9, 29, 31, 1), (3, 3, 1, 40), 1, "valid"),  # direct (few channels), a partial filter block
    ((5, 23, 27, 3), (3, 3, 3, 32), 2, "same"),  # direct, strided
    ((3, 13, 11, 2), (5, 5, 2, 20), 2, 2),  # indirect GEMM with 2 channels a tap
    ((4, 18, 17, 6), (5, 5, 6, 16), 1, "same"),  # direct, few channels: 150 taps (LeNet-5's)
    ((2, 20, 22, 8), (7, 7, 8, 33), 1, "valid"),  # direct, 392 taps, a partial filter block
    ((3, 33, 31, 3), (7, 7, 3, 24), 2, 3),  # direct forward and dw (147 taps), dx by phases
    # stride 5: 25 backward-input phases (run together 16 at a time), some no tap reaches
    ((2, 23, 21, 12), (3, 3, 12, 20), 5, 1),
]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), rows=st.integers(2, 8), cols=st.integers(2, 8),
       c=st.sampled_from([16, 20]), f=st.sampled_from([16, 33]), k=st.sampled_from([3, 5]),
       dh=st.integers(1, 3), dw=st.integers(2, 3), pads=st.tuples(*[st.integers(0, 2)] * 4),
       relu=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_dilated_layers_on_their_phases_match_the_reference(simd_path, n, rows, cols, c, f, k,
                                                            dh, dw, pads, relu, seed):
    """A dilated layer whose sizes and top-left padding are multiples of its
    dilations runs as one undilated layer of its phase images (Winograd's):
    forward, both gradients (through a ReLU below it) and the input gradient
    alone against the reference, the same bits on every thread count."""
    pt, pb, pl, pr = (dh * pads[0], dh * pads[1], dw * pads[2], dw * pads[3])
    x_shape = (n, dh * rows, dw * cols, c)
    if rows + pads[0] + pads[1] < k or cols + pads[2] + pads[3] < k:
        return  # no output
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    if relu:
        x = np.maximum(x, 0)
    w = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    conv = dict(padding=((pt, pb), (pl, pr)), dilation=(dh, dw))
    y = ops.conv2d(x, w, b, **conv)
    assert_close(y, reference.conv2d(f64(x), f64(w), f64(b), **conv), tol=4e-5)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), **conv)
    mask = (x > 0) if relu else np.ones_like(x, bool)
    got = ops.conv2d_backward(dy, x, w, **conv, relu=relu)
    for g, r in zip(got, (want[0] * mask, *want[1:])):
        assert_close(g, r, tol=4e-5)
    params = ops._conv_geometry(x.shape, w.shape, 1, conv["padding"], (dh, dw))[1]
    assert_close(ops._kernels.conv2d_backward_input(dy, w, x.shape, params, None), want[0],
                 tol=4e-5)
    for threads in (1, 3):
        np.testing.assert_array_equal(ops.conv2d(x, w, b, **conv, n_threads=threads), y)
        again = ops.conv2d_backward(dy, x, w, **conv, relu=relu, n_threads=threads)
        for g, a in zip(got, again):
            np.testing.assert_array_equal(g, a)


def test_dilated_layers_take_their_phases_only_where_they_line_up(winograd_mode):
    """Top padding a multiple of the dilation: the phase images' Winograd
    method (other bits than the GEMM's); not a multiple: the GEMM, the bits
    of Winograd 'off'."""
    x, w, dy = keras_layer((2, 16, 16, 16), (3, 3, 16, 16))
    results = {}
    for mode in ("off", "fast"):
        winograd_mode(mode)
        for pad in (2, 1):
            y = ops.conv2d(x, w, padding=pad, dilation=2)
            results[mode, pad] = (y, *ops.conv2d_backward(dy[:, :y.shape[1], :y.shape[2]], x, w,
                                                          padding=pad, dilation=2)[:2])
    for i in range(3):
        assert not np.array_equal(results["fast", 2][i], results["off", 2][i])
        np.testing.assert_array_equal(results["fast", 1][i], results["off", 1][i])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), h=st.integers(3, 19), w=st.integers(3, 19),
       c=st.sampled_from([16, 20]), f=st.sampled_from([16, 33, 70]), k=st.sampled_from([4, 5]),
       pads=st.tuples(*[st.integers(0, 3)] * 4), relu=st.booleans(), bias=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_strided_winograd_matches_the_reference(simd_path, n, h, w, c, f, k, pads, relu, bias,
                                                seed):
    """A stride-2 4x4 or 5x5 layer's three passes by Winograd on its phase
    images (winograd_strided.c: F(4x4, 2x2), F(4x4, 3x3); dx by groups of
    phases that share their origins; dw by F(2x2, 4x4), F(3x3, 4x4)): odd and
    even sizes and paddings, edge tiles, the bias and ReLU, dx through a ReLU
    below, against the reference; the same bits on every thread count."""
    padding = ((pads[0], pads[1]), (pads[2], pads[3]))
    if h + pads[0] + pads[1] < k or w + pads[2] + pads[3] < k:
        return  # no output
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    wt = (rng.standard_normal((k, k, c, f)) / np.sqrt(k * k * c)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32) if bias else None
    conv = dict(stride=2, padding=padding)
    y = ops.conv2d(x, wt, b, activation="relu" if relu else None, **conv)
    want = reference.conv2d(f64(x), f64(wt), None if b is None else f64(b), **conv)
    assert_close(y, np.maximum(want, 0) if relu else want, tol=2e-5)
    if relu:  # x as a ReLU's output: dx through that ReLU, in the pass that writes it
        x = np.maximum(x, 0)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    params = ops._conv_geometry(x.shape, wt.shape, 2, padding, 1)[1]
    dx = ops._kernels.conv2d_backward_input(dy, wt, x.shape, params, None)
    want_dx = reference.conv2d_backward(f64(dy), f64(x), f64(wt), **conv)[0]
    assert_close(dx, want_dx, tol=2e-5)
    grads = ops.conv2d_backward(dy, x, wt, relu=relu, **conv)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(wt), **conv)
    for g, r in zip(grads, (want_dx * (x > 0) if relu else want_dx, *want[1:])):
        assert_close(g, r, tol=2e-5)
    for threads in (1, 3):
        again = ops.conv2d(x, wt, b, activation="relu" if relu else None, n_threads=threads,
                           **conv)
        np.testing.assert_array_equal(again, ops.conv2d(x, wt, b, activation="relu" if relu
                                                        else None, **conv))
        np.testing.assert_array_equal(
            ops._kernels.conv2d_backward_input(dy, wt, x.shape, params, threads), dx)
        for g, again in zip(grads, ops.conv2d_backward(dy, x, wt, relu=relu, n_threads=threads,
                                                       **conv)):
            np.testing.assert_array_equal(g, again)


def test_strided_winograd_takes_4x4_and_5x5_kernels_and_falls_back_on_infinities(
        winograd_mode):
    """Stride-2 4x4 and 5x5 layers take the strided Winograd methods in all
    three passes (other bits than the GEMM's: Winograd 'off'), 3x3 ones and
    those of many channels the GEMM (the same bits); an infinite weight,
    input or gradient sends the pass to the GEMM (dx to col2im), which writes
    the infinities and NaN the direct sums give."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 16, 16, 16)).astype(np.float32)
    kernels = {k: rng.standard_normal((k, k, 16, 32)).astype(np.float32) for k in (3, 4, 5)}
    results = {}
    for mode in ("off", "fast"):
        winograd_mode(mode)
        for k, wt in kernels.items():
            y = ops.conv2d(x, wt, stride=2, padding=1)
            results[mode, k] = (y, *ops.conv2d_backward(np.ones_like(y), x, wt, stride=2,
                                                        padding=1)[:2])
    for i in range(3):  # y, dx, dw
        assert not np.array_equal(results["fast", 4][i], results["off", 4][i])
        assert not np.array_equal(results["fast", 5][i], results["off", 5][i])
        np.testing.assert_array_equal(results["fast", 3][i], results["off", 3][i])
    # 256 -> 256 channels, 5x5: a transformed kernel past 8 MB takes the GEMM
    big_x = rng.standard_normal((1, 12, 12, 256)).astype(np.float32)
    big_w = rng.standard_normal((5, 5, 256, 256)).astype(np.float32)
    big = {}
    for mode in ("off", "fast"):
        winograd_mode(mode)
        big[mode] = ops.conv2d(big_x, big_w, stride=2, padding=2)
    np.testing.assert_array_equal(big["fast"], big["off"])
    bad_w4, bad_w5, bad_x = kernels[4].copy(), kernels[5].copy(), x.copy()
    bad_w4[1, 2, 3, 5] = np.inf
    bad_w5[4, 3, 0, 0] = np.nan
    bad_x[1, 4, 7, 2] = -np.inf
    for xi, wt in ((x, bad_w4), (x, bad_w5), (bad_x, kernels[4]), (bad_x, kernels[5])):
        got = ops.conv2d(xi, wt, stride=2, padding=1)
        want = reference.conv2d(f64(xi), f64(wt), stride=2, padding=1)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        finite = np.isfinite(want)
        assert 0 < finite.sum() < finite.size
        assert_close(np.where(finite, got, 0), np.where(finite, want, 0), tol=1e-6)
        dy = np.ones(got.shape, np.float32)
        if xi is bad_x:  # an infinite gradient instead
            dy[1, 2, 3, 4] = np.inf
        got = ops.conv2d_backward(dy, xi, wt, stride=2, padding=1)
        with np.errstate(invalid="ignore"):  # inf - inf in the reference's sums
            want = reference.conv2d_backward(f64(dy), f64(xi), f64(wt), stride=2, padding=1)
        for g, r in zip(got, want):  # dx, dw (Winograd's unless x or dy is infinite), db
            np.testing.assert_array_equal(np.isnan(g), np.isnan(r))
            np.testing.assert_array_equal(np.isinf(g), np.isinf(r))
            finite = np.isfinite(r)
            assert_close(np.where(finite, g, 0), np.where(finite, r, 0), tol=2e-5)


@pytest.mark.parametrize("x_shape,w_shape,stride", [
    ((1, 6, 5, 512), (3, 3, 512, 256), 2),  # one chunk (dw past 4 MB): dw written in place
    ((3, 9, 10, 40), (5, 3, 40, 70), 2),  # four chunks of partial sums
])
def test_weight_gradient_of_fewer_pixels_than_taps_matches_the_reference(x_shape, w_shape,
                                                                         stride):
    """Fewer pixels than kh * kw * c: the GEMM computes dw with dy packed,
    not dw^T with dy^T read in place and transposed after; the same bits on
    every thread count."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    dy = rng.standard_normal(ops.conv2d(x, w, stride=stride, padding=1).shape).astype(np.float32)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=stride, padding=1)
    first = ops.conv2d_backward(dy, x, w, stride=stride, padding=1, n_threads=1)
    for g, r in zip(first, want):
        assert_close(g, r)
    for threads in (2, 3):
        got = ops.conv2d_backward(dy, x, w, stride=stride, padding=1, n_threads=threads)
        for g, f in zip(got, first):
            np.testing.assert_array_equal(g, f)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", BIG_CASES)
def test_results_identical_for_any_thread_count(simd_path, x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[3]).astype(np.float32)
    args = dict(stride=stride, padding=padding)
    results = []
    for threads in (1, 2, 3):
        y = ops.conv2d(x, w, b, n_threads=threads, **args)
        dy = np.cos(y)
        results.append((y, *ops.conv2d_backward(dy, x, w, n_threads=threads, **args),
                        ops.max_pool2d(x, 3, strides=2, n_threads=threads),
                        ops.avg_pool2d_backward(np.ones((x_shape[0], 1, 1, x_shape[3]), np.float32),
                                                x, x_shape[1:3], n_threads=threads),
                        ops.matmul(x.reshape(-1, x_shape[3]), w.reshape(-1, w_shape[3])[: x_shape[3]],
                                   n_threads=threads)))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", BIG_CASES)
def test_simd_paths_agree_with_portable(x_shape, w_shape, stride, padding):
    rng = np.random.default_rng(8)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    before = fastconv.get_simd_path()
    try:
        outputs = {}
        for path in PATHS:
            fastconv.set_simd_path(path)
            y = ops.conv2d(x, w, stride=stride, padding=padding)
            outputs[path] = (y, *ops.conv2d_backward(np.sin(y), x, w, stride=stride, padding=padding))
    finally:
        fastconv.set_simd_path(before)
    # Every path matches the float64 reference to 1e-4 of its scale (the tests
    # above; the 6x6-domain Winograd, the most rounded method, to about 5e-6).
    # Two paths, each fed its own y, differ by up to 3e-5 here once the
    # weight gradient has summed those differences over the batch.
    for path in PATHS:
        for got, want in zip(outputs[path], outputs["portable"]):
            assert_close(got, want.astype(np.float64), tol=1e-4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 2), h=st.integers(1, 16), w=st.integers(1, 16), c=st.integers(1, 15),
       kh=st.integers(3, 9), kw=st.integers(5, 9), f=st.sampled_from([1, 5, 16, 17, 32, 40]),
       stride=st.sampled_from([1, 1, 2, 3]), dilation=st.sampled_from([1, 1, 2]),
       padding=padding_forms, relu=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_direct_few_channels_up_to_512_taps_match_the_reference(simd_path, n, h, w, c, kh, kw,
                                                                f, stride, dilation, padding,
                                                                relu, seed):
    """Layers of fewer than 16 channels run their forward pass and weight
    gradient on the direct kernels up to 512 taps times channels (past 32:
    LeNet-5's second convolution, 5x5 on 6 channels; a 7x7 stem on RGB
    images), their input gradient (both gradients in one pass) with at most
    8 channels at stride 1, undilated: forward, both gradients (dx through a
    ReLU below) and the weight gradient alone against the reference."""
    conv = dict(stride=stride, dilation=dilation, padding=padding)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, c)).astype(np.float32)
    if relu:
        x = np.maximum(x, 0.0)
    wt = rng.standard_normal((kh, kw, c, f)).astype(np.float32)
    b = rng.standard_normal(f).astype(np.float32)
    try:
        y = ops.conv2d(x, wt, b, **conv)
    except ValueError:  # the kernel larger than the padded input
        return
    assert_close(y, reference.conv2d(f64(x), f64(wt), f64(b), **conv))
    dy = rng.standard_normal(y.shape).astype(np.float32)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(wt), **conv, relu=relu)
    for got, expected in zip(ops.conv2d_backward(dy, x, wt, **conv, relu=relu), want):
        assert_close(got, expected)
    _, dw, db = ops.conv2d_backward(dy, x, wt, **conv, input_grad=False)
    assert_close(dw, want[1])
    assert_close(db, want[2])


@pytest.mark.parametrize("stride,padding", [(1, "valid"), (2, 1)])
def test_direct_backward_input_with_an_infinite_weight(simd_path, stride, padding):
    """Few channels take the direct kernels, which multiply zero padding by the
    weights; with an infinite weight, dx must still be infinite (or NaN)
    exactly where the reference's is: where a dy pixel reaches through it."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 8, 1)).astype(np.float32)
    w = rng.standard_normal((3, 3, 1, 4)).astype(np.float32)
    w[0, 2, 0, 1] = np.inf
    dy = rng.standard_normal(ops.conv2d(x, np.ones_like(w), stride=stride, padding=padding).shape)
    dy = dy.astype(np.float32)
    got = ops.conv2d_backward(dy, x, w, stride=stride, padding=padding)[0]
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=stride, padding=padding)[0]
    finite = np.isfinite(want)
    assert finite.any() and not finite.all()
    np.testing.assert_array_equal(np.isfinite(got), finite)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("filters", [40, 48, 16, 8, 5])
@pytest.mark.parametrize("stride,padding", [(1, "valid"), (1, "same"), (2, 1)])
def test_direct_every_row_width(simd_path, stride, padding, filters):
    """The direct forward splits each output row into register tiles of up to
    14 pixels of a block of two vectors of filters, or 28 pixels of a block
    of one vector (16 filters on AVX-512, 8 on AVX2, 1 on the portable path):
    every width up to 61 takes a different split. 40 and 5 filters leave a
    partial block, 48 a half one (AVX-512), relu is fused. The weight
    gradient takes a half block's taps in one vector too."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((3, 3, 1, filters)).astype(np.float32)
    b = rng.standard_normal(filters).astype(np.float32)
    for width in range(3, 62):
        x = rng.standard_normal((2, 5, width, 1)).astype(np.float32)
        for activation in (None, "relu"):
            y = ops.conv2d(x, w, b, stride=stride, padding=padding, activation=activation)
            want = reference.conv2d(f64(x), f64(w), f64(b), stride=stride, padding=padding)
            if activation == "relu":
                want = np.maximum(want, 0.0)
            assert_close(y, want)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        _, dw, db = ops.conv2d_backward(dy, x, w, stride=stride, padding=padding, input_grad=False)
        _, want_dw, want_db = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=stride,
                                                        padding=padding)
        assert_close(dw, want_dw)
        assert_close(db, want_db)


def test_kernels_restore_the_callers_denormal_handling():
    """The kernels flush denormals internally but must not leak that to NumPy."""
    x = np.ones((1, 8, 8, 4), np.float32)
    ops.conv2d(x, np.ones((3, 3, 4, 4), np.float32))
    tiny = np.array([1e-38], np.float32) / np.float32(100.0)
    assert tiny[0] != 0.0


def test_denormal_inputs_give_correct_results():
    x = np.full((1, 6, 6, 3), 1e-40, np.float32)
    y = ops.conv2d(x, np.ones((3, 3, 3, 2), np.float32), np.ones(2, np.float32))
    np.testing.assert_allclose(y, 1.0)


def test_simd_path_selection():
    assert "portable" in PATHS
    with pytest.raises(ValueError, match="SIMD path"):
        fastconv.set_simd_path("sse9")


@pytest.mark.parametrize("x_shape,w_shape", [
    ((1, 8, 5, 9), (3, 3, 9, 0)),  # no filters
    ((1, 8, 5, 0), (3, 3, 0, 4)),  # no channels
    ((0, 8, 5, 9), (3, 3, 9, 4)),  # no images
    ((2, 8, 8, 16), (3, 3, 16, 0)),  # no filters, a Winograd-sized layer
])
@pytest.mark.parametrize("stride", [1, 2, (1, 3)])
def test_empty_layers_on_any_thread_count(simd_path, x_shape, w_shape, stride):
    """Layers with nothing to sum or nothing to write, on 1-3 threads (the
    tests' parallel threshold is 0, so even empty work is shared out): the
    reference's zeros and empty arrays. A strided layer without filters had
    divided by its empty depth in the backward-input's batched GEMMs."""
    x = np.ones(x_shape, np.float32)
    w = np.ones(w_shape, np.float32)
    want_y = reference.conv2d(f64(x), f64(w), stride=stride)
    dy = np.ones(want_y.shape, np.float32)
    want = reference.conv2d_backward(f64(dy), f64(x), f64(w), stride=stride)
    for threads in (1, 2, 3):
        assert_close(ops.conv2d(x, w, stride=stride, n_threads=threads), want_y)
        for relu in (False, True):  # x > 0 everywhere: the ReLU passes every gradient
            got = ops.conv2d_backward(dy, x, w, stride=stride, relu=relu, n_threads=threads)
            for g, r in zip(got, want):
                assert_close(g, r)


def test_threads_setting():
    before = fastconv.get_num_threads()
    try:
        fastconv.set_num_threads(1)
        assert fastconv.get_num_threads() == 1
        with pytest.raises(ValueError, match="at least 1"):
            fastconv.set_num_threads(0)
    finally:
        fastconv.set_num_threads(before)


def test_show_config(capsys):
    fastconv.show_config()
    out = capsys.readouterr().out
    words = ("fastconv", "OpenMP", "threads", "SIMD path", "Winograd", "streaming", "compiler")
    for word in words:
        assert word in out


def test_machine_probes_are_positive():
    assert fastconv.peak_gflops(1, seconds=0.02) > 0.5


def _last_level_cache_bytes() -> int:
    """The largest cache Linux lists for CPU 0, or 0."""
    largest = 0
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        scale = {"K": 2**10, "M": 2**20}.get(text[-1:], 1)
        largest = max(largest, int(text.rstrip("KM")) * scale)
    return largest


def test_streaming_bound_is_an_eighth_of_the_last_level_cache():
    """GEMM outputs bypass the cache from an eighth of the last-level cache
    (as Linux reports it), kept between 4 and 64 MiB; 64 MiB without one."""
    llc = _last_level_cache_bytes()
    want = min(max(llc // 8, 4 * 2**20), 64 * 2**20) if llc else 64 * 2**20
    assert fastconv._kernels.stream_min_bytes() == want // 4 * 4


# ---- argument errors --------------------------------------------------------

def test_errors_name_the_argument():
    x = np.zeros((1, 5, 5, 3), np.float32)
    w = np.zeros((3, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="input channels"):
        ops.conv2d(x, np.zeros((3, 3, 2, 4), np.float32))
    with pytest.raises(ValueError, match="b must have shape"):
        ops.conv2d(x, w, np.zeros(5))
    with pytest.raises(ValueError, match="padding"):
        ops.conv2d(x, w, padding="full")
    with pytest.raises(ValueError, match="stride"):
        ops.conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="larger than the padded input"):
        ops.conv2d(x, np.zeros((7, 7, 3, 4), np.float32))
    with pytest.raises(ValueError, match="x must have 4 dimensions"):
        ops.conv2d(x[0], w)
    with pytest.raises(TypeError, match="real numbers"):
        ops.conv2d(x.astype(complex), w)
    with pytest.raises(ValueError, match="dy must have"):
        ops.conv2d_backward(np.zeros((1, 2, 2, 4)), x, w)
    with pytest.raises(ValueError, match="pool_size"):
        ops.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="a's columns"):
        ops.matmul(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="activation"):
        ops.conv2d(x, w, activation="gelu")


# ---- batch normalisation -------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 3000), c=st.sampled_from([1, 3, 16, 17, 64, 70]),
       center=st.sampled_from([0.0, 5.0, -300.0]), seed=st.integers(0, 2**31 - 1))
def test_batch_norm_ops_match_the_reference(rows, c, center, seed):
    """Statistics (past several chunks of 1024 rows, with a mean far from
    zero), the forward pass and the backward pass against the float64
    reference; the same bits on 1-3 threads; both passes in place."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, c)) * 2 + center).astype(np.float32)
    dy = rng.standard_normal((rows, c)).astype(np.float32)
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    mean, var = ops.batch_norm_statistics(x, n_threads=1)
    want_mean, want_var = reference.batch_norm_statistics(f64(x))
    assert_close(mean, want_mean, tol=1e-6)
    assert_close(var, want_var, tol=1e-6)
    inv = (1 / np.sqrt(var + 1e-3)).astype(np.float32)
    y = ops.batch_norm(x, mean, inv, gamma, beta, n_threads=1)
    assert_close(y, reference.batch_norm(f64(x), f64(mean), f64(inv), f64(gamma), f64(beta)),
                 tol=2e-5)
    got = ops.batch_norm_backward(dy, x, mean, inv, gamma, n_threads=1)
    want = reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(inv), f64(gamma))
    for g, r in zip(got, want):
        assert_close(g, r, tol=2e-5)
    for threads in (2, 3):
        for a, b in zip((mean, var), ops.batch_norm_statistics(x, n_threads=threads)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(ops.batch_norm(x, mean, inv, gamma, beta,
                                                     n_threads=threads), y)
        for a, b in zip(got, ops.batch_norm_backward(dy, x, mean, inv, gamma,
                                                     n_threads=threads)):
            np.testing.assert_array_equal(a, b)
    in_place = x.copy()
    assert ops.batch_norm(in_place, mean, inv, gamma, beta, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, y)
    in_place = dy.copy()  # dx over dy, as the layer runs it
    dx, dgamma, dbeta = ops.batch_norm_backward(in_place, x, mean, inv, gamma, out=in_place,
                                                n_threads=2)
    assert dx is in_place
    for a, b in zip(got, (dx, dgamma, dbeta)):
        np.testing.assert_array_equal(a, b)
    twin_out = np.empty_like(f64(dy))
    assert reference.batch_norm_backward(f64(dy), f64(x), f64(mean), f64(inv), f64(gamma),
                                         out=twin_out)[0] is twin_out
    np.testing.assert_array_equal(twin_out, want[0])


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 2500), c=st.sampled_from([1, 3, 16, 17, 64]),
       threads=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_batch_norm_with_relu_is_the_two_ops(rows, c, threads, seed):
    """relu=True is leaky_relu(batch_norm(...), 0) bit for bit, and relu_beta
    the backward of relu_backward(dy, that output) then batch_norm_backward,
    bit for bit: the mask recomputed from x is the forward's, also where the
    normalised value is exactly 0, -0 or NaN; the float64 twin agrees."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, (rows, c)).astype(np.float32)  # ties: exact zeros after normalising
    x[rng.random(x.shape) < 0.5] += np.float32(rng.standard_normal())
    x.flat[rng.integers(0, x.size, 3)] = np.nan if seed % 3 == 0 else 0.0
    dy = rng.standard_normal((rows, c)).astype(np.float32)
    dy.flat[rng.integers(0, x.size, 3)] = np.inf
    mean = np.round(rng.standard_normal(c)).astype(np.float32)
    inv = rng.uniform(0.5, 2, c).astype(np.float32)
    gamma = rng.choice([1.0, -1.0, 0.5], c).astype(np.float32)
    beta = np.round(rng.standard_normal(c)).astype(np.float32)
    y = ops.batch_norm(x, mean, inv, gamma, beta, relu=True, n_threads=threads)
    plain = ops.batch_norm(x, mean, inv, gamma, beta, n_threads=threads)
    np.testing.assert_array_equal(y.view(np.uint32), ops.leaky_relu(plain, 0.0).view(np.uint32))
    got = ops.batch_norm_backward(dy, x, mean, inv, gamma, relu_beta=beta, n_threads=threads)
    apart = ops.batch_norm_backward(ops.relu_backward(dy, y), x, mean, inv, gamma)
    for a, b in zip(got, apart):
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))
    in_place = dy.copy()
    ops.batch_norm_backward(in_place, x, mean, inv, gamma, relu_beta=beta, out=in_place,
                            n_threads=threads)
    np.testing.assert_array_equal(in_place.view(np.uint32), got[0].view(np.uint32))
    np.testing.assert_array_equal(
        y, reference.batch_norm(x, mean, inv, gamma, beta, relu=True).astype(np.float32))
    finite = np.isfinite(x).all(axis=1) & np.isfinite(dy).all(axis=1)  # the twin's sums
    x, dy = x[finite], dy[finite]
    got = ops.batch_norm_backward(dy, x, mean, inv, gamma, relu_beta=beta, n_threads=threads)
    want = reference.batch_norm_backward(f64(dy), f64(x), mean, inv, gamma, relu_beta=beta)
    for a, b in zip(got, want):
        assert_close(a, b, tol=2e-5)


def test_batch_norm_statistics_in_one_pass_keep_their_precision():
    """The one-pass sums run around each channel's first value: a mean 1e5
    spreads from zero (1e4 against 1e-1), an outlying first row, and
    infinities or NaN in that row (the shift then 0) give what NumPy's two
    passes give."""
    rng = np.random.default_rng(9)
    x = (1e4 + 1e-1 * rng.standard_normal((5000, 3))).astype(np.float32)
    x[0, 1] = -3e4  # an outlying first value, the shift of channel 1
    mean, var = ops.batch_norm_statistics(x)
    want_mean, want_var = reference.batch_norm_statistics(f64(x))
    np.testing.assert_allclose(mean, want_mean, rtol=1e-7)
    np.testing.assert_allclose(var, want_var, rtol=1e-6)
    x[0] = [np.inf, -np.inf, np.nan]
    mean, var = ops.batch_norm_statistics(x)
    np.testing.assert_array_equal(mean, [np.inf, -np.inf, np.nan])
    assert np.isnan(var).all()


def test_batch_norm_ops_take_any_channels_last_shape_and_propagate_nan():
    x = np.random.default_rng(2).standard_normal((2, 5, 4, 3)).astype(np.float32)
    x[1, 2, 3, 1] = np.nan
    mean, var = ops.batch_norm_statistics(x)
    assert np.isnan(mean[1]) and np.isnan(var[1])
    assert np.isfinite(mean[[0, 2]]).all() and np.isfinite(var[[0, 2]]).all()
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    y = ops.batch_norm(x, mean, ones, ones, zeros)
    assert y.shape == x.shape and np.isnan(y[..., 1]).all() and np.isfinite(y[..., 0]).all()


def _backward_into_overlapping_out(what):
    """batch_norm_backward with an out that overlaps x, or dy without being
    it: one buffer, out one float past the other array."""
    buffer = np.zeros(13, np.float32)
    overlapped, out = buffer[:12].reshape(4, 3), buffer[1:].reshape(4, 3)
    other = np.ones((4, 3), np.float32)
    dy, x = (other, overlapped) if what == "x" else (overlapped, other)
    return ops.batch_norm_backward(dy, x, np.zeros(3), np.ones(3), np.ones(3), out=out)


@pytest.mark.parametrize("call,error,match", [
    (lambda: ops.batch_norm_statistics(np.ones((0, 3))), ValueError, "at least one row"),
    (lambda: ops.batch_norm_statistics(np.ones(())), ValueError, "at least one channel"),
    (lambda: ops.batch_norm_statistics(np.ones((2, 0))), ValueError, "at least one channel"),
    (lambda: ops.batch_norm_statistics(np.ones((2, 3), complex)), TypeError, "real numbers"),
    (lambda: ops.batch_norm(np.ones((2, 3)), np.zeros(3), np.ones(3), np.ones(4), np.zeros(3)),
     ValueError, r"gamma must have shape \(3,\), got \(4,\)"),
    (lambda: ops.batch_norm(np.ones((2, 3)), np.zeros((1, 3)), np.ones(3), np.ones(3),
                            np.zeros(3)), ValueError, r"mean must have shape \(3,\)"),
    (lambda: ops.batch_norm(np.ones((2, 3)), np.zeros(3), np.ones(3), np.ones(3), np.zeros(3),
                            out=np.ones((2, 3))), ValueError, "out must be a writeable"),
    (lambda: ops.batch_norm_backward(np.ones((2, 4)), np.ones((2, 3)), np.zeros(3), np.ones(3),
                                     np.ones(3)), ValueError, "dy must have x's shape"),
    (lambda: ops.batch_norm_backward(np.ones((2, 3)), np.ones((2, 3)), np.zeros(3), np.ones(2),
                                     np.ones(3)), ValueError, r"inv_std must have shape \(3,\)"),
    (lambda: ops.batch_norm_backward(np.ones((2, 3)), np.ones((2, 3)), np.zeros(3), np.ones(3),
                                     np.ones(3), relu_beta=np.ones(2)), ValueError,
     r"relu_beta must have shape \(3,\)"),
    (lambda: ops.batch_norm_backward(np.ones((2, 3)), np.ones((2, 3)), np.zeros(3), np.ones(3),
                                     np.ones(3), out=np.ones((2, 3))), ValueError,
     "out must be a writeable"),
    (lambda: _backward_into_overlapping_out("x"), ValueError,
     "out must not overlap x"),
    (lambda: _backward_into_overlapping_out("dy"), ValueError,
     "out may be dy itself but must not otherwise overlap it"),
])
def test_batch_norm_ops_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()
