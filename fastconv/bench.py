"""Measure fastconv against its baselines and print a markdown report.

Run ``python -m fastconv.bench --help``. For every convolution shape of
issue 3 (S1-S8) and every pass (forward, backward-input, backward-weight and
the whole backward: input + weight + bias) the report gives fastconv's median
time, its GFLOP/s, the percentage of this machine's peak FMA throughput
(`fastconv.peak_gflops`, measured on the spot) and the speed-up over each
baseline (baseline time / fastconv time): the NumPy reference
(`fastconv.reference`), NumPy im2col + matmul and PyTorch in both of its
layouts when torch can be imported (see `fastconv.bench_baselines`). Then
pooling in GB/s against the measured memory bandwidth
(`fastconv.memory_bandwidth`), the GEMM against NumPy's ``@``, the Python
overhead of one tiny ``ops.conv2d`` call, and a PASS / FAIL line per target
of the issue.

How it measures
---------------
* One (shape, pass) at a time, the implementations run round-robin:
  fastconv, reference, im2col, torch, fastconv, ... ``--repeats`` times, and
  the report keeps each one's median. Load that comes and goes on the
  machine then hits all of them alike.
* Before each timed call the same function runs untimed (at least once, and
  for at least ``--settle`` seconds). Each library keeps its own thread pool,
  whose idle threads spin for a while after a call; without the settle call
  those spinning threads steal the cores from the next library's timed
  call (on two cores this made fastconv up to 3x slower right after an
  OpenBLAS call).
* Every implementation's result is checked once against fastconv's (maximum
  error relative to the largest magnitude, 1e-3); a mismatch is printed and
  makes the exit status 1.
* Threads: fastconv gets ``n_threads`` on every call, PyTorch
  ``torch.set_num_threads``, and NumPy's OpenBLAS reads
  ``OPENBLAS_NUM_THREADS`` when it loads, which has already happened once
  fastconv is imported. So unless the environment already holds them,
  `main` runs the measurement in a child process with
  ``OPENBLAS_NUM_THREADS`` set to the thread count and
  ``OPENBLAS_THREAD_TIMEOUT=4`` (OpenBLAS's idle threads otherwise spin for
  about 0.1 s after every call; this does not slow OpenBLAS itself).
  ``--in-process`` skips the child; threadpoolctl, when installed, then sets
  OpenBLAS's thread count.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

import fastconv
from fastconv import _kernels, ops, reference
from fastconv import bench_baselines as bb
from fastconv._geometry import Conv2DGeometry, Pool2DGeometry, conv2d_geometry, pool2d_geometry

__all__ = [
    "ConvShape",
    "PoolShape",
    "GemmShape",
    "CONV_SHAPES",
    "POOL_SHAPES",
    "GEMM_SHAPES",
    "CONV_PASSES",
    "POOL_OPS",
    "Candidate",
    "conv_inputs",
    "conv_candidates",
    "pool_inputs",
    "pool_candidates",
    "gemm_inputs",
    "gemm_candidates",
    "max_relative_error",
    "measure",
    "main",
]

RTOL = 1e-3  # maximum error relative to the largest magnitude of the result

# ---- workloads ---------------------------------------------------------------


@dataclass(frozen=True)
class ConvShape:
    """One convolution of issue 3's table: NHWC input, square kernel, HWIO weights."""

    id: str
    name: str
    n: int
    h: int
    w: int
    c: int
    f: int
    k: int
    stride: int
    padding: int

    @property
    def geometry(self) -> Conv2DGeometry:
        return conv2d_geometry(
            (self.n, self.h, self.w, self.c),
            (self.k, self.k, self.c, self.f),
            self.stride,
            self.padding,
        )

    @property
    def flops(self) -> int:
        """FLOPs of one pass: 2*n*ho*wo*f*c*kh*kw."""
        return self.geometry.flops

    @property
    def gemm_mkn(self) -> tuple[int, int, int]:
        """The GEMM this convolution makes: M = n*ho*wo, K = kh*kw*c, N = f."""
        g = self.geometry
        return g.n * g.ho * g.wo, g.kh * g.kw * g.c, g.f

    def describe(self) -> str:
        return (
            f"{self.n}x{self.h}x{self.w}x{self.c} -> {self.f}, {self.k}x{self.k}, "
            f"stride {self.stride}, pad {self.padding}"
        )


CONV_SHAPES = (
    ConvShape("S1", "mnist-conv1", 64, 28, 28, 1, 32, 3, 1, 0),
    ConvShape("S2", "mnist-conv2", 64, 26, 26, 32, 64, 3, 1, 0),
    ConvShape("S3", "lenet-5x5", 64, 14, 14, 32, 64, 5, 1, 2),
    ConvShape("S4", "cifar-conv2", 64, 16, 16, 64, 128, 3, 1, 1),
    ConvShape("S5", "cifar-conv3", 64, 8, 8, 128, 256, 3, 1, 1),
    ConvShape("S6", "resnet-3x3", 8, 56, 56, 64, 64, 3, 1, 1),
    ConvShape("S7", "resnet-1x1", 8, 56, 56, 64, 256, 1, 1, 0),
    ConvShape("S8", "strided", 32, 32, 32, 64, 128, 3, 2, 1),
)

# forward; dx; (dw, db); and the whole backward (dx, dw, db) as a training step needs it.
CONV_PASSES = ("forward", "backward-input", "backward-weight", "backward")
# Shapes where the work is large GEMMs: the issue's %-of-peak targets apply to these.
GEMM_HEAVY = ("S2", "S4", "S5", "S6", "S7")


@dataclass(frozen=True)
class PoolShape:
    """A 2x2 stride-2 pooling input of issue 3, NHWC."""

    id: str
    n: int
    h: int
    w: int
    c: int
    pool: int = 2
    stride: int = 2

    @property
    def geometry(self) -> Pool2DGeometry:
        return pool2d_geometry((self.n, self.h, self.w, self.c), self.pool, self.stride)

    def describe(self) -> str:
        return f"{self.n}x{self.h}x{self.w}x{self.c}, {self.pool}x{self.pool} stride {self.stride}"


