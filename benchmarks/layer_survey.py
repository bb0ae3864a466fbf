"""fastconv against PyTorch on the convolution layers of common CNNs, beyond issue 3's eight.

Each layer's forward pass and whole backward pass (dx, dw and db) are timed for
fastconv, PyTorch channels-first (its default; the input converted outside the
timing) and PyTorch channels-last, in interleaved rounds, and the medians are
printed as a markdown table with fastconv's ratio to the faster PyTorch layout
(above 1: fastconv is faster). Each pass's results are checked against
PyTorch's first.

    python benchmarks/layer_survey.py --threads 2
    python benchmarks/layer_survey.py --threads 2 --only resnet18    # one model's layers

PyTorch is needed (``pip install "fastconv[bench]"``). Threads:
fastconv.set_num_threads(T) and torch.set_num_threads(T).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np

import fastconv
from fastconv import ops
from fastconv._geometry import conv2d_geometry
from fastconv.bench_baselines import TorchConv2D


@dataclass(frozen=True)
class Layer:
    name: str
    x_shape: tuple  # (n, h, w, c)
    f: int
    k: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def label(self) -> str:
        n, h, w, c = self.x_shape
        extra = "".join([f" s{self.stride}" if self.stride > 1 else "",
                         f" d{self.dilation}" if self.dilation > 1 else ""])
        return f"{n}x{h}x{w}x{c} -> {self.f}, {self.k}x{self.k}{extra}"


LAYERS = [
    Layer("cifar-vgg conv1", (128, 32, 32, 3), 64, 3, padding=1),
    Layer("cifar-vgg conv2", (128, 32, 32, 64), 64, 3, padding=1),
    Layer("cifar-vgg conv4", (128, 16, 16, 128), 128, 3, padding=1),
    Layer("cifar-vgg conv6", (128, 8, 8, 256), 256, 3, padding=1),
    Layer("cifar-vgg conv8", (128, 4, 4, 512), 512, 3, padding=1),
    Layer("resnet18 stem", (8, 224, 224, 3), 64, 7, stride=2, padding=3),
    Layer("resnet18 layer2", (8, 28, 28, 128), 128, 3, padding=1),
    Layer("resnet18 layer3", (8, 14, 14, 256), 256, 3, padding=1),
    Layer("resnet18 layer4", (8, 7, 7, 512), 512, 3, padding=1),
    Layer("resnet18 down 3x3", (8, 56, 56, 64), 128, 3, stride=2, padding=1),
    Layer("resnet18 down 1x1", (8, 56, 56, 64), 128, 1, stride=2),
    Layer("resnet18 one image, layer1", (1, 56, 56, 64), 64, 3, padding=1),
    Layer("resnet18 one image, layer3", (1, 14, 14, 256), 256, 3, padding=1),
    Layer("resnet18 one image, layer4", (1, 7, 7, 512), 512, 3, padding=1),
    Layer("mobilenet 1x1 expand", (32, 28, 28, 128), 256, 1),
    Layer("mobilenet 1x1 project", (32, 14, 14, 512), 128, 1),
    Layer("lenet 5x5", (64, 28, 28, 1), 32, 5, padding=2),
    Layer("5x5 same", (32, 16, 16, 64), 64, 5, padding=2),
    Layer("5x5 stride 2", (32, 32, 32, 32), 64, 5, stride=2, padding=2),
    Layer("dcgan 4x4 stride 2", (32, 32, 32, 64), 128, 4, stride=2, padding=1),
    Layer("dilated 3x3", (16, 32, 32, 64), 64, 3, padding=2, dilation=2),
]


def _median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def _check(got, want, name):
    scale = max(float(np.max(np.abs(want))), 1e-30)
    err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) / scale
    if not err < 1e-4:
        raise AssertionError(f"{name}: fastconv and PyTorch differ by {err:.2e} of the scale")


def survey_layer(layer: Layer, threads: int, rounds: int) -> dict:
    """Median milliseconds of each pass for fastconv and both PyTorch layouts."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(layer.x_shape, dtype=np.float32)
    c = layer.x_shape[3]
    w = (rng.standard_normal((layer.k, layer.k, c, layer.f)) / np.sqrt(layer.k * layer.k * c))
    w = w.astype(np.float32)
    b = rng.standard_normal(layer.f).astype(np.float32)
    conv = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation)
    g = conv2d_geometry(x.shape, w.shape, layer.stride, layer.padding, layer.dilation)
    dy = rng.standard_normal(g.y_shape, dtype=np.float32)
    torches = {layout: TorchConv2D(x, w, b, dy, g, layout) for layout in ("nchw", "nhwc")}
    passes = {
        "forward": (lambda: ops.conv2d(x, w, b, **conv, n_threads=threads),
                    {k: t.forward for k, t in torches.items()}),
        "backward": (lambda: ops.conv2d_backward(dy, x, w, **conv, n_threads=threads),
                     {k: t.backward for k, t in torches.items()}),
    }
    out = {}
    for name, (ours, theirs) in passes.items():
        t = torches["nhwc"]
        if name == "forward":
            _check(ours(), t.to_numpy(theirs["nhwc"]()), f"{layer.name} forward")
        else:
            dx, dw, db = ours()
            tdx, tdw, tdb = theirs["nhwc"]()
            _check(dx, t.to_numpy(tdx), f"{layer.name} dx")
            _check(dw, t.weight_to_numpy(tdw), f"{layer.name} dw")
            _check(db, tdb.numpy(), f"{layer.name} db")
        candidates = {"fastconv": ours, **{f"torch-{k}": v for k, v in theirs.items()}}
        times = {k: [] for k in candidates}
        for _ in range(rounds):
            for key, fn in candidates.items():
                start = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - start)
        out[name] = {k: _median_ms(v) for k, v in times.items()}
    return out


def rounds_for(layer: Layer, budget_macs: float = 1.5e9) -> int:
    """Rounds for about the same time per layer: more for small ones (7-60)."""
    n, h, w, c = layer.x_shape
    g = conv2d_geometry(layer.x_shape, (layer.k, layer.k, c, layer.f), layer.stride,
                        layer.padding, layer.dilation)
    macs = g.y_shape[0] * g.y_shape[1] * g.y_shape[2] * layer.f * c * layer.k * layer.k
    return int(min(60, max(7, budget_macs / macs)))


def run(layers=LAYERS, threads: int = 2, rounds: int | None = None) -> list[tuple]:
    import torch

    fastconv.set_num_threads(threads)
    torch.set_num_threads(threads)
    return [(layer, survey_layer(layer, threads, rounds or rounds_for(layer)))
            for layer in layers]


def report(results) -> str:
    lines = ["| layer | shape | pass | fastconv ms | torch-nchw ms | torch-nhwc ms "
             "| x faster torch |",
             "|---|---|---|---:|---:|---:|---:|"]
    for layer, passes in results:
        for name, ms in passes.items():
            best = min(ms["torch-nchw"], ms["torch-nhwc"])
            lines.append(f"| {layer.name} | {layer.label()} | {name} | {ms['fastconv']:.3f} | "
                         f"{ms['torch-nchw']:.3f} | {ms['torch-nhwc']:.3f} | "
                         f"{best / ms['fastconv']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per pass (default: 7-60, by the layer's size)")
    parser.add_argument("--only", default=None, help="layers whose name contains this")
    args = parser.parse_args(argv)
    layers = [layer for layer in LAYERS if args.only is None or args.only in layer.name]
    print(report(run(layers, args.threads, args.rounds)))


if __name__ == "__main__":
    main()
