"""Fuzzing: every op of fastconv.ops, and the private Cython layer, with
arguments valid and invalid.

Hypothesis draws the arguments of each op: mostly well-formed ones, which are
then often spoiled (a wrong number of dimensions, a mismatched size, a zero,
negative, boolean, fractional or huge parameter, an unknown padding word, a
malformed padding tuple...). Arrays come in every dtype (float32, float64,
float16, integers, bool, but also complex, object and strings), contiguous,
strided, reversed, Fortran-ordered or as nested lists, empty or not, with NaN,
infinities and signed zeros sprinkled in. For each call the only acceptable
outcomes are:

- fastconv.ops and fastconv.reference (in float64) both return, and agree:
  same shape, float32, NaN and infinities in the same places, finite values
  within 1e-4 of the largest magnitude;
- both raise (or an argument only ops takes, activation or n_threads, is
  invalid), and ops raises a ValueError or TypeError whose message names one
  of the op's arguments.

Anything else fails the test, and a crash fails it loudly. The private layer,
fastconv._kernels, is called with shapes and parameters that do not agree:
it must raise or return a correct result, never read or write out of bounds.
Those calls run in a subprocess, so that a crash is reported rather than
taking pytest down with it.

The budgets are fixed and the searches derandomised, so CI runs the same
examples every time. Under the sanitizer build (.ci/sanitize) the same tests
also prove every call free of out-of-bounds accesses and undefined behaviour.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from child_process import run_python

import fastconv
from fastconv import _geometry, _kernels, ops, reference


# FASTCONV_FUZZ_EXAMPLES=N runs N examples per test with fresh random draws:
# a longer search than CI's fixed, derandomised one.
_EXPLORE = int(os.environ.get("FASTCONV_FUZZ_EXAMPLES", "0"))


def fuzz_settings(max_examples: int) -> settings:
    return settings(
        max_examples=_EXPLORE or max_examples,
        deadline=None,
        derandomize=not _EXPLORE,  # CI draws the same examples every run
        database=None,
        suppress_health_check=list(HealthCheck),
    )


# ---- arrays ---------------------------------------------------------------------

REAL_DTYPES = ("float32",) * 8 + ("float64", "float16", "int8", "int64", "uint8", "bool")
BAD_DTYPES = ("complex64", "object", "str")
LAYOUTS = ("c",) * 4 + ("strided", "reversed", "fortran", "list")
VALUES = ("normal",) * 3 + ("nonfinite", "nonfinite", "ties", "signed_zeros")


@dataclass(frozen=True)
class ArraySpec:
    """A reproducible array: hypothesis prints this, not megabytes of data."""

    shape: tuple
    dtype: str = "float32"
    layout: str = "c"
    values: str = "normal"
    seed: int = 0


@dataclass(frozen=True)
class Raw:
    """A non-array value passed where an array is expected."""

    value: object


def arrays(shape, dtypes=REAL_DTYPES, layouts=LAYOUTS):
    return st.builds(
        ArraySpec,
        shape=st.just(tuple(shape)),
        dtype=st.sampled_from(dtypes),
        layout=st.sampled_from(layouts),
        values=st.sampled_from(VALUES),
        seed=st.integers(0, 2**16),
    )


def bad_arrays(shape):
    """Arrays of complex, object or string dtype, or values that are no arrays."""
    raw = st.sampled_from([Raw(None), Raw(1.5), Raw("abc"), Raw([[1.0, 2.0], [3.0]]), Raw([])])
    return st.one_of(arrays(shape, BAD_DTYPES), raw)


def build(spec):
    """The argument a spec stands for."""
    if isinstance(spec, Raw):
        return spec.value
    rng = np.random.default_rng(spec.seed)
    shape = spec.shape
    if spec.values == "ties":  # small integers: ties for max pooling
        data = rng.integers(-2, 3, shape).astype(np.float32)
    elif spec.values == "signed_zeros":
        data = np.where(rng.random(shape) < 0.5, np.float32(-0.0), np.float32(0.0))
        data = np.where(rng.random(shape) < 0.3, np.float32(1.0), data).astype(np.float32)
    else:
        data = rng.standard_normal(shape).astype(np.float32)
    if spec.values == "nonfinite" and data.size:
        flat = data.reshape(-1)
        where = rng.integers(0, flat.size, size=max(1, flat.size // 20))
        flat[where] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), where.size)
    if spec.dtype in ("int8", "int64", "uint8"):
        data = rng.integers(0 if spec.dtype == "uint8" else -3, 4, shape).astype(spec.dtype)
    elif spec.dtype == "bool":
        data = rng.random(shape) < 0.5
    else:
        data = data.astype(spec.dtype)
    if spec.layout == "strided" and data.ndim:
        big = np.zeros(data.shape[:-1] + (2 * data.shape[-1],), data.dtype)
        big[..., ::2] = data
        data = big[..., ::2]
    elif spec.layout == "reversed" and data.ndim:
        data = data[::-1].copy()[::-1]
    elif spec.layout == "fortran":
        data = np.asfortranarray(data)
    elif spec.layout == "list" and data.size <= 400:
        data = data.tolist()
    return data


def widen(value):
    """What the reference gets: the same values in float64 where they are real."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return value.astype(np.float64)
    return value


def shape_of(value) -> tuple:
    try:
        return np.shape(value)
    except ValueError:  # ragged nesting
        return ()


def tweak(shape, draw, axes=None):
    """shape with one size one larger or smaller, or one dimension more or less."""
    shape = list(shape)
    how = draw(st.sampled_from(["size", "size", "drop", "add"]))
    if how == "drop":
        return shape[:-1]
    if how == "add":
        return shape + [1]
    axis = draw(st.sampled_from(axes if axes is not None else range(len(shape))))
    shape[axis] = shape[axis] + 1 if shape[axis] == 0 or draw(st.booleans()) else shape[axis] - 1
    return shape


# ---- parameters -----------------------------------------------------------------

BAD_SCALARS = (0, -1, -7, 2**31, 2**63, 10**30, True, False, 1.0, 2.5, float("nan"), "1",
               "", None, b"2", 1j, np.float32(2.0))


