"""fastconv: fast convolutional networks on the CPU.

C/OpenMP kernels (convolution, pooling, GEMM) behind `fastconv.ops`, with a
plain-NumPy twin in `fastconv.reference`, and a Keras-compatible model API
(`fastconv.layers`, `fastconv.models.Sequential`, losses, optimizers, metrics,
callbacks, save / load_model) on top.
"""

import os as _os

# OpenMP threads that finish early spin while they wait, by default. On a
# machine whose cores are busy with other work that spinning steals the time
# slices the other threads need, and steps become 5-10x slower; sleeping costs
# 2-20% on an idle machine. Robust by default: set OMP_WAIT_POLICY=ACTIVE for
# dedicated cores. (Read once, when the OpenMP runtime loads with _kernels.)
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from fastconv import _kernels  # noqa: E402

__version__ = "0.1.0"

from fastconv import ops, reference  # noqa: E402
from fastconv import (  # noqa: E402
    activations,
    backend,
    callbacks,
    datasets,
    initializers,
    layers,
    losses,
    metrics,
    models,
    optimizers,
    regularizers,
    saving,
    utils,
)
from fastconv.layers import Input  # noqa: E402
from fastconv.models import Sequential, load_model  # noqa: E402

__all__ = [
    "ops",
    "reference",
    "activations",
    "backend",
    "callbacks",
    "datasets",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "optimizers",
    "regularizers",
    "saving",
    "utils",
    "Input",
    "Sequential",
    "load_model",
    "set_num_threads",
    "get_num_threads",
    "set_simd_path",
    "get_simd_path",
    "available_simd_paths",
    "set_winograd",
    "get_winograd",
    "set_winograd_threshold",
    "get_winograd_threshold",
    "set_parallel_threshold",
    "get_parallel_threshold",
    "peak_gflops",
    "memory_bandwidth",
    "show_config",
    "__version__",
]


def set_num_threads(n: int) -> None:
    """Set the number of threads every kernel uses (default: $OMP_NUM_THREADS
    or the number of processors). Results do not depend on it."""
    _kernels.set_num_threads(int(n))


def get_num_threads() -> int:
    """The number of threads the kernels use."""
    return _kernels.get_num_threads()


def available_simd_paths() -> tuple[str, ...]:
    """SIMD paths this build and CPU can run, e.g. ('portable', 'avx2', 'avx512')."""
    return _kernels.simd_available()


def get_simd_path() -> str:
    """The SIMD path the kernels use now."""
    return _kernels.simd_current()


def set_simd_path(name: str) -> None:
    """Force a SIMD path: 'portable' (plain C), 'avx2' or 'avx512'.

    The environment variable FASTCONV_SIMD does the same at import.
    """
    _kernels.simd_select(name)


def set_winograd(mode: str) -> None:
    """Choose which Winograd methods stride-1 convolutions of 3x3 and larger
    kernels (with at least 16 channels and filters) may use:

    - ``'fast'`` (the default): also F(4x4, 3x3), F(2x2, 5x5) and their
      weight-gradient transposes, where they pay: up to 1.8x fewer
      multiply-adds than F(2x2, 3x3), with rounding errors 10-50x larger
      (2e-6 to 2e-5 of a result's scale);
    - ``'accurate'``: F(2x2, 3x3) only, whose rounding is the direct method's;
    - ``'off'``: no Winograd, the GEMM kernels only.

    The environment variable FASTCONV_WINOGRAD does the same at import.
    """
    _kernels.winograd_select(mode)


def get_winograd() -> str:
    """The Winograd mode in use: 'fast', 'accurate' or 'off'."""
    return _kernels.winograd_current()


