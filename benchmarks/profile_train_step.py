"""Where a training step of a zoo model spends its time: per layer, kernels against the rest.

    python benchmarks/profile_train_step.py --model keras-cnn --threads 2
    python benchmarks/profile_train_step.py --model fast --cprofile 15

For ``--steps`` steps of batch 128 on random images (the speed does not depend
on the pixels) it reports the median forward and backward time of each layer,
the time spent inside `fastconv.ops` (the C kernels and their thin Python
wrappers) against everything else (NumPy element-wise work in the layers,
loss, optimizer, metrics, the training loop), and optionally cProfile's top
functions by their own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time

import numpy as np

import fastconv
from fastconv import backend, utils, zoo


class _TimedKernels:
    """Forwards to a kernel set and adds up the wall time of each function."""

    def __init__(self, kernels):
        self._kernels = kernels
        self.seconds: dict[str, float] = {}

    def __getattr__(self, name):
        function = getattr(self._kernels, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

        return timed


_BACKWARD_METHODS = ("backward", "backward_from_logits", "backward_through_relu",
                     "backward_pooled")


def _wrap_layers(model, forward, backward):
    for layer in model.layers:
        forward[layer.name], backward[layer.name] = [], []

        def timed(function, log):
            def call(*args, **kwargs):
                start = time.perf_counter()
                result = function(*args, **kwargs)
                log.append(time.perf_counter() - start)
                return result

            return call

        layer.forward = timed(layer.forward, forward[layer.name])
        if hasattr(layer, "forward_pooled"):  # its forward and the max pooling's above it
            layer.forward_pooled = timed(layer.forward_pooled, forward[layer.name])
        # A step calls one of these per layer: the model's backward loop
        # takes a ReLU layer's gradient from the max pooling above it
        # (`backward_through_relu`, then `backward_from_logits` below), or
        # runs a convolution's and its pooling's in one (`backward_pooled`,
        # timed as the convolution's).
        for method in _BACKWARD_METHODS:
            if hasattr(layer, method):
                setattr(layer, method, timed(getattr(layer, method), backward[layer.name]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="keras-cnn", choices=list(zoo.MODELS))
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N",
                        help="also print cProfile's N functions of most own time")
    args = parser.parse_args(argv)

    fastconv.set_num_threads(args.threads)
    utils.set_random_seed(0)
    model = zoo.build(args.model, optimizer=args.optimizer)
    rng = np.random.default_rng(0)
    n = args.batch_size * args.steps
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, n)
    model.fit(x[: 2 * args.batch_size], y[: 2 * args.batch_size], batch_size=args.batch_size,
              verbose=0)  # warm-up: buffers, optimizer slots, scratch

    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, verbose=0)
    plain = (time.perf_counter() - start) / args.steps

    timed = _TimedKernels(backend.kernels())
    saved = backend._current
    backend._current = timed
    try:
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch_size, verbose=0)
        total = time.perf_counter() - start
    finally:
        backend._current = saved
    kernel = sum(timed.seconds.values())

    print(f"{args.model}, batch {args.batch_size}, {args.optimizer}, {args.threads} threads, "
          f"{fastconv.get_simd_path()}: {1e3 * plain:.1f} ms per step "
          f"({1e3 * total / args.steps:.1f} ms with the kernel timers)")
    print(f"inside fastconv.ops: {100 * kernel / total:.1f}%, elsewhere (NumPy element-wise "
          f"work, loss, optimizer, loop): {100 * (1 - kernel / total):.1f}%")
    for name, seconds in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
        print(f"  ops.{name:<22} {1e3 * seconds / args.steps:7.2f} ms per step")

    forward, backward = {}, {}
    _wrap_layers(model, forward, backward)
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, verbose=0)
    total = (time.perf_counter() - start) / args.steps
    in_layers = 0.0
    print("per layer (median of steps), forward / backward:")
    for layer in model.layers:
        # A layer whose work another layer's pass does (a Dropout above a
        # pooling layer; a max pooling's forward, in the convolution's below
        # it, whose figure it joins) has no calls of its own: 0.
        f = 1e3 * float(np.median(forward[layer.name])) if forward[layer.name] else 0.0
        b = 1e3 * float(np.median(backward[layer.name])) if backward[layer.name] else 0.0
        in_layers += f + b
        print(f"  {layer.name:<18} {type(layer).__name__:<14} {f:7.2f} / {b:7.2f} ms")
    print(f"outside the layers (loss and its gradient, optimizer, batch gather, metrics, "
          f"loop): {1e3 * total - in_layers:.2f} ms of {1e3 * total:.1f} ms")

    if args.cprofile:
        for layer in model.layers:  # drop the layer timers
            del layer.forward
            for method in ("forward_pooled", *_BACKWARD_METHODS):
                if method in vars(layer):
                    delattr(layer, method)
        profile = cProfile.Profile()
        profile.enable()
        model.fit(x, y, batch_size=args.batch_size, verbose=0)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.cprofile)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