def good_pairs(high=3, absurd=False):
    """stride, dilation, pool_size or strides in every accepted form; absurd
    adds the largest value accepted (a stride that leaves one output)."""
    scalar = st.one_of(st.integers(1, high), st.integers(1, high).map(np.int64))
    forms = [scalar, scalar, st.tuples(scalar, scalar),
             st.lists(st.integers(1, high), min_size=2, max_size=2)]
    if absurd:
        forms.append(st.just(_geometry.MAX_PARAM))
    return st.one_of(*forms)


def bad_pairs():
    scalar = st.one_of(st.integers(1, 3), st.sampled_from(BAD_SCALARS))
    return st.one_of(
        st.sampled_from(BAD_SCALARS),
        st.tuples(scalar, scalar),
        st.tuples(scalar),
        st.tuples(scalar, scalar, scalar),
        st.sampled_from([((1, 1), (1, 1)), {}, np.ones((1, 2), np.int64), "11"]),
    )


def good_paddings(high=3):
    small = st.integers(0, high)
    return st.one_of(
        st.sampled_from(["valid", "same", "SAME", "Valid"]),
        small,
        st.tuples(small, small),
        st.tuples(st.tuples(small, small), st.tuples(small, small)),
        st.lists(st.lists(small, min_size=2, max_size=2), min_size=2, max_size=2),
        st.tuples(small, small).map(np.array),
    )


def bad_paddings():
    bad = st.sampled_from([-1, -5, 2**31, 2**63, True, 1.0, None, "1", 1j])
    either = st.one_of(st.integers(0, 3), bad)
    return st.one_of(
        st.sampled_from(["full", "", "causal", "same ", b"same", {"a": 1}]),
        bad,
        st.tuples(either, bad),
        st.tuples(st.tuples(either, either), st.tuples(bad, either)),
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
        st.sampled_from([((1, 2, 3), (1, 2)), ((1,), (1,)), (1, (1, 1)), ("a", "b"),
                         ((2**31, 0), (0, 0))]),
    )


GOOD_ACTIVATIONS = st.sampled_from([None, "linear", "relu"])
BAD_ACTIVATIONS = st.sampled_from(["RELU", "gelu", "", 0, True])
GOOD_THREADS = st.sampled_from([None, None, None, 1, 2, 3, np.int64(2)])
BAD_THREADS = st.sampled_from([0, -1, 1025, 2**40, 1.5, 2.0, "2", True])


def threads_invalid(n_threads) -> bool:
    if n_threads is None:
        return False
    if isinstance(n_threads, (bool, float, str)):
        return True
    return not 1 <= n_threads <= _kernels.MAX_THREADS


def activation_invalid(activation) -> bool:
    return activation not in (None, "linear", "relu")



# ---- the oracle -------------------------------------------------------------------


def ieee_tensordot(a, b, axes=2):
    """np.tensordot by einsum's plain loops. np.tensordot goes through BLAS,
    and BLAS routines may skip a zero factor: NaN * 0 is then lost."""
    if isinstance(axes, int):
        a_axes, b_axes = list(range(a.ndim - axes, a.ndim)), list(range(axes))
    else:
        a_axes, b_axes = ([axes_] if isinstance(axes_, int) else list(axes_) for axes_ in axes)
    letters = "abcdefghijklmnopqrstuvwxyz"
    a_sub, b_sub = letters[: a.ndim], list(letters[a.ndim : a.ndim + b.ndim])
    for i, j in zip(a_axes, b_axes):
        b_sub[j] = a_sub[i]
    out = [a_sub[i] for i in range(a.ndim) if i not in a_axes]
    out += [b_sub[j] for j in range(b.ndim) if j not in b_axes]
    return np.einsum(f"{a_sub},{''.join(b_sub)}->{''.join(out)}", a, b, optimize=False)


class _IEEENumPy:
    """NumPy, with tensordot exact about NaN and infinities."""

    tensordot = staticmethod(ieee_tensordot)

    def __getattr__(self, name):
        return getattr(np, name)


def exact(function, *args, **kwargs):
    """Call a fastconv.reference function with IEEE products throughout."""
    saved = reference.np
    reference.np = _IEEENumPy()
    try:
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)
    finally:
        reference.np = saved


def exact_matmul(a, b):
    """reference.matmul's checks, then its product without BLAS."""
    reference.matmul(a, b)
    a, b = reference._as_float_arrays((a, "a"), (b, "b"))
    with np.errstate(all="ignore"):
        return np.einsum("ik,kj->ij", a, b, optimize=False)



def names_an_argument(message: str, names) -> bool:
    return any(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message) for n in names)


def assert_matches(got, expected):
    """got (float32) equals expected (float64): NaN and infinities in the same
    places, finite values within 1e-4 of the largest magnitude."""
    assert isinstance(got, np.ndarray) and got.dtype == np.float32, type(got)
    expected = np.asarray(expected, dtype=np.float64)
    assert got.shape == expected.shape, (got.shape, expected.shape)
    g = got.astype(np.float64)
    g_nan, e_nan = np.isnan(g), np.isnan(expected)
    assert (g_nan | ~e_nan).all(), "NaN lost"
    spurious = np.argwhere(g_nan & ~e_nan)[:5]
    assert not spurious.size, f"NaN where the reference has none, at {spurious.tolist()}"
    keep = ~g_nan & ~e_nan
    g, e = g[keep], expected[keep]
    assert (np.isinf(g) == np.isinf(e)).all(), "infinity in one and not the other"
    assert (g[np.isinf(g)] == e[np.isinf(e)]).all(), "infinities of opposite sign"
    finite = np.isfinite(e)
    scale = max(float(np.abs(e[finite]).max(initial=0.0)), 1.0)
    err = float(np.abs(g[finite] - e[finite]).max(initial=0.0))
    assert err <= 1e-4 * scale, f"max error {err:.3g} vs scale {scale:.3g}"


def check(call_ops, call_reference, names, *, other_invalid=False, compare=None):
    """Run ops and the reference; assert one of the acceptable outcomes."""
    try:
        with np.errstate(all="ignore"):
            expected = call_reference()
        ref_error = None
    except (ValueError, TypeError) as error:
        ref_error = error
    try:
        got = call_ops()
    except (ValueError, TypeError) as error:
        assert ref_error is not None or other_invalid, (
            f"ops raised {error!r} where the reference returned a result"
        )
        assert names_an_argument(str(error), names), f"message names no argument: {error!r}"
        return
    assert ref_error is None and not other_invalid, (
        f"ops returned where an error was due (the reference raised {ref_error!r})"
    )
    if compare is not None:
        compare(got, expected)
    else:
        assert_matches(got, expected)


