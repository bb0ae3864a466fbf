"""Tests of the measuring instruments: the baselines and the report command.

A benchmark that compares against a wrong baseline measures nothing, so the
baselines are checked against the reference on awkward geometries (padding
on one side, strides, dilations, c = 1, a kernel as large as the input), not
only on the benchmark shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastconv import bench, reference
from fastconv import bench_baselines as bb
from fastconv._geometry import conv2d_geometry, pool2d_geometry

GEOMETRIES = [
    # x shape, w shape, stride, padding, dilation
    ((2, 7, 9, 3), (3, 2, 3, 4), 1, "valid", 1),
    ((1, 8, 8, 1), (3, 3, 1, 5), 2, 1, 1),
    ((3, 10, 7, 4), (2, 3, 4, 2), (2, 1), ((1, 0), (2, 1)), (2, 1)),
    ((2, 5, 5, 3), (5, 5, 3, 3), 1, "same", 1),
    ((2, 4, 6, 2), (4, 6, 2, 3), 1, "valid", 1),  # kernel as large as the input
    ((2, 6, 6, 2), (1, 1, 2, 3), 2, 0, 1),
]


def _inputs(x_shape, w_shape, stride, padding, dilation, seed=0):
    rng = np.random.default_rng(seed)
    g = conv2d_geometry(x_shape, w_shape, stride, padding, dilation)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    b = rng.standard_normal(g.f, dtype=np.float32)
    dy = rng.standard_normal(g.y_shape, dtype=np.float32)
    return g, x, w, b, dy


def _expected(g, x, w, b, dy, stride, padding, dilation):
    conv = {"stride": stride, "padding": padding, "dilation": dilation}
    y = reference.conv2d(x, w, b, **conv)
    return (y,) + tuple(reference.conv2d_backward(dy, x, w, **conv))


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_im2col_baselines_match_reference(geometry):
    g, x, w, b, dy = _inputs(*geometry)
    y, dx, dw, db = _expected(g, x, w, b, dy, *geometry[2:])
    assert bench.max_relative_error((bb.im2col_conv2d(x, w, b, g),), (y,)) < 1e-5
    assert bench.max_relative_error((bb.im2col_conv2d_backward_input(dy, w, g),), (dx,)) < 1e-5
    assert bench.max_relative_error(bb.im2col_conv2d_backward_weight(x, dy, g), (dw, db)) < 1e-5
    assert bench.max_relative_error(bb.im2col_conv2d_backward(dy, x, w, g), (dx, dw, db)) < 1e-5


def test_im2col_layout():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    g = conv2d_geometry(x.shape, (2, 2, 3, 1), 2, "valid", 1)
    cols = bb.im2col(x, g)
    assert cols.shape == (2 * 2 * 2, 2 * 2 * 3)
    # Row (n=1, i=1, j=0) holds x[1, 2:4, 0:2, :] in (ki, kj, c) order.
    np.testing.assert_array_equal(cols[1 * 4 + 1 * 2 + 0], x[1, 2:4, 0:2, :].ravel())


@pytest.mark.parametrize("layout", bb.TORCH_LAYOUTS)
@pytest.mark.parametrize("geometry", [g for g in GEOMETRIES if not isinstance(g[3], tuple)])
def test_torch_conv_matches_reference(geometry, layout):
    pytest.importorskip("torch")
    g, x, w, b, dy = _inputs(*geometry)
    if g.pt != g.pb or g.pl != g.pr:
        pytest.skip("PyTorch takes symmetric padding only")
    y, dx, dw, db = _expected(g, x, w, b, dy, *geometry[2:])
    t = bb.TorchConv2D(x, w, b, dy, g, layout)
    assert bench.max_relative_error((t.to_numpy(t.forward()),), (y,)) < 1e-5
    assert bench.max_relative_error((t.to_numpy(t.backward_input()),), (dx,)) < 1e-5
    tw, tb = t.backward_weight()
    assert bench.max_relative_error((t.weight_to_numpy(tw), tb.numpy()), (dw, db)) < 1e-5
    tx, tw, tb = t.backward()
    got = (t.to_numpy(tx), t.weight_to_numpy(tw), tb.numpy())
    assert bench.max_relative_error(got, (dx, dw, db)) < 1e-5


def test_torch_rejects_asymmetric_padding():
    pytest.importorskip("torch")
    g, x, w, b, dy = _inputs(*GEOMETRIES[2])
    with pytest.raises(ValueError, match="symmetric"):
        bb.TorchConv2D(x, w, b, dy, g)


@pytest.mark.parametrize("layout", bb.TORCH_LAYOUTS)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_torch_pool_matches_reference(kind, layout):
    pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 9, 8, 5), dtype=np.float32)
    pool = {"strides": 2, "padding": ((1, 1), (1, 1))}
    g = pool2d_geometry(x.shape, 3, 2, pool["padding"])
    y = getattr(reference, f"{kind}_pool2d")(x, 3, **pool)
    dy = rng.standard_normal(y.shape, dtype=np.float32)
    dx = getattr(reference, f"{kind}_pool2d_backward")(dy, x, 3, **pool)
    t = bb.TorchPool2D(kind, x, dy, g, layout)
    assert bench.max_relative_error((t.to_numpy(t.forward()),), (y,)) < 1e-6
    assert bench.max_relative_error((t.to_numpy(t.backward()),), (dx,)) < 1e-6


def test_torch_layout_is_checked():
    pytest.importorskip("torch")
    g, x, w, b, dy = _inputs(*GEOMETRIES[0])
    with pytest.raises(ValueError, match="layout"):
        bb.TorchConv2D(x, w, b, dy, g, "nhcw")


def test_max_relative_error():
    e = (np.array([1.0, -4.0]), np.array([2.0]))
    assert bench.max_relative_error(e, e) == 0.0
    assert bench.max_relative_error((np.array([1.0, -3.0]), np.array([2.0])), e) == 0.25
    with pytest.raises(ValueError, match="shape"):
        bench.max_relative_error((np.zeros(3), np.zeros(1)), e)
    with pytest.raises(ValueError, match="arrays"):
        bench.max_relative_error(e[:1], e)


def test_measure_is_round_robin():
    calls = []
    timings = bench.measure(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, settle=0
    )
    assert {k: len(v) for k, v in timings.seconds.items()} == {"a": 3, "b": 3}
    assert timings.discarded == timings.busy_kept == 0
    # settle=0: one untimed call, then the timed one, alternating a and b.
    assert calls == ["a", "a", "b", "b"] * 3


class _BusyGuard:
    """Every round is busy; it waits for quiet ``patience`` times, then gives up."""

    def __init__(self, patience):
        self.patience = patience

    def mark(self):
        return None

    def busy_since(self, mark):
        return True

    def wait_for_quiet(self):
        self.patience -= 1
        return self.patience >= 0


def test_measure_redoes_busy_rounds():
    calls = []
    timings = bench.measure(
        {"a": lambda: calls.append("a")}, repeats=2, settle=0, guard=_BusyGuard(3)
    )
    assert (timings.discarded, timings.busy_kept) == (3, 2)
    assert len(timings.seconds["a"]) == 2
    assert len(calls) == 2 * (3 + 2)


def test_load_guard(monkeypatch):
    guard = bench.LoadGuard(max_busy=0.05, patience=0.0)
    if not guard.available:
        pytest.skip("no /proc/stat here")
    ticks = iter([0.0, 0.5, 0.0, 50.0])
    monkeypatch.setattr(bench.LoadGuard, "ticks", lambda self: next(ticks))
    assert not guard.busy_since(guard.mark())  # half a tick: sampling noise
    assert guard.busy_since(guard.mark())  # 50 ticks (0.5 s of CPU) in no time
    assert not guard.wait_for_quiet()  # no patience: gives up at once
    assert guard.waited == 0.0


def test_shapes_match_the_issue():
    flops = {s.id: s.flops for s in bench.CONV_SHAPES}
    assert flops["S2"] == 2 * 64 * 24 * 24 * 64 * 32 * 9
    assert flops["S8"] == 2 * 32 * 16 * 16 * 128 * 64 * 9
    gemm = {s.id: (s.m, s.k, s.n) for s in bench.GEMM_SHAPES}
    assert gemm == {
        "G1": (1024, 1024, 1024),
        "S2": (64 * 24 * 24, 288, 64),
        "S4": (64 * 16 * 16, 576, 128),
        "S6": (8 * 56 * 56, 576, 64),
    }
    p1 = bench.POOL_SHAPES[0]
    assert bench.pool_bytes(p1, "avg-backward") == 4 * (64 * 13 * 13 * 64 + 64 * 26 * 26 * 64)


def test_command_line_errors():
    for argv in (["--shapes", "S9"], ["--sections", "conv,disk"], ["--threads", "0"]):
        with pytest.raises(SystemExit):
            bench._parse(argv)


def test_child_environment(monkeypatch):
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "4")
    assert bench._child_environment(2) is None
    env = bench._child_environment(3)
    assert env["OPENBLAS_NUM_THREADS"] == "3" and env["OPENBLAS_THREAD_TIMEOUT"] == "4"
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    assert bench._child_environment(2)["OPENBLAS_THREAD_TIMEOUT"] == "4"


def test_report_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "report.md"
    status = bench.main(
        [
            "--in-process",
            "--quick",
            "--repeats",
            "1",
            "--shapes",
            "S1",
            "--threads",
            "1",
            "--sections",
            "conv,overhead",
            "--no-torch",
            "--max-busy",
            "-1",
            "--markdown-out",
            str(out),
        ]
    )
    assert status == 0
    text = out.read_text()
    assert text.strip() == capsys.readouterr().out.strip()
    assert "| S1 | **backward total** |" in text
    assert "ops.conv2d on 1x1x1x1 under 20 us" in text
    assert "RESULT MISMATCHES" not in text
