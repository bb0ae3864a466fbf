"""Shared setup of the benchmark suites.

Run them with ``pytest benchmarks --benchmark-only`` (timings on; the hook
below lets ``--benchmark-only`` override the ``--benchmark-disable`` that
pyproject.toml's addopts sets for the ordinary test run). Without it every
benchmark runs once, untimed, as a test: its result is still checked.

Threads: ``FASTCONV_BENCH_THREADS``, else ``OMP_NUM_THREADS``, else every
processor, for fastconv, PyTorch and OpenBLAS alike. OpenBLAS reads its
environment when NumPy loads, so the variables are set here when NumPy has
not been imported yet (``pytest benchmarks``); when it has (tests and
benchmarks in one run), threadpoolctl limits it if installed.
``OPENBLAS_THREAD_TIMEOUT=4`` stops OpenBLAS's idle threads from spinning for
0.1 s after each call, on the cores the next benchmark is timed on.

The shapes, inputs and implementations come from `fastconv.bench`, which the
report command ``python -m fastconv.bench`` uses too.
"""

from __future__ import annotations

import os
import sys


def _threads() -> int:
    for name in ("FASTCONV_BENCH_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


THREADS = _threads()

if "numpy" not in sys.modules:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(THREADS))
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fastconv import reference  # noqa: E402
from fastconv.bench import (  # noqa: E402
    ConvShape,
    GemmShape,
    PoolShape,
    conv_inputs,
    gemm_inputs,
    pool_inputs,
)


def pytest_configure(config):
    # pytest-benchmark refuses --benchmark-only together with --benchmark-disable
    # (set by addopts); asking for benchmarks only means asking for timings.
    if config.getoption("benchmark_only", False) and config.getoption("benchmark_disable", False):
        config.option.benchmark_enable = True


@pytest.fixture(scope="session", autouse=True)
def _library_threads():
    """Give OpenBLAS and PyTorch the benchmark thread count for the session."""
    limits = None
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=THREADS, user_api="blas")
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    old_torch = None
    if torch is None:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        old_torch = torch.get_num_threads()
        torch.set_num_threads(THREADS)
    yield
    if torch is not None:
        torch.set_num_threads(old_torch)
    if limits is not None:
        limits.restore_original_limits()


@pytest.fixture(scope="session")
def threads() -> int:
    return THREADS


class _Cache:
    """Inputs and reference results per shape, built on first use, kept for the session."""

    def __init__(self, build):
        self._build = build
        self._items = {}

    def __call__(self, shape):
        if shape.id not in self._items:
            self._items[shape.id] = self._build(shape)
        return self._items[shape.id]


def _conv_case(shape: ConvShape) -> dict:
    inputs = conv_inputs(shape)
    x, w, b, dy = inputs["x"], inputs["w"], inputs["b"], inputs["dy"]
    conv = {"stride": shape.stride, "padding": shape.padding}
    y = reference.conv2d(x, w, b, **conv)
    dx, dw, db = reference.conv2d_backward(dy, x, w, **conv)
    expected = {
        "forward": (y,),
        "backward-input": (dx,),
        "backward-weight": (dw, db),
        "backward": (dx, dw, db),
    }
    return {"inputs": inputs, "expected": expected}


def _pool_case(shape: PoolShape) -> dict:
    inputs = pool_inputs(shape)
    x, dy = inputs["x"], inputs["dy"]
    size, strides = shape.pool, shape.stride
    expected = {}
    for kind in ("max", "avg"):
        forward = getattr(reference, f"{kind}_pool2d")
        backward = getattr(reference, f"{kind}_pool2d_backward")
        expected[f"{kind}-forward"] = (forward(x, size, strides=strides),)
        expected[f"{kind}-backward"] = (backward(dy, x, size, strides=strides),)
    expected["max-forward-argmax"] = expected["max-forward"]
    expected["max-backward-argmax"] = expected["max-backward"]
    return {"inputs": inputs, "expected": expected}


def _gemm_case(shape: GemmShape) -> dict:
    inputs = gemm_inputs(shape)
    product = inputs["a"].astype(np.float64) @ inputs["b"].astype(np.float64)
    return {"inputs": inputs, "expected": {"matmul": (product,)}}


@pytest.fixture(scope="session")
def conv_case():
    """``conv_case(shape)``: {"inputs": x, w, b, dy; "expected": per pass, from the reference}."""
    return _Cache(_conv_case)


@pytest.fixture(scope="session")
def pool_case():
    """``pool_case(shape)``: {"inputs": x, dy; "expected": per op, from the reference}."""
    return _Cache(_pool_case)


@pytest.fixture(scope="session")
def gemm_case():
    """``gemm_case(shape)``: {"inputs": a, b; "expected": the product in float64}."""
    return _Cache(_gemm_case)