# ---- conv2d -------------------------------------------------------------------------


SPOIL_NONE = ["none"] * 10


@st.composite
def conv_cases(draw, backward=False):
    """A valid convolution, then (less often) one thing spoilt."""
    spoils = ["x_dtype", "w_dtype", "x_shape", "w_shape", "channels", "kernel0", "big_kernel",
              "stride", "dilation", "padding", "threads"]
    spoils += ["dy_dtype", "dy_shape"] if backward else ["b_dtype", "b_shape", "activation"]
    spoil = draw(st.sampled_from(SPOIL_NONE + spoils))
    n = draw(st.sampled_from([0, 1, 1, 2, 3]))
    c = draw(st.sampled_from([0, 1, 2, 3, 8, 9, 16, 17]))
    f = draw(st.sampled_from([0, 1, 2, 5, 16, 17]))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    stride, dilation = draw(good_pairs(absurd=True)), draw(good_pairs(2))
    padding = draw(good_paddings())
    try:
        _geometry.conv2d_geometry((n, h, w, c), (kh, kw, c, f), stride, padding, dilation)
    except ValueError:  # grow the image to the kernel's extent
        dh, dw = _geometry.as_pair(dilation, "dilation")
        h, w = max(h, (kh - 1) * dh + 1), max(w, (kw - 1) * dw + 1)
    x_shape, w_shape, b_shape = [n, h, w, c], [kh, kw, c, f], [f]
    y_shape = list(
        _geometry.conv2d_geometry(x_shape, w_shape, stride, padding, dilation).y_shape
    )
    case = dict(spoil=spoil, stride=stride, padding=padding, dilation=dilation,
                n_threads=draw(BAD_THREADS if spoil == "threads" else GOOD_THREADS))
    if spoil == "x_shape":
        x_shape = tweak(x_shape, draw)
    elif spoil == "w_shape":
        w_shape = tweak(w_shape, draw, axes=[0, 1, 3])
    elif spoil == "channels":
        w_shape[2] += 1
    elif spoil == "kernel0":
        w_shape[draw(st.integers(0, 1))] = 0
    elif spoil == "big_kernel":
        w_shape[draw(st.integers(0, 1))] = max(h, w) + 8
    elif spoil == "stride":
        case["stride"] = draw(bad_pairs())
    elif spoil == "dilation":
        case["dilation"] = draw(bad_pairs())
    elif spoil == "padding":
        case["padding"] = draw(bad_paddings())
    case["x"] = draw(bad_arrays(x_shape) if spoil == "x_dtype" else arrays(x_shape))
    case["w"] = draw(bad_arrays(w_shape) if spoil == "w_dtype" else arrays(w_shape))
    if backward:
        if spoil == "dy_shape":
            y_shape = tweak(y_shape, draw)
        case["dy"] = draw(bad_arrays(y_shape) if spoil == "dy_dtype" else arrays(y_shape))
        case["input_grad"] = draw(st.sampled_from([True, True, True, False]))
        case["relu"] = draw(st.booleans())  # dx through the ReLU that produced x
    else:
        if spoil == "b_shape":
            b_shape = draw(st.sampled_from([[f + 1], [1, f], []]))
        case["b"] = draw(bad_arrays(b_shape) if spoil == "b_dtype"
                         else st.one_of(st.none(), arrays(b_shape)))
        case["activation"] = draw(BAD_ACTIVATIONS if spoil == "activation"
                                  else GOOD_ACTIVATIONS)
    return case


@fuzz_settings(250)
@given(case=conv_cases())
def test_fuzz_conv2d(case):
    x, w = build(case["x"]), build(case["w"])
    b = None if case["b"] is None else build(case["b"])
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    activation = case["activation"]

    def call_reference():
        y = exact(reference.conv2d, widen(x), widen(w), widen(b), **args)
        return np.maximum(y, 0.0) if activation == "relu" else y

    check(
        lambda: ops.conv2d(x, w, b, activation=activation, n_threads=case["n_threads"], **args),
        call_reference,
        ("x", "w", "b", "stride", "padding", "dilation", "activation", "n_threads"),
        other_invalid=threads_invalid(case["n_threads"]) or activation_invalid(activation),
    )


@fuzz_settings(200)
@given(case=conv_cases(), pool=st.sampled_from([1, 2, 3, (2, 1), (1, 4)]))
def test_fuzz_conv2d_max_pool2d(case, pool):
    """The convolution and its max pooling in one call: what conv2d's
    arguments and a pooling window give (the reference composed), or an
    error that names an argument."""
    x, w = build(case["x"]), build(case["w"])
    b = None if case["b"] is None else build(case["b"])
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    activation = case["activation"]

    def call_reference():
        y = exact(reference.conv2d, widen(x), widen(w), widen(b), **args)
        return exact(reference.max_pool2d, np.maximum(y, 0.0) if activation == "relu" else y, pool)

    check(
        lambda: ops.conv2d_max_pool2d(x, w, b, activation=activation, pool_size=pool,
                                      n_threads=case["n_threads"], **args),
        call_reference,
        ("x", "w", "b", "stride", "padding", "dilation", "activation", "n_threads", "pool_size"),
        other_invalid=threads_invalid(case["n_threads"]) or activation_invalid(activation),
    )


@fuzz_settings(150)
@given(case=conv_cases(), pool=st.sampled_from([1, 2, 3, (2, 1)]), relu=st.booleans(),
       input_grad=st.booleans())
