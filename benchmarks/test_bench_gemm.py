"""GEMM benchmarks: ``ops.matmul`` against NumPy's ``@`` (OpenBLAS sgemm).

Shapes: 1024^3 and the GEMMs that S2, S4 and S6 make (M = n*ho*wo,
K = kh*kw*c, N = f). Both results are checked against a float64 product.
"""

from __future__ import annotations

import pytest

from fastconv.bench import GEMM_SHAPES, RTOL, gemm_candidates, max_relative_error


def _cases():
    for shape in GEMM_SHAPES:
        for impl in ("fastconv", "numpy"):
            yield pytest.param(
                shape,
                impl,
                id=f"{shape.id}-{shape.m}x{shape.k}x{shape.n}-{impl}",
                marks=pytest.mark.benchmark(group=f"matmul {shape.id} {shape.describe()}"),
            )


@pytest.mark.parametrize(("shape", "impl"), list(_cases()))
def test_matmul(benchmark, gemm_case, threads, shape, impl):
    case = gemm_case(shape)
    candidate = gemm_candidates(shape, case["inputs"], threads)[impl]
    benchmark.extra_info.update(shape=shape.describe(), threads=threads, flops=shape.flops)
    raw = benchmark(candidate.run)
    assert max_relative_error(candidate.result(raw), case["expected"]["matmul"]) <= RTOL