POOL_SHAPES = (PoolShape("P1", 64, 26, 26, 64), PoolShape("P2", 64, 32, 32, 64))
# "-argmax": max pooling as training runs it, the forward also writing where
# each maximum is and the backward reading that instead of x (PyTorch's
# forward then returns its indices, as its training forward does).
POOL_OPS = ("max-forward", "max-backward", "avg-forward", "avg-backward", "max-forward-argmax",
            "max-backward-argmax")


@dataclass(frozen=True)
class GemmShape:
    """``(m, k) @ (k, n)``; ``id`` is "G1" or the convolution whose GEMM it is."""

    id: str
    m: int
    k: int
    n: int

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n

    def describe(self) -> str:
        return f"{self.m}x{self.k} @ {self.k}x{self.n}"


def _conv_gemm(shape_id: str) -> GemmShape:
    shape = next(s for s in CONV_SHAPES if s.id == shape_id)
    return GemmShape(shape_id, *shape.gemm_mkn)


GEMM_SHAPES = (GemmShape("G1", 1024, 1024, 1024),) + tuple(
    _conv_gemm(i) for i in ("S2", "S4", "S6")
)


def pass_flops(shape: ConvShape, pass_: str) -> int:
    """FLOPs of one pass; the whole backward counts its two GEMM-sized passes."""
    return 2 * shape.flops if pass_ == "backward" else shape.flops


def pool_bytes(shape: PoolShape, op: str) -> int:
    """Bytes an ideal kernel moves: every array read or written once.

    forward reads x and writes y (and a byte per output of argmax);
    max-backward reads x (or the argmax) and dy and writes dx; avg-backward
    reads dy and writes dx.
    """
    g = shape.geometry
    x = 4 * g.n * g.h * g.w * g.c
    y = 4 * g.n * g.ho * g.wo * g.c
    argmax = y // 4
    return {
        "max-forward": x + y,
        "avg-forward": x + y,
        "max-backward": x + y + x,
        "avg-backward": y + x,
        "max-forward-argmax": x + y + argmax,
        "max-backward-argmax": argmax + y + x,
    }[op]


# ---- inputs and candidates ---------------------------------------------------


@dataclass
class Candidate:
    """One implementation of one benchmark.

    ``run()`` is the timed call; ``result(raw)`` turns what it returned into
    a tuple of NumPy arrays in fastconv's layouts, outside the timing.
    """

    run: Callable[[], object]
    result: Callable[[object], tuple[np.ndarray, ...]]


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def conv_inputs(shape: ConvShape, seed: int = 0) -> dict[str, np.ndarray]:
    """x, w (scaled by 1/sqrt(fan-in)), b and dy for one shape, float32."""
    rng = _rng(seed)
    g = shape.geometry
    fan_in = g.kh * g.kw * g.c
    return {
        "x": rng.standard_normal(g.x_shape, dtype=np.float32),
        "w": (rng.standard_normal(g.w_shape, dtype=np.float32) / np.float32(math.sqrt(fan_in))),
        "b": rng.standard_normal(g.f, dtype=np.float32),
        "dy": rng.standard_normal(g.y_shape, dtype=np.float32),
    }


def _one(raw) -> tuple[np.ndarray, ...]:
    return (raw,)


def _tuple(raw) -> tuple[np.ndarray, ...]:
    return tuple(raw)


def _torch_layouts(torch_layouts: Iterable[str] | None) -> tuple[str, ...]:
    """The torch layouts to use: none when torch cannot be imported."""
    layouts = bb.TORCH_LAYOUTS if torch_layouts is None else tuple(torch_layouts)
    return layouts if layouts and bb.torch_available() else ()


def conv_candidates(
    shape: ConvShape,
    pass_: str,
    inputs: dict[str, np.ndarray],
    n_threads: int,
    torch_layouts: Iterable[str] | None = None,
) -> dict[str, Candidate]:
    """fastconv and every baseline for one (shape, pass), fastconv first.

    The reference has no split backward, so it takes part in "forward" and
    "backward" only. Torch candidates are named "torch-nchw" / "torch-nhwc".
    """
    if pass_ not in CONV_PASSES:
        raise ValueError(f"pass must be one of {CONV_PASSES}, got {pass_!r}")
    x, w, b, dy = inputs["x"], inputs["w"], inputs["b"], inputs["dy"]
    g = shape.geometry
    conv = {"stride": shape.stride, "padding": shape.padding}
    # ops has no public backward-input alone yet: its kernel is called directly.
    _, params = ops._conv_params(x.shape, w.shape, shape.stride, shape.padding, 1)
    nt = n_threads
    if pass_ == "forward":
        cands = {
            "fastconv": Candidate(lambda: ops.conv2d(x, w, b, **conv, n_threads=nt), _one),
            "reference": Candidate(lambda: reference.conv2d(x, w, b, **conv), _one),
            "im2col": Candidate(lambda: bb.im2col_conv2d(x, w, b, g), _one),
        }
    elif pass_ == "backward-input":
        cands = {
            "fastconv": Candidate(
                lambda: _kernels.conv2d_backward_input(dy, w, g.x_shape, params, nt), _one
            ),
            "im2col": Candidate(lambda: bb.im2col_conv2d_backward_input(dy, w, g), _one),
        }
    elif pass_ == "backward-weight":
        cands = {
            "fastconv": Candidate(
                lambda: ops.conv2d_backward(dy, x, w, **conv, input_grad=False, n_threads=nt),
                lambda r: tuple(r[1:]),
            ),
            "im2col": Candidate(lambda: bb.im2col_conv2d_backward_weight(x, dy, g), _tuple),
        }
    else:
        cands = {
            "fastconv": Candidate(
                lambda: ops.conv2d_backward(dy, x, w, **conv, n_threads=nt), _tuple
            ),
            "reference": Candidate(lambda: reference.conv2d_backward(dy, x, w, **conv), _tuple),
            "im2col": Candidate(lambda: bb.im2col_conv2d_backward(dy, x, w, g), _tuple),
        }
    for layout in _torch_layouts(torch_layouts):
        t = bb.TorchConv2D(x, w, b, dy, g, layout)
        if pass_ == "forward":
            cand = Candidate(t.forward, lambda r, t=t: (t.to_numpy(r),))
        elif pass_ == "backward-input":
            cand = Candidate(t.backward_input, lambda r, t=t: (t.to_numpy(r),))
        elif pass_ == "backward-weight":
            cand = Candidate(
                t.backward_weight, lambda r, t=t: (t.weight_to_numpy(r[0]), r[1].numpy())
            )
        else:
            cand = Candidate(
                t.backward,
                lambda r, t=t: (t.to_numpy(r[0]), t.weight_to_numpy(r[1]), r[2].numpy()),
            )
        cands[f"torch-{layout}"] = cand
    return cands