def test_fuzz_conv2d_max_pool2d_backward(case, pool, relu, input_grad):
    """Their backward from the argmax: what the reference's
    max_pool2d_backward_argmax and conv2d_backward give composed (from the
    same argmax), or an error that names an argument."""
    x, w = build(case["x"]), build(case["w"])
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])
    activation = case["activation"]
    try:
        y, argmax = ops.conv2d_max_pool2d(x, w, activation=activation, pool_size=pool,
                                          return_argmax=True, **args)
        dy = np.linspace(-1.0, 1.0, y.size, dtype=np.float32).reshape(y.shape)
    except (ValueError, TypeError):  # spoilt: the backward is to refuse it too
        dy, argmax = np.ones((1, 1, 1, 1), np.float32), np.zeros((1, 1, 1, 1), np.uint8)

    def call_reference():
        z_shape = _geometry.conv2d_geometry(np.shape(x), np.shape(w), **args).y_shape
        dz = exact(reference.max_pool2d_backward_argmax, widen(dy), argmax, z_shape, pool,
                   relu=activation == "relu")
        return exact(reference.conv2d_backward, dz, widen(x), widen(w), input_grad=input_grad,
                     relu=relu, **args)

    def compare(got, want):
        assert isinstance(got, tuple) and len(got) == 3
        assert (got[0] is None) == (not input_grad)
        for have, expected in zip(got, want):
            if expected is not None:
                assert_matches(have, expected)

    check(
        lambda: ops.conv2d_max_pool2d_backward(dy, argmax, x, w, activation=activation,
                                               pool_size=pool, input_grad=input_grad, relu=relu,
                                               n_threads=case["n_threads"], **args),
        call_reference,
        ("dy", "argmax", "x", "w", "stride", "padding", "dilation", "activation", "n_threads",
         "pool_size"),
        other_invalid=threads_invalid(case["n_threads"]) or activation_invalid(activation),
        compare=compare,
    )


@fuzz_settings(250)
@given(case=conv_cases(backward=True))
def test_fuzz_conv2d_backward(case):
    dy, x, w = build(case["dy"]), build(case["x"]), build(case["w"])
    args = dict(stride=case["stride"], padding=case["padding"], dilation=case["dilation"])

    input_grad = case["input_grad"]

    def compare(got, want):
        assert isinstance(got, tuple) and len(got) == 3
        if input_grad:
            assert_matches(got[0], want[0])
        else:
            assert got[0] is None
        assert_matches(got[1], want[1])
        assert_matches(got[2], want[2])

    args["relu"] = case["relu"]
    check(
        lambda: ops.conv2d_backward(dy, x, w, input_grad=input_grad,
                                    n_threads=case["n_threads"], **args),
        lambda: exact(reference.conv2d_backward, widen(dy), widen(x), widen(w),
                      input_grad=input_grad, **args),
        ("dy", "x", "w", "stride", "padding", "dilation", "n_threads"),
        other_invalid=threads_invalid(case["n_threads"]),
        compare=compare,
    )


# ---- pooling -----------------------------------------------------------------------


@st.composite
def pool_cases(draw):
    """A valid pooling, forward or backward, then (less often) one thing spoilt."""
    spoils = ["x_dtype", "dy_dtype", "x_shape", "dy_shape", "empty_image", "pool_size",
              "strides", "padding", "threads", "dropout"]
    spoil = draw(st.sampled_from(SPOIL_NONE + spoils))
    n = draw(st.sampled_from([0, 1, 1, 2]))
    c = draw(st.sampled_from([0, 1, 3, 8, 17, 300]))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    pool_size = draw(good_pairs(4))
    strides = draw(st.one_of(st.none(), good_pairs(absurd=True)))
    padding = draw(st.one_of(st.sampled_from(["valid", "same"]), good_paddings(1)))
    try:
        _geometry.pool2d_geometry((n, h, w, c), pool_size, strides, padding)
    except ValueError:  # grow the image to the window; keep paddings inside it
        kh, kw = _geometry.as_pair(pool_size, "pool_size")
        h, w = max(h, kh), max(w, kw)
        try:
            _geometry.pool2d_geometry((n, h, w, c), pool_size, strides, padding)
        except ValueError:
            padding = "valid"
    x_shape = [n, h, w, c]
    y_shape = list(_geometry.pool2d_geometry(x_shape, pool_size, strides, padding).y_shape)
    if spoil == "x_shape":
        x_shape = tweak(x_shape, draw)
    elif spoil == "dy_shape":
        y_shape = tweak(y_shape, draw)
    elif spoil == "empty_image":
        x_shape[draw(st.integers(1, 2))] = 0
    elif spoil == "pool_size":
        pool_size = draw(st.one_of(bad_pairs(), st.just(max(h, w) + 5)))
    elif spoil == "strides":
        strides = draw(bad_pairs())
    elif spoil == "padding":
        padding = draw(st.one_of(bad_paddings(), st.integers(4, 6)))
    backward = spoil.startswith("dy") or draw(st.booleans())
    # The mask of a Dropout layer above the pooling, or a spoilt one.
    dropout = draw(st.one_of(st.none(), st.tuples(st.sampled_from([0.0, 0.3, 0.99]),
                                                  st.integers(0, 2**64 - 1))))
    if spoil == "dropout":
        dropout = draw(st.sampled_from([(0.5,), [0.5, 1], (1.0, 1), (-0.1, 1), (0.5, -1),
                                        (0.5, 2**64), ("a", 1), (0.5, 1.5), 0.5]))
    return dict(
        spoil=spoil, kind=draw(st.sampled_from(["max", "avg"])), backward=backward,
        dropout=dropout,
        x=draw(bad_arrays(x_shape) if spoil == "x_dtype" else arrays(x_shape)),
        dy=draw(bad_arrays(y_shape) if spoil == "dy_dtype" else arrays(y_shape)),
        pool_size=pool_size, strides=strides, padding=padding,
        n_threads=draw(BAD_THREADS if spoil == "threads" else GOOD_THREADS),
    )


@fuzz_settings(300)
@given(case=pool_cases())
def test_fuzz_pooling(case):
    x, dy = build(case["x"]), build(case["dy"])
    kind, pool_size = case["kind"], case["pool_size"]
    args = dict(strides=case["strides"], padding=case["padding"], dropout=case["dropout"])
    names = ("x", "pool_size", "strides", "padding", "n_threads", "dropout", "rate", "seed")
    name = f"{kind}_pool2d"
    arrays_, widened = (x,), (widen(x),)
    if case["backward"]:
        name, arrays_, widened, names = (f"{name}_backward", (dy, x), (widen(dy), widen(x)),
                                         names + ("dy",))
    check(
        lambda: getattr(ops, name)(*arrays_, pool_size, n_threads=case["n_threads"], **args),
        lambda: getattr(reference, name)(*widened, pool_size, **args),
        names,
        other_invalid=threads_invalid(case["n_threads"]),
    )


