"""Determinism: the same inputs give bitwise-identical outputs and gradients,
run to run (in this process and in a fresh one) and for any number of threads,
on every SIMD path.

The kernels guarantee it by construction: each output tile is computed by one
thread in a fixed order, and the batch reduction of a weight gradient is cut
into chunks fixed by the shape alone (up to 16 of 1,024 rows or more), added
in a fixed order. The shapes below take every path of the convolution and
reductions of one and of many chunks.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
from child_process import run_python
from hypothesis import given, settings
from hypothesis import strategies as st

import fastconv
from fastconv import ops

PATHS = fastconv.available_simd_paths()

# (x shape, w shape, stride, padding, dilation)
CASES = [
    ((1, 7, 9, 1), (3, 3, 1, 4), 1, "same", 1),  # direct (few channels), one chunk
    ((3, 17, 19, 40), (5, 3, 40, 70), 2, 1, 1),  # phase-GEMM backward, several chunks
    ((2, 20, 20, 16), (3, 3, 16, 32), 1, "same", 1),  # Winograd where it applies
    ((2, 15, 15, 24), (5, 5, 24, 16), 1, "valid", 1),
    ((2, 16, 16, 9), (3, 3, 9, 12), 1, 2, 2),  # dilated
    ((2, 30, 30, 64), (1, 1, 64, 96), 1, "valid", 1),  # pointwise: a plain GEMM
    ((8, 48, 48, 8), (3, 3, 8, 16), 1, "same", 1),  # n*ho*wo = 18,432: 16 chunks
    ((5, 60, 60, 3), (3, 3, 3, 8), 1, "valid", 1),  # 16,820 rows, direct
    ((3, 40, 40, 5), (3, 3, 5, 8), 2, "same", 1),  # col2im backward
    ((4, 70, 66, 20), (2, 2, 20, 24), 1, "valid", 1),  # 17,940 rows, phase GEMM
]
IDS = [f"{x[0]}x{x[1]}x{x[2]}x{x[3]}-k{w[0]}x{w[1]}-f{w[3]}-s{s}" for x, w, s, _, _ in CASES]


@pytest.fixture(params=PATHS, scope="module")
def simd_path(request):
    before = fastconv.get_simd_path()
    fastconv.set_simd_path(request.param)
    yield request.param
    fastconv.set_simd_path(before)


def inputs(case, seed=0):
    x_shape, w_shape, _, _, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[:3]))).astype(np.float32)
    b = rng.standard_normal(w_shape[3]).astype(np.float32)
    return x, w, b


def every_output(case, n_threads):
    """Convolution forward and backward, then pooling and GEMMs on the same
    arrays: every kernel, with results that depend on summation order."""
    x, w, b = inputs(case)
    _, _, stride, padding, dilation = case
    args = dict(stride=stride, padding=padding, dilation=dilation, n_threads=n_threads)
    y = ops.conv2d(x, w, b, **args)
    dy = np.cos(y)
    dx, dw, db = ops.conv2d_backward(dy, x, w, **args)
    flat = y.reshape(-1, y.shape[3])
    return (
        y, dx, dw, db,
        ops.max_pool2d_backward(np.ones((x.shape[0], 1, 1, x.shape[3])), x, x.shape[1:3],
                                n_threads=n_threads),
        ops.avg_pool2d(x, 3, strides=2, padding="same", n_threads=n_threads),
        ops.matmul(flat.T, flat, n_threads=n_threads),  # a long reduction
        ops.dense(flat, np.resize(w, (flat.shape[1], 13)), np.resize(b, 13),
                  activation="relu", n_threads=n_threads),
    )


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_bitwise_identical_for_any_thread_count_and_run(simd_path, case):
    first = every_output(case, 1)
    for n_threads in (2, 3, 1, 2):
        again = every_output(case, n_threads)
        for k, (a, b) in enumerate(zip(first, again)):
            assert a.tobytes() == b.tobytes(), f"output {k} differs at {n_threads} threads"


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import fastconv, test_determinism as t
fastconv.set_simd_path({path!r})
print(t.digest(t.every_output(t.CASES[{index}], {threads})))
"""


@pytest.mark.parametrize("index", [1, 6], ids=[IDS[1], IDS[6]])
def test_bitwise_identical_in_a_fresh_process(index):
    """Nothing may depend on addresses, allocation history or what a previous
    call left in the scratch cache."""
    path = fastconv.get_simd_path()
    here = digest(every_output(CASES[index], 2))
    tests = os.path.dirname(os.path.abspath(__file__))
    for threads in (1, 3):
        code = SCRIPT.format(tests=tests, path=path, index=index, threads=threads)
        out = run_python(["-c", code])
        assert out.returncode == 0, out.stderr[-3000:]
        assert out.stdout.strip() == here


@st.composite
def conv_shapes(draw):
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    h = draw(st.integers((kh - 1) * dilation + 1, 40))
    w = draw(st.integers((kw - 1) * dilation + 1, 40))
    n = draw(st.integers(1, 12))
    c, f = draw(st.sampled_from([1, 3, 8, 9, 16, 24, 33])), draw(st.sampled_from([1, 5, 16, 40]))
    padding = draw(st.sampled_from(["valid", "same", 1, 2]))
    return (n, h, w, c), (kh, kw, c, f), stride, padding, dilation


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(case=conv_shapes())
def test_bitwise_identical_for_drawn_shapes(case):
    first = every_output(case, 1)
    for n_threads in (2, 3):
        for k, (a, b) in enumerate(zip(first, every_output(case, n_threads))):
            assert a.tobytes() == b.tobytes(), f"output {k} differs at {n_threads} threads"