def pool_inputs(shape: PoolShape, seed: int = 0) -> dict[str, np.ndarray]:
    rng = _rng(seed)
    g = shape.geometry
    return {
        "x": rng.standard_normal(g.x_shape, dtype=np.float32),
        "dy": rng.standard_normal(g.y_shape, dtype=np.float32),
    }


def pool_candidates(
    shape: PoolShape,
    op: str,
    inputs: dict[str, np.ndarray],
    n_threads: int,
    torch_layouts: Iterable[str] | None = None,
) -> dict[str, Candidate]:
    """fastconv, the reference and torch for one pooling op ("max-forward", ...)."""
    if op not in POOL_OPS:
        raise ValueError(f"op must be one of {POOL_OPS}, got {op!r}")
    kind, direction, *argmax = op.split("-")
    x, dy = inputs["x"], inputs["dy"]
    g = shape.geometry
    size, strides, nt = shape.pool, shape.stride, n_threads
    if direction == "forward":
        fc, ref = getattr(ops, f"{kind}_pool2d"), getattr(reference, f"{kind}_pool2d")
        fastconv = Candidate(lambda: fc(x, size, strides=strides, n_threads=nt), _one)
        if argmax:
            fastconv = Candidate(
                lambda: fc(x, size, strides=strides, return_argmax=True, n_threads=nt),
                lambda r: r[:1],
            )
        cands = {
            "fastconv": fastconv,
            "reference": Candidate(lambda: ref(x, size, strides=strides), _one),
        }
    else:
        fc = getattr(ops, f"{kind}_pool2d_backward")
        ref = getattr(reference, f"{kind}_pool2d_backward")
        fastconv = Candidate(lambda: fc(dy, x, size, strides=strides, n_threads=nt), _one)
        if argmax:
            kept = ops.max_pool2d(x, size, strides=strides, return_argmax=True)[1]
            fastconv = Candidate(
                lambda: ops.max_pool2d_backward_argmax(dy, kept, x.shape, size, strides=strides,
                                                       n_threads=nt),
                _one,
            )
        cands = {
            "fastconv": fastconv,
            "reference": Candidate(lambda: ref(dy, x, size, strides=strides), _one),
        }
    for layout in _torch_layouts(torch_layouts):
        t = bb.TorchPool2D(kind, x, dy, g, layout)
        if direction == "backward":
            cands[f"torch-{layout}"] = Candidate(t.backward, lambda r, t=t: (t.to_numpy(r),))
        elif argmax:
            cands[f"torch-{layout}"] = Candidate(t.forward_with_indices,
                                                 lambda r, t=t: (t.to_numpy(r[0]),))
        else:
            cands[f"torch-{layout}"] = Candidate(t.forward, lambda r, t=t: (t.to_numpy(r),))
    return cands


def gemm_inputs(shape: GemmShape, seed: int = 0) -> dict[str, np.ndarray]:
    rng = _rng(seed)
    return {
        "a": rng.standard_normal((shape.m, shape.k), dtype=np.float32),
        "b": rng.standard_normal((shape.k, shape.n), dtype=np.float32),
    }


def gemm_candidates(
    shape: GemmShape, inputs: dict[str, np.ndarray], n_threads: int
) -> dict[str, Candidate]:
    """fastconv's ``ops.matmul`` and NumPy's ``@`` (OpenBLAS sgemm)."""
    a, b = inputs["a"], inputs["b"]
    return {
        "fastconv": Candidate(lambda: ops.matmul(a, b, n_threads=n_threads), _one),
        "numpy": Candidate(lambda: a @ b, _one),
    }