# ---- matmul and dense ------------------------------------------------------------------


@st.composite
def gemm_cases(draw):
    """A valid product (with bias, for dense), then (less often) one thing spoilt."""
    spoils = ["a_dtype", "b_dtype", "bias_dtype", "a_shape", "b_shape", "inner", "bias_shape",
              "activation", "threads"]
    spoil = draw(st.sampled_from(SPOIL_NONE + spoils))
    m, k, n = (draw(st.sampled_from([0, 1, 2, 5, 17, 40, 300])) for _ in range(3))
    a_shape, b_shape, bias_shape = [m, k], [k, n], [n]
    if spoil == "a_shape":
        a_shape = tweak(a_shape, draw, axes=[0])
    elif spoil == "b_shape":
        b_shape = tweak(b_shape, draw, axes=[1])
    elif spoil == "inner":
        b_shape[0] += 1
    elif spoil == "bias_shape":
        bias_shape = draw(st.sampled_from([[n + 1], [1, n], []]))
    return dict(
        spoil=spoil,
        a=draw(bad_arrays(a_shape) if spoil == "a_dtype" else arrays(a_shape)),
        b=draw(bad_arrays(b_shape) if spoil == "b_dtype" else arrays(b_shape)),
        bias=draw(bad_arrays(bias_shape) if spoil == "bias_dtype"
                  else st.one_of(st.none(), arrays(bias_shape))),
        activation=draw(BAD_ACTIVATIONS if spoil == "activation" else GOOD_ACTIVATIONS),
        n_threads=draw(BAD_THREADS if spoil == "threads" else GOOD_THREADS),
    )


@fuzz_settings(150)
@given(case=gemm_cases())
def test_fuzz_matmul(case):
    a, b = build(case["a"]), build(case["b"])
    check(
        lambda: ops.matmul(a, b, n_threads=case["n_threads"]),
        lambda: exact_matmul(widen(a), widen(b)),
        ("a", "b", "n_threads"),
        other_invalid=threads_invalid(case["n_threads"]),
    )


def reference_dense(x, w, b, activation):
    y = exact_matmul(x, w)
    if b is not None:
        b = np.asarray(b)
        if b.dtype.kind not in "biuf":
            raise TypeError("b")
        if b.shape != (y.shape[1],):
            raise ValueError("b")
        y = y + b
    if activation_invalid(activation):
        raise ValueError("activation")
    return np.maximum(y, 0.0) if activation == "relu" else y


@fuzz_settings(150)
@given(case=gemm_cases())
def test_fuzz_dense(case):
    x, w = build(case["a"]), build(case["b"])
    b = None if case["bias"] is None else build(case["bias"])
    activation = case["activation"]
    check(
        lambda: ops.dense(x, w, b, activation=activation, n_threads=case["n_threads"]),
        lambda: reference_dense(widen(x), widen(w), widen(b), activation),
        ("x", "w", "b", "activation", "n_threads"),
        other_invalid=threads_invalid(case["n_threads"]),
    )


# ---- batch normalisation -------------------------------------------------------------


@st.composite
def batch_norm_cases(draw):
    """x of 1-4 dimensions (channels last), dy, and per-channel vectors,
    (less often) one of them spoilt."""
    spoil = draw(st.sampled_from(["none"] * 6 + ["x_dtype", "vector_shape", "vector_dtype",
                                                 "dy_shape", "threads", "scalar"]))
    ndim = draw(st.integers(1, 4))
    shape = [draw(st.integers(0, 4)) for _ in range(ndim - 1)]
    shape.append(draw(st.sampled_from([0, 1, 3, 16, 17])))
    c = shape[-1]
    if spoil == "scalar":
        shape = []
    vectors = {}
    for name in ("mean", "inv_std", "gamma", "beta"):
        vshape = [c]
        if spoil == "vector_shape" and draw(st.booleans()):
            vshape = draw(st.sampled_from([[c + 1], [1, c], []]))
        vectors[name] = draw(bad_arrays(vshape) if spoil == "vector_dtype" and draw(st.booleans())
                             else arrays(vshape))
    dy_shape = list(shape)
    if spoil == "dy_shape":
        dy_shape = dy_shape[:-1] + [c + 1] if dy_shape else [2]
    return dict(
        x=draw(bad_arrays(shape) if spoil == "x_dtype" else arrays(shape)),
        dy=draw(arrays(dy_shape)), **vectors,
        n_threads=draw(BAD_THREADS if spoil == "threads" else GOOD_THREADS),
        relu=draw(st.booleans()),
    )


@fuzz_settings(300)
@given(case=batch_norm_cases())
def test_fuzz_batch_norm(case):
    x, dy = build(case["x"]), build(case["dy"])
    mean, inv, gamma, beta = (build(case[k]) for k in ("mean", "inv_std", "gamma", "beta"))
    nt, bad_threads = case["n_threads"], threads_invalid(case["n_threads"])
    check(lambda: ops.batch_norm_statistics(x, n_threads=nt),
          lambda: reference.batch_norm_statistics(widen(x)),
          ("x", "n_threads"), other_invalid=bad_threads,
          compare=lambda got, want: [assert_matches(g, w) for g, w in zip(got, want)])
    relu, relu_beta = case["relu"], beta if case["relu"] else None
    check(lambda: ops.batch_norm(x, mean, inv, gamma, beta, relu=relu, n_threads=nt),
          lambda: reference.batch_norm(widen(x), widen(mean), widen(inv), widen(gamma),
                                       widen(beta), relu=relu),
          ("x", "mean", "inv_std", "gamma", "beta", "n_threads"), other_invalid=bad_threads)
    check(lambda: ops.batch_norm_backward(dy, x, mean, inv, gamma, relu_beta=relu_beta,
                                          n_threads=nt),
          lambda: reference.batch_norm_backward(widen(dy), widen(x), widen(mean), widen(inv),
                                                widen(gamma), relu_beta=widen(relu_beta)),
          ("dy", "x", "mean", "inv_std", "gamma", "relu_beta", "n_threads"),
          other_invalid=bad_threads,
          compare=lambda got, want: [assert_matches(g, w) for g, w in zip(got, want)])


# ---- leaky ReLU ---------------------------------------------------------------------