def set_winograd_threshold(scale: float) -> None:
    """Scale the work a Winograd method must save before a layer takes it.

    A forward or backward-input pass transforms the whole kernel before its
    tiles can use it: 16 or 36 floats per channel-filter pair, written and
    read back, which costs about as long as 80 multiply-adds per float on the
    machines this was measured on (160 for F(2x2, 3x3), used past 64K
    channel-filter pairs, where the GEMM it competes with is faster). On few
    tiles (a small image, a small batch) the multiply-adds the method saves
    do not pay for that, and the layer takes the GEMM instead (one 14 x 14 x
    256 -> 256 image: 1.05 ms
    against 2.06 by F(4x4, 3x3)); so does the weight gradient of a large
    kernel (384 x 384 channels and up), whose transformed sums over every
    tile cost more than the GEMM's unless the tiles are many. ``scale``
    multiplies those costs: 1 is the
    default, 0 takes a Winograd method wherever `set_winograd`'s mode lets
    one apply (as the tests do, to exercise its kernels on small inputs).
    The rounding differs between methods (see `set_winograd`), so results
    may change with it. The environment variable FASTCONV_WINOGRAD_THRESHOLD
    does the same at import.
    """
    _kernels.winograd_threshold_select(scale)


def get_winograd_threshold() -> float:
    """The scale set by `set_winograd_threshold` (1.0 unless changed)."""
    return _kernels.winograd_threshold_current()


def set_parallel_threshold(scale: float) -> None:
    """Scale the work a kernel call needs before it uses more than one thread.

    A call runs on one thread when its work is small, and gives each thread
    at least a fixed share of it otherwise: waking a sleeping thread costs
    40-60 microseconds on the 2-vCPU cloud machines these shares were
    measured on, more than a small call takes (one MNIST image through a
    convolution: about 20 us). ``scale`` multiplies every share: 1 is the
    default, 0 uses every thread for any call (as the tests do, to exercise
    the parallel code on small inputs); smaller values suit machines whose
    threads wake faster (bare metal, or ``OMP_WAIT_POLICY=active``), larger
    ones busy machines. Results do not depend on it. The environment variable
    FASTCONV_PARALLEL_THRESHOLD does the same at import.
    """
    _kernels.parallel_threshold_select(scale)


def get_parallel_threshold() -> float:
    """The scale set by `set_parallel_threshold` (1.0 unless changed)."""
    return _kernels.parallel_threshold_current()


def peak_gflops(n_threads: int | None = None, seconds: float = 0.2) -> float:
    """Peak FMA throughput of this machine on the current SIMD path, measured
    now by a register-only loop on ``n_threads`` threads, in GFLOP/s."""
    return _kernels.peak_gflops(n_threads, seconds)


def memory_bandwidth(n_threads: int | None = None) -> float:
    """Memory bandwidth in GB/s, measured now by a STREAM-like triad
    (a = b + s*c over three 128 MiB arrays) on ``n_threads`` threads."""
    return _kernels.triad_gbs(n_threads)


def show_config() -> None:
    """Print the engine's build and run-time configuration."""
    openmp = "yes" if _kernels.openmp_enabled() else "no (kernels run on one thread)"
    print(f"fastconv {__version__}")
    print(f"  OpenMP:     {openmp}")
    print(f"  threads:    {get_num_threads()}")
    print(f"  SIMD path:  {get_simd_path()} (available: {', '.join(available_simd_paths())})")
    print(f"  Winograd:   {get_winograd()}")
    print(f"  Winograd threshold: {get_winograd_threshold():g}")
    print(f"  parallel threshold: {get_parallel_threshold():g}")
    print(f"  streaming stores: outputs from {_kernels.stream_min_bytes() / 2**20:g} MiB")
    print(f"  compiler:   {_kernels.compiler()}")


if _os.environ.get("FASTCONV_SIMD"):
    set_simd_path(_os.environ["FASTCONV_SIMD"])
if _os.environ.get("FASTCONV_WINOGRAD"):
    set_winograd(_os.environ["FASTCONV_WINOGRAD"])
for _variable, _setter in (("FASTCONV_WINOGRAD_THRESHOLD", set_winograd_threshold),
                           ("FASTCONV_PARALLEL_THRESHOLD", set_parallel_threshold)):
    _value = _os.environ.get(_variable)
    if _value:
        try:
            _scale = float(_value)
        except ValueError:
            raise ValueError(f"{_variable} must be a number, got {_value!r}") from None
        _setter(_scale)
