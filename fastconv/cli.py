"""The `fastconv` command line."""

import argparse
import time

import numpy as np

import fastconv
from fastconv import ops, reference


def _median_ms(fn, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def demo(args: argparse.Namespace) -> int:
    """Show the configuration and time one convolution against the reference."""
    fastconv.show_config()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 26, 26, 32), dtype=np.float32)
    w = rng.standard_normal((3, 3, 32, 64), dtype=np.float32)
    y = ops.conv2d(x, w)
    err = np.abs(y - reference.conv2d(x, w)).max() / np.abs(y).max()
    flops = 2 * y.size * 3 * 3 * 32
    fast = _median_ms(lambda: ops.conv2d(x, w))
    naive = _median_ms(lambda: reference.conv2d(x, w), repeats=3)
    print(f"\nconv2d 64x26x26x32 -> 64 filters, 3x3: relative difference to reference {err:.1e}")
    print(f"  fastconv  {fast:8.2f} ms  {flops / fast / 1e6:6.1f} GFLOP/s")
    print(f"  reference {naive:8.2f} ms  {flops / naive / 1e6:6.1f} GFLOP/s  ({naive / fast:.1f}x slower)")
    return 0


def info(args: argparse.Namespace) -> int:
    """Print the engine's configuration."""
    fastconv.show_config()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="print the engine's configuration").set_defaults(run=info)
    commands.add_parser("demo", help="time a convolution against the NumPy reference").set_defaults(
        run=demo
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)