BAD_SLOPES = [-0.5, np.nan, np.inf, True, "0.2", None, np.float32(-1)]
BAD_CAPS = [-1.0, np.nan, False, "6", [6.0]]


@st.composite
def leaky_relu_cases(draw):
    """x and dy of 0-4 dimensions, a slope and a cap, (less often) one thing spoilt."""
    spoil = draw(st.sampled_from(["none"] * 6 + ["x_dtype", "dy_shape", "slope", "cap",
                                                 "threads"]))
    shape = [draw(st.integers(0, 5)) for _ in range(draw(st.integers(0, 4)))]
    dy_shape = shape + [2] if spoil == "dy_shape" else shape
    slope = draw(st.sampled_from([0.0, 0.01, 0.3, 1.0, 2.5, np.float32(0.2), 1]))
    cap = draw(st.sampled_from([None, None, 0.0, 1.0, 6, np.float64(6.0), np.inf]))
    return dict(
        x=draw(bad_arrays(shape) if spoil == "x_dtype" else arrays(shape)),
        dy=draw(arrays(dy_shape)),
        slope=draw(st.sampled_from(BAD_SLOPES)) if spoil == "slope" else slope,
        cap=draw(st.sampled_from(BAD_CAPS)) if spoil == "cap" else cap,
        n_threads=draw(BAD_THREADS if spoil == "threads" else GOOD_THREADS),
    )


@fuzz_settings(300)
@given(case=leaky_relu_cases())
def test_fuzz_leaky_relu(case):
    x, dy, slope, cap = build(case["x"]), build(case["dy"]), case["slope"], case["cap"]
    nt, bad_threads = case["n_threads"], threads_invalid(case["n_threads"])
    names = ("x", "dy", "y", "negative_slope", "max_value", "n_threads")
    check(lambda: ops.leaky_relu(x, slope, max_value=cap, n_threads=nt),
          lambda: reference.leaky_relu(widen(x), slope, max_value=cap),
          names, other_invalid=bad_threads)
    check(lambda: ops.leaky_relu_backward(dy, x, slope, max_value=cap, n_threads=nt),
          lambda: reference.leaky_relu_backward(widen(dy), widen(x), slope, max_value=cap),
          names, other_invalid=bad_threads)


# ---- crashes and bugs found by fuzzing, kept as plain tests -------------------------------


def test_huge_thread_count_is_an_error_not_a_crash():
    """libgomp crashed the process when asked for 100,000 threads."""
    x = np.ones((64, 8, 8, 4), np.float32)
    for n_threads in (100_000, 2**40):
        with pytest.raises(ValueError, match="n_threads must be at most"):
            ops.max_pool2d(x, 2, n_threads=n_threads)
    with pytest.raises(TypeError, match="n_threads must be an int"):
        ops.matmul(np.ones((2, 2)), np.ones((2, 2)), n_threads="2")
    with pytest.raises(ValueError, match="n must be at most"):
        fastconv.set_num_threads(100_000)


def test_huge_parameters_are_value_errors():
    """They used to be OverflowErrors from the Cython layer."""
    x, w = np.ones((1, 3, 3, 1), np.float32), np.ones((1, 1, 1, 1), np.float32)
    for kwargs, name in [(dict(stride=2**70), "stride"), (dict(dilation=2**63), "dilation"),
                         (dict(padding=2**63), "padding"),
                         (dict(padding=((2**31 - 1, 2**31 - 1), (2**31 - 1, 0))), "padding")]:
        with pytest.raises(ValueError, match=name):
            ops.conv2d(x, w, **kwargs)
    with pytest.raises(ValueError, match="strides"):
        ops.max_pool2d(x, 2, strides=2**70)


def test_cached_geometry_tells_one_from_true_and_one_point_zero():
    """The geometry cache once took True and 1.0 for an earlier 1."""
    x, w = np.ones((1, 3, 3, 1), np.float32), np.ones((1, 1, 1, 1), np.float32)
    ops.conv2d(x, w, stride=1, padding=1)
    for bad in (True, 1.0):
        with pytest.raises(TypeError, match="padding"):
            ops.conv2d(x, w, stride=1, padding=bad)
        with pytest.raises(TypeError, match="stride"):
            ops.conv2d(x, w, stride=bad, padding=1)
    with pytest.raises(ValueError, match="stride"):
        ops.conv2d(x, w, stride=(True, 1), padding=1)


def test_ragged_lists_name_the_argument():
    with pytest.raises(ValueError, match="x could not be read as an array"):
        ops.conv2d([[1.0], [1.0, 2.0]], np.ones((1, 1, 1, 1)))


@pytest.mark.parametrize("c", [1, 9])  # the direct and phase-GEMM paths
def test_convolution_of_an_image_of_padding_only(c):
    """h == 0 with padding: dx is empty (its pointer NULL) but the output is not."""
    x, w = np.ones((2, 0, 3, c), np.float32), np.ones((1, 1, c, 2), np.float32)
    y = ops.conv2d(x, w, np.ones(2), padding=1)
    np.testing.assert_array_equal(y, np.ones((2, 2, 5, 2)))
    dx, dw, db = ops.conv2d_backward(np.ones_like(y), x, w, padding=1)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dw, np.zeros_like(w))
    np.testing.assert_array_equal(db, np.full(2, 20.0))


def test_a_scalar_is_no_vector_of_one():
    """np.ascontiguousarray made a Python float 1-D, which passed for one bias."""
    x, w = np.ones((3, 2), np.float32), np.ones((2, 1), np.float32)
    for b in (0.5, np.float64(0.5)):
        with pytest.raises(ValueError, match=r"b must have shape \(1,\), got \(\)"):
            ops.dense(x, w, b)
        with pytest.raises(ValueError, match="b must have shape"):
            ops.conv2d(np.ones((1, 2, 2, 1)), np.ones((1, 1, 1, 1)), b)
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        ops.max_pool2d(2.0)


def test_pooling_without_channels():
    """memcpy from a NULL buffer (undefined behaviour) for c == 0."""
    x = np.ones((2, 4, 4, 0), np.float32)
    assert ops.max_pool2d(x, 2).shape == (2, 2, 2, 0)
    assert ops.avg_pool2d_backward(np.ones((2, 2, 2, 0)), x, 2).shape == x.shape