def max_relative_error(got: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> float:
    """Largest ``max|got - expected| / max|expected|`` over paired arrays.

    Raises ``ValueError`` when the count or the shapes differ.
    """
    if len(got) != len(expected):
        raise ValueError(f"expected {len(expected)} arrays, got {len(got)}")
    worst = 0.0
    for a, e in zip(got, expected, strict=True):
        if a.shape != e.shape:
            raise ValueError(f"result of shape {a.shape}, expected shape {e.shape}")
        scale = float(np.max(np.abs(e))) if e.size else 0.0
        err = float(np.max(np.abs(a.astype(np.float64) - e))) if e.size else 0.0
        worst = max(worst, err / scale if scale > 0 else err)
    return worst


# ---- measuring ---------------------------------------------------------------


class LoadGuard:
    """Notices when other processes use the CPUs, and waits for them to stop.

    A shared two-core machine makes timings worthless while anything else
    runs: a thread of a parallel kernel that loses its core for a scheduler
    slice turns a 5 ms call into 8 or 16 ms. The guard reads the machine's
    busy clock ticks from /proc/stat and subtracts this process's own CPU
    time (all its threads): what remains is other processes' work. Ticks are
    coarse (10 ms) and sampled, so one tick is forgiven, plus ``max_busy`` of
    every processor's time. Where /proc/stat is missing (not Linux) nothing is
    ever judged busy.

    ``patience`` is the total time, in seconds, the guard may spend waiting
    for quiet over the whole report; once it is spent, busy rounds are kept
    (and counted, so that the report can flag them).
    """

    def __init__(self, max_busy: float = 0.05, patience: float = 600.0) -> None:
        self.max_busy = max_busy
        self.patience = patience
        self.waited = 0.0
        try:
            self.tick = 1.0 / os.sysconf("SC_CLK_TCK")
            self.ticks()
            self.available = True
        except (OSError, ValueError, AttributeError):
            self.available = False

    def ticks(self) -> float:
        """Clock ticks other processes have used since boot."""
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        own = os.times()
        return busy - (own.user + own.system) / self.tick

    def mark(self) -> tuple[float, float]:
        return (self.ticks() if self.available else 0.0), time.perf_counter()

    def busy_since(self, mark: tuple[float, float]) -> bool:
        """Did other processes take more than their allowance since ``mark``?"""
        if not self.available:
            return False
        ticks, start = mark
        seconds = time.perf_counter() - start
        allowed = 1.0 + self.max_busy * seconds * (os.cpu_count() or 1) / self.tick
        return self.ticks() - ticks > allowed

    def wait_for_quiet(self, window: float = 0.25) -> bool:
        """Sleep until a ``window`` passes without foreign work; False once
        the patience is spent."""
        while self.waited < self.patience:
            mark = self.mark()
            time.sleep(window)
            self.waited += window
            if not self.busy_since(mark):
                return True
        return False


@dataclass
class Timings:
    """What `measure` returns: seconds per call of each name, kept rounds only."""

    seconds: dict[str, list[float]]
    discarded: int = 0  # rounds thrown away because other processes were busy
    busy_kept: int = 0  # busy rounds kept anyway, once the guard's patience ran out


def measure(
    runs: dict[str, Callable[[], object]],
    repeats: int,
    settle: float = 0.02,
    guard: LoadGuard | None = None,
) -> Timings:
    """Seconds of each call, round-robin over ``runs``, ``repeats`` rounds.

    Each timed call follows untimed calls of the same function lasting at
    least ``settle`` seconds (at least one), so that no other library's
    idle threads are still spinning on the cores. GC is off meanwhile.

    With a ``guard``, a round during which other processes were busy is
    thrown away and measured again once the machine is quiet; when the
    guard has run out of patience, it is kept and counted.
    """
    timings = Timings({name: [] for name in runs})
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        while min(len(v) for v in timings.seconds.values()) < repeats:
            mark = guard.mark() if guard is not None else None
            sample = {}
            for name, run in runs.items():
                end = time.perf_counter() + settle
                run()
                while time.perf_counter() < end:
                    run()
                t0 = time.perf_counter_ns()
                run()
                sample[name] = (time.perf_counter_ns() - t0) * 1e-9
            if guard is not None and guard.busy_since(mark):
                if guard.wait_for_quiet():
                    timings.discarded += 1
                    continue
                timings.busy_kept += 1
            for name, seconds in sample.items():
                timings.seconds[name].append(seconds)
    finally:
        if gc_enabled:
            gc.enable()
    return timings


def _per_call_seconds(run: Callable[[], object], calls: int, repeats: int) -> float:
    """Median over ``repeats`` loops of ``calls`` calls, per call."""
    for _ in range(min(calls, 200)):
        run()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            run()
        samples.append((time.perf_counter_ns() - t0) * 1e-9 / calls)
    return statistics.median(samples)


# ---- the report --------------------------------------------------------------


@dataclass
class Row:
    """Medians (seconds) of every implementation of one benchmark."""

    section: str  # "conv", "pool" or "gemm"
    shape: str
    what: str  # the pass, pooling op, or "matmul"
    work: float  # FLOPs (conv, gemm) or bytes (pool)
    medians: dict[str, float]
    max_errors: dict[str, float] = field(default_factory=dict)
    discarded: int = 0  # rounds measured again because the machine was busy
    busy_kept: int = 0  # busy rounds among the medians (retries ran out)

    @property
    def fastconv(self) -> float:
        return self.medians["fastconv"]

    def ratio(self, baseline: str) -> float | None:
        t = self.medians.get(baseline)
        return None if t is None else t / self.fastconv


@dataclass
class Report:
    options: argparse.Namespace
    command: str
    threads: int
    machine: dict[str, str]
    peak_gflops: float
    bandwidth_gbs: float
    rows: list[Row] = field(default_factory=list)
    overhead_us: dict[str, float] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    torch_layouts: tuple[str, ...] = ()
    loadavg: list[str] = field(default_factory=list)
    limits_seen: list[tuple[float, float]] = field(default_factory=list)
    limits_busy: bool = False  # the machine was busy during every measurement of the limits
    guard: LoadGuard | None = None

    def find(self, section: str, shape: str, what: str) -> Row | None:
        for row in self.rows:
            if (row.section, row.shape, row.what) == (section, shape, what):
                return row
        return None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_description() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config is NumPy's business
        return "unknown"


def _machine(threads: int, torch_layouts: tuple[str, ...], blas_threads: str) -> dict[str, str]:
    info = {
        "CPU": _cpu_model(),
        "logical CPUs": str(os.cpu_count()),
        "Python": platform.python_version(),
        "fastconv": f"{fastconv.__version__}, SIMD path {fastconv.get_simd_path()}, "
        f"Winograd {fastconv.get_winograd()}, "
        f"OpenMP {'on' if _kernels.openmp_enabled() else 'off'}, {_kernels.compiler()}, "
        f"streaming stores from {_kernels.stream_min_bytes() / 2**20:g} MiB",
        "NumPy": f"{np.__version__} ({_blas_description()}, {blas_threads})",
    }
    if torch_layouts:
        import torch

        layouts = ", ".join(torch_layouts)
        info["PyTorch"] = f"{torch.__version__}, {threads} threads, layouts {layouts}"
    else:
        info["PyTorch"] = "not importable or not requested: its columns are left out"
    info["OpenMP"] = _openmp_description()
    return info


def _openmp_description() -> str:
    """The wait policy in force and the OpenMP runtimes loaded in this process."""
    settings = ", ".join(
        f"{name}={os.environ[name]!r}"
        for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
        if name in os.environ
    )
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            runtimes = sorted(
                {line.split()[-1] for line in maps if "libgomp" in line or "libiomp" in line}
            )
    except OSError:
        runtimes = []
    # A library whose soname is already loaded is not loaded again: when fastconv and
    # torch both link libgomp.so.1, they share the first one, its threads and its policy.
    where = (
        f"one runtime shared by every library ({runtimes[0]})"
        if len(runtimes) == 1
        else ", ".join(runtimes) or "runtimes not found"
    )
    return f"environment: {settings or 'no wait policy (libgomp default)'}; {where}"


@contextmanager
def _torch_threads(n: int, use: bool):
    if not use:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def _blas_threads(n: int):
    """Limit OpenBLAS to n threads via threadpoolctl when it is installed.

    Yields a description of how OpenBLAS's thread count was set.
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        threadpool_limits = None
    # OPENBLAS_CORETYPE forces a kernel (some machines set Haswell's, which
    # runs at half the width of an AVX-512 core): the report must say which ran.
    settings = [
        f"{name}={os.environ[name]}"
        for name in ("OPENBLAS_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "OPENBLAS_CORETYPE",
                     "OPENBLAS_L2_SIZE")
        if name in os.environ
    ]
    if threadpool_limits is None:
        yield ", ".join(settings) or "OpenBLAS with its default threads"
        return
    kernels = sorted({str(info.get("architecture")) for info in threadpool_info()
                      if info.get("internal_api") == "openblas"})
    with threadpool_limits(limits=n, user_api="blas"):
        yield ", ".join([f"{n} threads set by threadpoolctl"]
                        + [f"{k} kernels" for k in kernels] + settings)


def _check_and_measure(
    report: Report,
    section: str,
    shape: str,
    what: str,
    work: float,
    cands: dict[str, Candidate],
) -> Row:
    """Check every candidate's result against fastconv's, then time them."""
    expected = cands["fastconv"].result(cands["fastconv"].run())
    errors = {}
    for name, cand in cands.items():
        if name == "fastconv":
            continue
        try:
            errors[name] = max_relative_error(cand.result(cand.run()), expected)
        except ValueError as exc:
            errors[name] = math.inf
            report.mismatches.append(f"{section} {shape} {what}: {name}: {exc}")
            continue
        if not errors[name] <= RTOL:
            report.mismatches.append(
                f"{section} {shape} {what}: {name} differs from fastconv by "
                f"{errors[name]:.2e} of the largest magnitude (tolerance {RTOL:g})"
            )
    opts = report.options
    timings = measure(
        {name: cand.run for name, cand in cands.items()}, opts.repeats, opts.settle, report.guard
    )
    row = Row(
        section,
        shape,
        what,
        work,
        {name: statistics.median(ts) for name, ts in timings.seconds.items()},
        errors,
        timings.discarded,
        timings.busy_kept,
    )
    report.rows.append(row)
    return row


def run_report(opts: argparse.Namespace, command: str) -> Report:
    """Measure everything ``opts`` asks for; progress goes to stderr."""
    threads = opts.threads
    layouts = () if opts.no_torch else _torch_layouts(None)
    sections = set(opts.sections)
    conv_shapes = [s for s in CONV_SHAPES if s.id in opts.shapes]
    load_start = _loadavg()
    guard = None if opts.max_busy < 0 else LoadGuard(opts.max_busy, opts.patience)

    with _blas_threads(threads) as blas_threads, _torch_threads(threads, bool(layouts)):
        peak, bandwidth, clean = _limits(threads, opts.quick, guard)
        report = Report(
            opts,
            command,
            threads,
            _machine(threads, layouts, blas_threads),
            peak,
            bandwidth,
            torch_layouts=layouts,
            guard=guard,
        )

        if "conv" in sections:
            for shape in conv_shapes:
                inputs = conv_inputs(shape, opts.seed)
                for pass_ in CONV_PASSES:
                    _log(f"conv2d {shape.id} {pass_} ...")
                    cands = conv_candidates(shape, pass_, inputs, threads, layouts)
                    if opts.no_reference:
                        cands.pop("reference", None)
                    _check_and_measure(
                        report,
                        "conv",
                        shape.id,
                        pass_,
                        pass_flops(shape, pass_),
                        cands,
                    )
        if "pool" in sections:
            for shape in POOL_SHAPES:
                inputs = pool_inputs(shape, opts.seed)
                for op in POOL_OPS:
                    _log(f"pooling {shape.id} {op} ...")
                    cands = pool_candidates(shape, op, inputs, threads, layouts)
                    if opts.no_reference:
                        cands.pop("reference", None)
                    _check_and_measure(
                        report,
                        "pool",
                        shape.id,
                        op,
                        pool_bytes(shape, op),
                        cands,
                    )
        if "gemm" in sections:
            for shape in GEMM_SHAPES:
                if shape.id != "G1" and shape.id not in opts.shapes:
                    continue
                _log(f"matmul {shape.id} ({shape.describe()}) ...")
                cands = gemm_candidates(shape, gemm_inputs(shape, opts.seed), threads)
                _check_and_measure(report, "gemm", shape.id, "matmul", shape.flops, cands)
        if "overhead" in sections:
            _log("Python overhead ...")
            report.overhead_us = _overhead_us(threads, layouts, quick=opts.quick)
        # Measured again at the end: a busy moment must not lower the limits.
        peak_end, bandwidth_end, clean_end = _limits(threads, opts.quick, guard)
    report.limits_seen = [(peak, bandwidth), (peak_end, bandwidth_end)]
    report.limits_busy = not (clean or clean_end)
    report.peak_gflops = max(peak, peak_end)
    report.bandwidth_gbs = max(bandwidth, bandwidth_end)
    report.loadavg = [load_start, _loadavg()]
    return report


def _limits(threads: int, quick: bool, guard: LoadGuard | None) -> tuple[float, float, bool]:
    """(peak GFLOP/s, triad GB/s, measured on a quiet machine) on ``threads`` threads.

    The best of a few tries; measured again while the guard sees other
    processes at work, up to five times.
    """
    _log(f"measuring peak FMA throughput and memory bandwidth on {threads} threads ...")
    tries = 1 if quick else 3
    peak = bandwidth = 0.0
    for _ in range(5):
        mark = guard.mark() if guard is not None else None
        peak = max([peak] + [fastconv.peak_gflops(threads, 0.2) for _ in range(tries)])
        bandwidth = max(
            [bandwidth] + [fastconv.memory_bandwidth(threads) for _ in range(min(tries, 2))]
        )
        if guard is None or not guard.busy_since(mark):
            return peak, bandwidth, True
        if not guard.wait_for_quiet():
            break
    return peak, bandwidth, False


def _overhead_us(threads: int, layouts: tuple[str, ...], quick: bool) -> dict[str, float]:
    """Microseconds per call on a 1x1x1x1 input and 1x1x1x1 filter."""
    x = np.ones((1, 1, 1, 1), dtype=np.float32)
    w = np.ones((1, 1, 1, 1), dtype=np.float32)
    _, params = ops._conv_params(x.shape, w.shape, 1, "valid", 1)
    calls, repeats = (500, 3) if quick else (2000, 7)
    runs = {
        "ops.conv2d": lambda: ops.conv2d(x, w, n_threads=threads),
        "ops.conv2d, threads from the global setting": lambda: ops.conv2d(x, w),
        "_kernels.conv2d_forward (no argument handling)": lambda: _kernels.conv2d_forward(
            x, w, None, params, False, threads
        ),
    }
    if layouts:
        t = bb.TorchConv2D(x, w, None, x, conv2d_geometry(x.shape, w.shape), "nchw")
        runs["torch.nn.functional.conv2d (for comparison)"] = t.forward
    return {name: 1e6 * _per_call_seconds(run, calls, repeats) for name, run in runs.items()}


# ---- formatting --------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _x(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio:.2f}"


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


_PASS_LABEL = {
    "forward": "forward",
    "backward-input": "bwd input",
    "backward-weight": "bwd weight (+bias)",
    "backward": "**backward total**",
}


def _shape_cell(row: Row) -> str:
    return row.shape + ("†" if row.busy_kept else "")


def format_markdown(report: Report) -> str:
    """The whole report as markdown."""
    peak, bw = report.peak_gflops, report.bandwidth_gbs
    torch_cols = [f"torch-{layout}" for layout in report.torch_layouts]
    out = ["# fastconv benchmark report", ""]
    out.append(f"- command: `{report.command}`")
    out.append(f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    for key, value in report.machine.items():
        out.append(f"- {key}: {value}")
    out.append(f"- threads: {report.threads} (fastconv, PyTorch and OpenBLAS alike)")
    seen = "; ".join(f"{p:.1f} GFLOP/s, {b:.1f} GB/s" for p, b in report.limits_seen)
    out.append(
        f"- peak FMA throughput measured now: **{peak:.1f} GFLOP/s** on {report.threads} "
        f"threads; memory bandwidth (triad): **{bw:.1f} GB/s** (the better of the "
        f"measurements before and after the benchmarks: {seen})"
    )
    if report.limits_busy:
        out.append(
            "- **busy machine**: other processes ran during every measurement of the peak "
            "and the bandwidth; the percentages below are too high"
        )
    discarded = sum(r.discarded for r in report.rows)
    busy = [f"{r.shape} {r.what}" for r in report.rows if r.busy_kept]
    opts = report.options
    guard = (
        f"rounds during which other processes took over {opts.max_busy:g} of the CPUs were "
        f"measured again once the machine was quiet ({discarded} of them, "
        f"{report.guard.waited:.0f} s waited)"
        if opts.max_busy >= 0
        else "every round kept, however busy the machine"
    )
    out.append(
        f"- {opts.repeats} interleaved rounds per benchmark, medians; {guard}; "
        f"load average before / after: {report.loadavg[0]} / {report.loadavg[1]}"
    )
    if busy:
        out.append(
            "- **busy machine**: these kept busy rounds after the retries ran out, their "
            "figures (marked †) are unreliable: " + ", ".join(busy)
        )
    out.append(
        "- ratios are baseline time / fastconv time (above 1: fastconv is faster); "
        "torch-nchw is PyTorch's default layout (input converted outside the timing), "
        "torch-nhwc is channels-last on fastconv's own arrays"
    )
    out.append("")

    conv_rows = [r for r in report.rows if r.section == "conv"]
    if conv_rows:
        out += ["## Convolution", ""]
        header = [
            "shape",
            "pass",
            "fastconv ms",
            "GFLOP/s",
            "% peak",
            "x reference",
            "x im2col",
        ] + [f"x {c}" for c in torch_cols]
        rows = []
        for r in conv_rows:
            gflops = r.work / r.fastconv * 1e-9
            rows.append(
                [
                    _shape_cell(r),
                    _PASS_LABEL[r.what],
                    _ms(r.fastconv),
                    f"{gflops:.1f}",
                    f"{100 * gflops / peak:.0f}",
                    _x(r.ratio("reference")),
                    _x(r.ratio("im2col")),
                ]
                + [_x(r.ratio(c)) for c in torch_cols]
            )
        out += _table(header, rows)
        out += [
            "",
            "GFLOP/s and % peak count the direct method's FLOPs, 2*n*ho*wo*f*c*kh*kw per "
            "pass (twice that for the whole backward), whatever the algorithm: where a "
            "kernel does fewer multiply-adds (Winograd: 4x fewer on 3x3 stride-1 layers "
            "of up to 64K channel-filter pairs, 2.25x past them, 2.8x on 5x5 ones) the "
            "figure is an effective rate and can exceed 100 % of peak.",
            "",
            "Shapes: "
            + "; ".join(
                f"{s.id} {s.name} {s.describe()} ({s.flops / 1e9:.3f} GFLOP per pass)"
                for s in CONV_SHAPES
                if any(r.shape == s.id for r in conv_rows)
            ),
            "",
        ]
        out += ["Median milliseconds of every implementation:", ""]
        names = ["fastconv", "reference", "im2col"] + torch_cols
        out += _table(
            ["shape", "pass"] + names + ["rounds redone"],
            [
                [r.shape, r.what] + [_ms(r.medians.get(n)) for n in names] + [str(r.discarded)]
                for r in conv_rows
            ],
        )
        out.append("")

    pool_rows = [r for r in report.rows if r.section == "pool"]
    if pool_rows:
        out += ["## Pooling (2x2, stride 2)", ""]
        header = ["shape", "op", "fastconv ms", "GB/s", "% bandwidth", "x reference"] + [
            f"x {c}" for c in torch_cols
        ]
        rows = []
        for r in pool_rows:
            gbs = r.work / r.fastconv * 1e-9
            rows.append(
                [
                    _shape_cell(r),
                    r.what,
                    _ms(r.fastconv),
                    f"{gbs:.1f}",
                    f"{100 * gbs / bw:.0f}",
                    _x(r.ratio("reference")),
                ]
                + [_x(r.ratio(c)) for c in torch_cols]
            )
        out += _table(header, rows)
        out += [
            "",
            "Shapes: "
            + "; ".join(f"{s.id} {s.describe()}" for s in POOL_SHAPES)
            + ". Bytes: forward reads x and writes y; max-backward reads x and dy, writes "
            "dx; avg-backward reads dy, writes dx; \"-argmax\": max pooling as training runs "
            "it, the forward also writing a byte per output (where each maximum is; "
            "PyTorch's forward returns its indices) and the backward reading that instead "
            "of x. The triad streams three 128 MiB arrays "
            "from memory, while these arrays (tens of MB, warm from the call before) may "
            "partly stay in the last-level cache: above 100 % is possible.",
            "",
        ]

    gemm_rows = [r for r in report.rows if r.section == "gemm"]
    if gemm_rows:
        out += ["## GEMM (ops.matmul vs NumPy @, OpenBLAS sgemm)", ""]
        shapes = {s.id: s for s in GEMM_SHAPES}
        rows = []
        for r in gemm_rows:
            gflops = r.work / r.fastconv * 1e-9
            numpy_gflops = r.work / r.medians["numpy"] * 1e-9
            label = "1024^3" if r.shape == "G1" else f"{r.shape}'s im2col GEMM"
            label += "†" if r.busy_kept else ""
            rows.append(
                [
                    label,
                    shapes[r.shape].describe(),
                    _ms(r.fastconv),
                    f"{gflops:.1f}",
                    f"{100 * gflops / peak:.0f}",
                    _ms(r.medians["numpy"]),
                    f"{100 * numpy_gflops / peak:.0f}",
                    _x(r.ratio("numpy")),
                ]
            )
        out += _table(
            [
                "GEMM",
                "m x k @ k x n",
                "fastconv ms",
                "GFLOP/s",
                "% peak",
                "numpy ms",
                "numpy % peak",
                "x numpy",
            ],
            rows,
        )
        out.append("")

    if report.overhead_us:
        out += ["## Python overhead (1x1x1x1 input, 1x1x1x1 filter)", ""]
        out += _table(
            ["call", "microseconds"],
            [[name, f"{us:.1f}"] for name, us in report.overhead_us.items()],
        )
        out.append("")

    out += ["## Targets of issue 3", ""]
    out += _table(["target", "result", "figures"], [list(t) for t in evaluate_targets(report)])
    out.append("")
    if report.mismatches:
        out += ["## RESULT MISMATCHES", ""] + [f"- {m}" for m in report.mismatches] + [""]
    return "\n".join(out)


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "**FAIL**")


def _worst(items: list[tuple[str, float]], n: int = 4) -> str:
    items = sorted(items, key=lambda item: item[1])
    return ", ".join(f"{label} {value:.2f}" for label, value in items[:n])


def evaluate_targets(report: Report) -> list[tuple[str, str, str]]:
    """(target, PASS / FAIL / n/a, figures) for each target of issue 3."""
    results = []
    conv = [r for r in report.rows if r.section == "conv"]
    main_passes = [r for r in conv if r.what in ("forward", "backward")]
    label = {"forward": "fwd", "backward": "bwd"}

    for layout in report.torch_layouts:
        name = f"torch-{layout}"
        ratios = [(f"{r.shape} {label[r.what]}", r.ratio(name)) for r in main_passes]
        ratios = [(k, v) for k, v in ratios if v is not None]
        values = [v for _, v in ratios]
        gm = _geomean(values)
        ok = bool(values) and min(values) >= 1.0 and gm >= 1.5
        results.append(
            (
                f"S1-S8 fwd and bwd >= 1.0x {name}, geomean >= 1.5 ({len(values)} of 16 measured)",
                _status(ok if values else None),
                f"geomean {gm:.2f}; lowest: {_worst(ratios)}" if values else "",
            )
        )
    if not report.torch_layouts:
        results.append(("fastconv >= PyTorch", "n/a", "torch not measured"))

    misses, heavy = [], []
    for r in main_passes:
        if r.shape not in GEMM_HEAVY:
            continue
        pct = 100 * r.work / r.fastconv * 1e-9 / report.peak_gflops
        goal = 65 if r.what == "forward" else 55
        heavy.append(pct)
        if pct < goal:
            misses.append(f"{r.shape} {label[r.what]} {pct:.0f}%")
    results.append(
        (
            "GEMM-heavy S2, S4-S7: fwd >= 65 %, bwd >= 55 % of peak (direct-method FLOPs)",
            _status(not misses if heavy else None),
            ("below: " + ", ".join(misses))
            if misses
            else (f"lowest {min(heavy):.0f}%" if heavy else ""),
        )
    )

    for layout in report.torch_layouts:
        name = f"torch-{layout}"
        s1 = [(f"S1 {label[r.what]}", r.ratio(name)) for r in main_passes if r.shape == "S1"]
        s1 = [(k, v) for k, v in s1 if v is not None]
        results.append(
            (
                f"S1 >= 5x {name}",
                _status(all(v >= 5 for _, v in s1) if s1 else None),
                ", ".join(f"{k} {v:.2f}x" for k, v in s1),
            )
        )

    gemm = {r.shape: r.ratio("numpy") for r in report.rows if r.section == "gemm"}
    if "G1" in gemm:
        results.append(
            ("matmul 1024^3 >= 0.9x NumPy", _status(gemm["G1"] >= 0.9), f"{gemm['G1']:.3f}x")
        )
    skinny = [(k, v) for k, v in gemm.items() if k != "G1"]
    results.append(
        (
            "matmul on the conv GEMMs (S2, S4, S6) >= 1.0x NumPy",
            _status(all(v >= 1.0 for _, v in skinny) if skinny else None),
            ", ".join(f"{k} {v:.3f}x" for k, v in skinny),
        )
    )

    ref = [(f"{r.shape} {r.what}", r.ratio("reference")) for r in conv]
    ref = [(k, v) for k, v in ref if v is not None]
    results.append(
        (
            "every shape and pass >= 2.5x the NumPy reference (fwd, bwd total: it has no split)",
            _status(all(v >= 2.5 for _, v in ref) if ref else None),
            f"lowest: {_worst(ref)}" if ref else "",
        )
    )
    im2col = [(f"{r.shape} {r.what}", r.ratio("im2col")) for r in conv]
    im2col = [(k, v) for k, v in im2col if v is not None]
    results.append(
        (
            "every shape and pass >= 2x NumPy im2col + matmul",
            _status(all(v >= 2.0 for _, v in im2col) if im2col else None),
            f"lowest: {_worst(im2col)}" if im2col else "",
        )
    )

    pool = [r for r in report.rows if r.section == "pool"]
    for layout in report.torch_layouts:
        name = f"torch-{layout}"
        ratios = [(f"{r.shape} {r.what}", r.ratio(name)) for r in pool]
        results.append(
            (
                f"pooling >= {name}",
                _status(all(v >= 1.0 for _, v in ratios) if ratios else None),
                f"lowest: {_worst(ratios)}" if ratios else "",
            )
        )
    pcts = [
        (f"{r.shape} {r.what}", 100 * r.work / r.fastconv * 1e-9 / report.bandwidth_gbs)
        for r in pool
    ]
    results.append(
        (
            "pooling >= 50 % of the measured bandwidth",
            _status(all(v >= 50 for _, v in pcts) if pcts else None),
            (
                "lowest: "
                + ", ".join(f"{k} {v:.0f}%" for k, v in sorted(pcts, key=lambda p: p[1])[:4])
            )
            if pcts
            else "",
        )
    )

    us = report.overhead_us.get("ops.conv2d")
    results.append(
        (
            "ops.conv2d on 1x1x1x1 under 20 us",
            _status(None if us is None else us < 20),
            "" if us is None else f"{us:.1f} us",
        )
    )
    return results


# ---- command line ------------------------------------------------------------

_CHILD_FLAG = "FASTCONV_BENCH_CHILD"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastconv.bench",
        description="Measure fastconv against the NumPy reference, NumPy im2col + matmul "
        "and PyTorch (when importable); print a markdown report.",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for every library (default: fastconv's setting)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved rounds per benchmark (default 11, 3 with --quick)",
    )
    parser.add_argument(
        "--shapes",
        default=",".join(s.id for s in CONV_SHAPES),
        help="convolution shapes, e.g. S1,S2 (also picks the conv GEMMs)",
    )
    parser.add_argument(
        "--sections", default="conv,pool,gemm,overhead", help="any of conv,pool,gemm,overhead"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds and shorter peak measurement: a rough look",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=None,
        metavar="SECONDS",
        help="untimed calls before each timed one last at least this long "
        "(default 0.02, 0.005 with --quick)",
    )
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.05,
        metavar="FRACTION",
        help="measure a round again when other processes took more than this "
        "fraction of the processors during it (default 0.05; -1: never)",
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="how long, in all, to wait for other processes to go quiet before keeping "
        "busy rounds (default 600)",
    )
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument(
        "--no-reference", action="store_true", help="leave the (slow) NumPy reference out"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--markdown-out", metavar="FILE", help="also write the report to FILE")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="measure in this process, with OpenBLAS as it was loaded",
    )
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = _parser()
    opts = parser.parse_args(argv)
    if opts.threads is None:
        opts.threads = fastconv.get_num_threads()
    if opts.threads < 1:
        parser.error(f"--threads must be at least 1, got {opts.threads}")
    if opts.repeats is None:
        opts.repeats = 3 if opts.quick else 11
    if opts.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {opts.repeats}")
    if opts.settle is None:
        opts.settle = 0.005 if opts.quick else 0.02
    if opts.settle < 0:
        parser.error(f"--settle must not be negative, got {opts.settle}")
    known = [s.id for s in CONV_SHAPES]
    opts.shapes = [s.strip().upper() for s in opts.shapes.split(",") if s.strip()]
    unknown = [s for s in opts.shapes if s not in known]
    if unknown:
        parser.error(f"unknown shapes {unknown}; known: {','.join(known)}")
    opts.sections = [s.strip() for s in opts.sections.split(",") if s.strip()]
    bad = [s for s in opts.sections if s not in ("conv", "pool", "gemm", "overhead")]
    if bad:
        parser.error(f"unknown sections {bad}; known: conv,pool,gemm,overhead")
    return opts


def _child_environment(threads: int) -> dict[str, str] | None:
    """The environment OpenBLAS must load with, or None if this one already is."""
    want = {"OPENBLAS_NUM_THREADS": str(threads)}
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:
        want["OPENBLAS_THREAD_TIMEOUT"] = "4"
    if all(os.environ.get(k) == v for k, v in want.items()):
        return None
    env = dict(os.environ, **want)
    env[_CHILD_FLAG] = "1"
    # The child must import this same fastconv, wherever it was found.
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(fastconv.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p
    )
    return env


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark report; returns the exit status (1 on a result mismatch)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = _parse(argv)
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if name in os.environ:
            _log(f"warning: {name}={os.environ[name]} is set; NumPy's OpenBLAS may be slow")
    if not opts.in_process and os.environ.get(_CHILD_FLAG) != "1":
        env = _child_environment(opts.threads)
        if env is not None:
            _log(
                f"running in a child process with OPENBLAS_NUM_THREADS="
                f"{env['OPENBLAS_NUM_THREADS']} OPENBLAS_THREAD_TIMEOUT="
                f"{env['OPENBLAS_THREAD_TIMEOUT']} (see --in-process)"
            )
            child = [sys.executable, "-m", "fastconv.bench", *argv]
            if not any(a == "--threads" or a.startswith("--threads=") for a in argv):
                child += ["--threads", str(opts.threads)]
            return subprocess.call(child, env=env)
    command = shlex.join(["python", "-m", "fastconv.bench", *argv])
    report = run_report(opts, command)
    text = format_markdown(report)
    print(text)
    if opts.markdown_out:
        with open(opts.markdown_out, "w", encoding="utf-8") as out:
            out.write(text + "\n")
        _log(f"report written to {opts.markdown_out}")
    for mismatch in report.mismatches:
        _log(f"MISMATCH: {mismatch}")
    return 1 if report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
