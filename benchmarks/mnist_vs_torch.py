"""One training epoch of the Keras MNIST example CNN, fastconv against PyTorch, in one run.

The model (conv32-conv64-maxpool-dropout-dense128-dropout-dense10), the data
(60,000 MNIST images, or random ones of that shape when the files are not
found), the batch size (128), the optimizer (Adam, lr 0.001) and the thread
count are the same for both. The epoch is cut into chunks of steps that run
alternately, fastconv then PyTorch, so that both see the same load on a shared
machine; each framework's epoch time is the sum of its chunks. Inference is
timed the same way at batch 1000 over the 10,000 test images, alternating
rounds and reporting the median.

    python benchmarks/mnist_vs_torch.py --threads 2
    python benchmarks/mnist_vs_torch.py --threads 2 --steps 50    # a shorter try

PyTorch is optional (``pip install "fastconv[bench]"``): without it only
fastconv is timed. Threads: fastconv.set_num_threads(T) and
torch.set_num_threads(T) (with one inter-op thread).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

import fastconv
from fastconv import utils, zoo

BATCH = 128
INFERENCE_BATCH = 1000


def load_data(subset: int | None = None, random: bool = False):
    """MNIST as float32 NHWC in [0, 1] and int labels, or random data of its shape
    (with ``random``, or when the files are found nowhere)."""
    from fastconv.datasets import DatasetNotFoundError, mnist

    try:
        if random:
            raise DatasetNotFoundError("random data asked for")
        (x, y), (xt, yt) = mnist.load_data()
        source = "MNIST"
    except DatasetNotFoundError:
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, (60000, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, 60000).astype(np.uint8)
        xt, yt = x[:10000], y[:10000]
        source = "random images"
    if subset:
        x, y, xt, yt = x[:subset], y[:subset], xt[:subset], yt[:subset]
    scale = np.float32(1 / 255)
    return (x[..., None] * scale, y.astype(np.int64)), (xt[..., None] * scale,
                                                          yt.astype(np.int64)), source


class FastconvRunner:
    """The Keras example CNN in fastconv, trained chunk by chunk with `fit`."""

    name = "fastconv"

    def __init__(self, seed: int):
        utils.set_random_seed(seed)
        self.model = zoo.build("keras-cnn", optimizer="adam", learning_rate=1e-3)

    def train(self, x, y) -> float:
        history = self.model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        return history.history["loss"][-1]

    def predict(self, x) -> np.ndarray:
        return self.model.predict(x, batch_size=INFERENCE_BATCH)


class TorchRunner:
    """The same model in PyTorch (NCHW, float32), trained with a plain loop."""

    name = "pytorch"

    def __init__(self, seed: int, threads: int, channels_last: bool = False):
        import torch
        from torch import nn

        self.torch = torch
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        self.model = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(),
            nn.Linear(9216, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10),
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, eps=1e-7)
        self.loss = nn.CrossEntropyLoss()
        self.name = "pytorch (channels_last)" if channels_last else "pytorch"

    def tensor(self, x: np.ndarray):
        """NHWC NumPy images as an NCHW tensor (made once, outside the timing)."""
        t = self.torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
        return t.contiguous(memory_format=self.memory_format)

    def train(self, x, y) -> float:
        self.model.train()
        loss = None
        for start in range(0, len(x), BATCH):
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(self.model(x[start : start + BATCH]), y[start : start + BATCH])
            loss.backward()
            self.optimizer.step()
        return loss.item()

    def predict(self, x):
        self.model.eval()
        with self.torch.inference_mode():
            return [self.model(x[s : s + INFERENCE_BATCH]) for s in range(0, len(x),
                                                                          INFERENCE_BATCH)]


def _timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def run(threads: int, steps: int | None = None, chunks: int = 10, rounds: int = 5,
        subset: int | None = None, seed: int = 0, with_torch: bool = True,
        channels_last: bool = False, random: bool = False) -> dict:
    """Time one epoch (or ``steps`` steps) and inference; returns the results as a dict."""
    fastconv.set_num_threads(threads)
    (x, y), (xt, _), source = load_data(subset, random)
    order = np.random.default_rng(seed).permutation(len(x))
    n_steps = math.ceil(len(x) / BATCH) if steps is None else min(steps, math.ceil(len(x) / BATCH))
    order = order[: n_steps * BATCH]
    x, y = x[order], y[order]
    runners = [FastconvRunner(seed)]
    inputs = {runners[0].name: ((x, y), xt)}
    if with_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: timing fastconv only "
                  '(pip install "fastconv[bench]" to compare)', file=sys.stderr)
        else:
            variants = [False, True] if channels_last else [False]
            for variant in variants:
                r = TorchRunner(seed, threads, variant)
                runners.append(r)
                inputs[r.name] = ((r.tensor(x), r.torch.from_numpy(y)), r.tensor(xt))

    # Warm-up: a few steps each (first-call allocations, thread pools), untimed.
    for r in runners:
        (xr, yr), _ = inputs[r.name]
        r.train(xr[: 2 * BATCH], yr[: 2 * BATCH])

    # Chunks of whole batches, alternating frameworks, in rotating order.
    per_chunk = max(1, math.ceil(n_steps / chunks))
    bounds = [(s * BATCH, min((s + per_chunk) * BATCH, len(x)))
              for s in range(0, n_steps, per_chunk)]
    train_seconds = {r.name: [] for r in runners}
    last_loss = {}
    for k, (lo, hi) in enumerate(bounds):
        for r in runners[k % len(runners):] + runners[: k % len(runners)]:
            (xr, yr), _ = inputs[r.name]
            seconds, last_loss[r.name] = _timed(r.train, xr[lo:hi], yr[lo:hi])
            train_seconds[r.name].append(seconds)

    infer_seconds = {r.name: [] for r in runners}
    for r in runners:
        r.predict(inputs[r.name][1][:INFERENCE_BATCH])
    for k in range(rounds):
        for r in runners[k % len(runners):] + runners[: k % len(runners)]:
            seconds, _ = _timed(r.predict, inputs[r.name][1])
            infer_seconds[r.name].append(seconds)

    results = {}
    for r in runners:
        total = float(sum(train_seconds[r.name]))
        infer = float(np.median(infer_seconds[r.name]))
        results[r.name] = {
            "epoch_seconds": total,
            "ms_per_step": 1e3 * total / n_steps,
            "train_images_per_second": len(x) / total,
            "inference_images_per_second": len(xt) / infer,
            "last_loss": float(last_loss[r.name]),
        }
    return {
        "data": source,
        "steps": n_steps,
        "images": len(x),
        "batch": BATCH,
        "threads": threads,
        "simd": fastconv.get_simd_path(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "cpu": _cpu_name(),
        "torch": _torch_version(),
        "results": results,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _torch_version() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.__version__


def report(result: dict) -> str:
    """The results as a Markdown table."""
    full = 60000 / result["images"]
    heading = (
        f"{result['steps']} steps of batch {result['batch']} ({result['data']}), "
        f"{result['threads']} threads, {result['cpu']}, fastconv SIMD {result['simd']}, "
        f"torch {result['torch'] or 'not installed'}, OMP_WAIT_POLICY {result['omp_wait_policy']}"
    )
    columns = ("| framework | s per 60k-image epoch | ms per step | train images/s "
               "| inference images/s (batch 1000) |")
    lines = [
        heading,
        "",
        columns,
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, r in result["results"].items():
        lines.append(
            f"| {name} | {r['epoch_seconds'] * full:.1f} | {r['ms_per_step']:.1f} "
            f"| {r['train_images_per_second']:,.0f} | {r['inference_images_per_second']:,.0f} |"
        )
    names = list(result["results"])
    if len(names) > 1:
        f, t = result["results"][names[0]], result["results"][names[1]]
        lines.append("")
        lines.append(f"fastconv/pytorch: training {t['epoch_seconds'] / f['epoch_seconds']:.2f}x "
                     f"as fast, inference "
                     f"{f['inference_images_per_second'] / t['inference_images_per_second']:.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=None,
                        help="time this many steps instead of a whole epoch (469)")
    parser.add_argument("--chunks", type=int, default=10,
                        help="alternations of the frameworks within the epoch")
    parser.add_argument("--rounds", type=int, default=5, help="inference rounds (median)")
    parser.add_argument("--subset", type=int, default=None, help="only the first N images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-torch", action="store_true", help="time fastconv only")
    parser.add_argument("--random-data", action="store_true",
                        help="random images instead of MNIST (the speed is the same)")
    parser.add_argument("--channels-last", action="store_true",
                        help="also time PyTorch with channels_last tensors")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    result = run(args.threads, args.steps, args.chunks, args.rounds, args.subset, args.seed,
                 not args.no_torch, args.channels_last, args.random_data)
    print(report(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
