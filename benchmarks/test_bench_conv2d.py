"""Convolution benchmarks: one group per (pass, shape) of issue 3's table.

Each group holds fastconv, the NumPy reference (forward and whole backward
only: it has no split backward), NumPy im2col + matmul, and PyTorch in its
default NCHW layout and channels-last (skipped when torch is not installed).
Every result is checked against the reference.
"""

from __future__ import annotations

import pytest

from fastconv.bench import (
    CONV_PASSES,
    CONV_SHAPES,
    RTOL,
    conv_candidates,
    max_relative_error,
    pass_flops,
)

IMPLS = ("fastconv", "reference", "im2col", "torch-nchw", "torch-nhwc")


def _cases():
    for shape in CONV_SHAPES:
        for pass_ in CONV_PASSES:
            for impl in IMPLS:
                if impl == "reference" and pass_ in ("backward-input", "backward-weight"):
                    continue
                yield pytest.param(
                    shape,
                    pass_,
                    impl,
                    id=f"{shape.id}-{pass_}-{impl}",
                    marks=pytest.mark.benchmark(group=f"conv2d {pass_} {shape.id}"),
                )


@pytest.mark.parametrize(("shape", "pass_", "impl"), list(_cases()))
def test_conv2d(benchmark, conv_case, threads, shape, pass_, impl):
    layouts = ()
    if impl.startswith("torch"):
        pytest.importorskip("torch")
        layouts = (impl.removeprefix("torch-"),)
    case = conv_case(shape)
    candidate = conv_candidates(shape, pass_, case["inputs"], threads, layouts)[impl]
    benchmark.extra_info.update(
        shape=f"{shape.id} {shape.describe()}",
        pass_=pass_,
        threads=threads,
        flops=pass_flops(shape, pass_),
    )
    raw = benchmark(candidate.run)
    assert max_relative_error(candidate.result(raw), case["expected"][pass_]) <= RTOL
