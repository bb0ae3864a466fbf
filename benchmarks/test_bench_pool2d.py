"""Pooling benchmarks (2x2, stride 2): one group per (op, shape).

Each group holds fastconv, the NumPy reference and PyTorch (NCHW and
channels-last, when installed); every result is checked against the
reference. ``extra_info["bytes"]`` is what an ideal kernel moves, for GB/s.
"""

from __future__ import annotations

import pytest

from fastconv.bench import (
    POOL_OPS,
    POOL_SHAPES,
    RTOL,
    max_relative_error,
    pool_bytes,
    pool_candidates,
)

IMPLS = ("fastconv", "reference", "torch-nchw", "torch-nhwc")


def _cases():
    for shape in POOL_SHAPES:
        for op in POOL_OPS:
            for impl in IMPLS:
                yield pytest.param(
                    shape,
                    op,
                    impl,
                    id=f"{shape.id}-{op}-{impl}",
                    marks=pytest.mark.benchmark(group=f"pool2d {op} {shape.id}"),
                )


@pytest.mark.parametrize(("shape", "op", "impl"), list(_cases()))
def test_pool2d(benchmark, pool_case, threads, shape, op, impl):
    layouts = ()
    if impl.startswith("torch"):
        pytest.importorskip("torch")
        layouts = (impl.removeprefix("torch-"),)
    case = pool_case(shape)
    candidate = pool_candidates(shape, op, case["inputs"], threads, layouts)[impl]
    benchmark.extra_info.update(
        shape=f"{shape.id} {shape.describe()}",
        op=op,
        threads=threads,
        bytes=pool_bytes(shape, op),
    )
    raw = benchmark(candidate.run)
    assert max_relative_error(candidate.result(raw), case["expected"][op]) <= RTOL