def test_bias_gradient_without_input_channels():
    x = np.ones((2, 3, 3, 0), np.float32)
    w = np.ones((1, 1, 0, 4), np.float32)
    dy = np.ones((2, 3, 3, 4), np.float32)
    np.testing.assert_array_equal(ops.conv2d_backward(dy, x, w)[2], np.full(4, 18.0))


@pytest.mark.parametrize("w_shape,mode", [
    ((3, 3, 16, 16), "fast"),  # F(4x4, 3x3)
    ((3, 3, 16, 16), "accurate"),  # F(2x2, 3x3)
    ((5, 5, 16, 16), "fast"),  # F(2x2, 5x5)
    ((3, 3, 16, 32), "fast"),  # both gradients from one pass
])
def test_winograd_keeps_infinities(w_shape, mode):
    """An infinity in x or dy: the Winograd transforms would spread it over
    whole tiles (NaN where the direct sums give infinities, or finite values
    past its reach); the pass sees the infinity or NaN it writes and another
    method takes the layer, so every result is the reference's."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 9, 16)).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    x[0, 4, 4, 3] = np.inf
    x[1, 2, 6, 5] = -np.inf
    before = fastconv.get_winograd()
    try:
        fastconv.set_winograd(mode)
        for padding in ("same", "valid"):
            want_y = exact(reference.conv2d, widen(x), widen(w), padding=padding)
            assert_matches(ops.conv2d(x, w, padding=padding), want_y)
            dy = rng.standard_normal(want_y.shape).astype(np.float32)
            dy[0, 1, 1, 2] = np.inf
            want = exact(reference.conv2d_backward, widen(dy), widen(x), widen(w),
                         padding=padding)
            for got, expected in zip(ops.conv2d_backward(dy, x, w, padding=padding), want):
                assert_matches(got, expected)
            x_finite = np.nan_to_num(x, posinf=0.0, neginf=0.0)  # dy's infinity alone
            want = exact(reference.conv2d_backward, widen(dy), widen(x_finite), widen(w),
                         padding=padding)
            for got, expected in zip(ops.conv2d_backward(dy, x_finite, w, padding=padding), want):
                assert_matches(got, expected)
    finally:
        fastconv.set_winograd(before)


@pytest.mark.parametrize("x_shape,w_shape,stride,padding", [
    ((1, 1, 2, 17), (1, 2, 17, 1), 1, "valid"),  # the phase-GEMM path
    ((2, 7, 6, 17), (3, 3, 17, 5), 2, 1),  # strided: dy's gaps
    ((2, 8, 8, 16), (3, 3, 16, 16), 1, "valid"),  # Winograd, one pass with dw
    ((2, 8, 8, 16), (3, 3, 16, 16), 1, "same"),  # Winograd on the rotated kernel
    ((1, 6, 6, 300), (3, 3, 300, 256), 1, "same"),  # F(2x2, 3x3): past 64K channel-filter pairs
    ((2, 10, 10, 16), (5, 5, 16, 16), 1, "same"),  # F(2x2, 5x5)
    ((2, 6, 6, 3), (3, 3, 3, 4), 1, "same"),  # direct
])
def test_infinite_and_nan_weights(x_shape, w_shape, stride, padding):
    """An infinite or NaN weight: y is the direct sums' (Winograd would
    spread it over whole output tiles), and dx holds only the taps that
    reach each pixel, so there is no NaN where no dy pixel reaches through
    that weight (every method but col2im would multiply a zero, of dy's
    padding, its stride's gaps or a transformed tile, by it)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    w[0, 0, 1] = np.inf
    w[-1, -1, 2, 0] = np.nan
    args = dict(stride=stride, padding=padding)
    want_y = exact(reference.conv2d, widen(x), widen(w), **args)
    dy = rng.standard_normal(want_y.shape).astype(np.float32)
    want = exact(reference.conv2d_backward, widen(dy), widen(x), widen(w), **args)
    for threads in (1, 2):
        assert_matches(ops.conv2d(x, w, n_threads=threads, **args), want_y)
        got = ops.conv2d_backward(dy, x, w, n_threads=threads, **args)
        for g, e in zip(got, want):
            assert_matches(g, e)


# ---- NaN and infinity through every op ---------------------------------------------------


def nonfinite(shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    flat[:: max(1, flat.size // 7)] = np.nan
    flat[3 :: max(1, flat.size // 5)] = np.inf
    flat[5 :: max(1, flat.size // 6)] = -np.inf
    return x


@pytest.mark.parametrize("c", [3, 4, 9, 16])  # the direct, col2im, phase-GEMM and Winograd paths
@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, 1), (1, "valid")])
def test_nan_and_inf_propagate_through_convolution(c, stride, padding):
    x, w = nonfinite((2, 7, 6, c), 1), np.random.default_rng(2).standard_normal((3, 3, c, 16))
    w = w.astype(np.float32)
    args = dict(stride=stride, padding=padding)
    with np.errstate(all="ignore"):
        y_want = exact(reference.conv2d, widen(x), widen(w), **args)
    y = ops.conv2d(x, w, **args)
    assert_matches(y, y_want)
    dy = nonfinite(y.shape, 3)
    with np.errstate(all="ignore"):
        want = exact(reference.conv2d_backward, widen(dy), widen(x), widen(w), **args)
    for got, expected in zip(ops.conv2d_backward(dy, x, w, **args), want):
        assert_matches(got, expected)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("c", [1, 8, 16, 32, 300])
def test_nan_and_inf_propagate_through_pooling(kind, c):
    x = nonfinite((2, 7, 7, c), 4)
    args = dict(strides=2, padding="same")
    with np.errstate(all="ignore"):
        y_want = getattr(reference, f"{kind}_pool2d")(widen(x), 3, **args)
    y = getattr(ops, f"{kind}_pool2d")(x, 3, **args)
    assert_matches(y, y_want)
    dy = nonfinite(y.shape, 5)
    with np.errstate(all="ignore"):
        want = getattr(reference, f"{kind}_pool2d_backward")(widen(dy), widen(x), 3, **args)
    assert_matches(getattr(ops, f"{kind}_pool2d_backward")(dy, x, 3, **args), want)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (7, 300, 45), (70, 20, 33)])
def test_nan_and_inf_propagate_through_matmul_and_dense(m, k, n):
    a, b = nonfinite((m, k), 6), nonfinite((k, n), 7)
    bias = nonfinite((n,), 8)
    with np.errstate(all="ignore"):
        product = exact_matmul(widen(a), widen(b))
        assert_matches(ops.matmul(a, b), product)
        assert_matches(ops.dense(a, b, bias), product + bias)
        assert_matches(ops.dense(a, b, bias, activation="relu"), np.maximum(product + bias, 0))


# ---- the private Cython layer, in a subprocess ---------------------------------------------

SIZES = st.one_of(st.integers(-1, 5), st.sampled_from([2**31, 2**62, 2**63 - 1, -(2**63)]))


@st.composite
def private_cases(draw):
    def floats(shape):
        # Usually float32 C-contiguous, as the layer wants; sometimes not.
        dtypes = ("float32",) if draw(st.integers(0, 4)) else REAL_DTYPES + BAD_DTYPES
        return draw(arrays(shape, dtypes, layouts=("c",) * 6 + ("strided", "fortran")))

    op = draw(st.sampled_from(["gemm", "forward", "backward_input", "backward_weight",
                               "pool_forward", "pool_backward"]))
    small = st.integers(0, 5)
    if op == "gemm":
        m, k, k2, n = (draw(small) for _ in range(4))
        return dict(op=op, a=floats((m, k)), b=floats((k2, n)),
                    bias=draw(st.one_of(st.none(), st.just(floats((draw(small),))))),
                    relu=draw(st.booleans()), trans_a=draw(st.booleans()),
                    trans_b=draw(st.booleans()))
    params = tuple(draw(SIZES) for _ in range(8))
    x_shape = tuple(draw(small) for _ in range(4))
    kind = draw(st.sampled_from(["max", "avg", "min"]))
    if op.startswith("pool"):
        kh, kw, sh, sw, pt, pb, pl, pr = params
        y_shape = (x_shape[0], draw(small), draw(small), x_shape[3])
        return dict(op=op, kind=kind, x=floats(x_shape), dy=floats(y_shape), params=params)
    w_shape = (draw(small), draw(small), draw(st.sampled_from([x_shape[3], draw(small)])),
               draw(small))
    y_shape = (x_shape[0], draw(small), draw(small), w_shape[3])
    return dict(op=op, x=floats(x_shape), w=floats(w_shape), dy=floats(y_shape),
                b=draw(st.one_of(st.none(), st.just(floats((draw(small),))))), params=params,
                x_shape=draw(st.sampled_from([x_shape, tuple(draw(SIZES) for _ in range(4))])),
                w_shape=draw(st.sampled_from([w_shape, tuple(draw(SIZES) for _ in range(4))])))


def call_private(case):
    """Call fastconv._kernels as the case says; return its result and a
    function that computes the reference's."""
    get = lambda key: None if case.get(key) is None else build(case[key])  # noqa: E731
    op, params = case["op"], case.get("params")
    if op == "gemm":
        a, b, bias = get("a"), get("b"), get("bias")
        got = _kernels.gemm(a, b, bias, case["relu"], 1, case["trans_a"], case["trans_b"])

        def want():
            a_, b_ = (widen(a).T if case["trans_a"] else widen(a),
                      widen(b).T if case["trans_b"] else widen(b))
            y = exact_matmul(a_, b_) + (0 if bias is None else widen(bias))
            return np.maximum(y, 0) if case["relu"] else y

        return got, want
    x, dy = get("x"), get("dy")
    if op.startswith("pool"):
        kh, kw, sh, sw, pt, pb, pl, pr = params
        args = dict(strides=(sh, sw), padding=((pt, pb), (pl, pr)))
        kind = case["kind"]
        if op == "pool_forward":
            got = _kernels.pool2d_forward(kind, x, params, 2)
            return got, lambda: getattr(reference, f"{kind}_pool2d")(widen(x), (kh, kw), **args)
        got = _kernels.pool2d_backward(kind, x, dy, params, 2)
        return got, lambda: getattr(reference, f"{kind}_pool2d_backward")(
            widen(dy), widen(x), (kh, kw), **args)
    w, b = get("w"), get("b")
    sh, sw, dh, dw, pt, pb, pl, pr = params
    args = dict(stride=(sh, sw), dilation=(dh, dw), padding=((pt, pb), (pl, pr)))
    if op == "forward":
        got = _kernels.conv2d_forward(x, w, b, params, False, 2)
        return got, lambda: exact(reference.conv2d, widen(x), widen(w), widen(b), **args)
    if op == "backward_input":
        got = _kernels.conv2d_backward_input(dy, w, case["x_shape"], params, 2)
        return got, lambda: exact(reference.conv2d_backward,
                                  widen(dy), np.zeros(case["x_shape"]), widen(w), **args)[0]
    got = _kernels.conv2d_backward_weight(x, dy, case["w_shape"], params, 2)
    return got, lambda: exact(reference.conv2d_backward,
                              widen(dy), widen(x), np.zeros(case["w_shape"]), **args)[1:]


@fuzz_settings(400)
@given(case=private_cases())
def fuzz_private_layer(case):
    """Run in a subprocess by test_fuzz_private_layer."""
    try:
        got, reference_result = call_private(case)
    except Exception:  # noqa: BLE001 - any exception is a clean refusal
        return
    # The layer accepted the call, so its shapes agreed: the result must be right.
    try:
        with np.errstate(all="ignore"):
            want = reference_result()
    except ValueError:
        # Only for parameters past what the public API takes (the layer's own
        # bound is far higher), such as a stride of 2**31.
        assert max(case.get("params") or (0,)) > _geometry.MAX_PARAM, case
        return
    if isinstance(got, tuple):
        dw, db = got
        assert_matches(dw, want[0])
        assert_matches(db, want[1])
    else:
        assert_matches(got, want)


def test_fuzz_private_layer():
    proc = run_python([os.path.abspath(__file__), "private"], timeout=600)
    assert proc.returncode == 0, (
        f"the private-layer fuzz exited with {proc.returncode}\n"
        f"{proc.stdout[-5000:]}\n{proc.stderr[-10000:]}"
    )
    assert "private-layer fuzz passed" in proc.stdout


if __name__ == "__main__" and sys.argv[1:] == ["private"]:
    fuzz_private_layer()
    print("private-layer fuzz passed")
