"""Benchmark of one training step of the Keras MNIST example CNN, and the share
of that step spent inside `fastconv.ops` (the kernels) rather than in Python
and NumPy glue: the issue asks that the kernels dominate.

Run with ``pytest benchmarks/test_bench_training.py --benchmark-only``; the
share is in each result's ``extra_info``.
"""

from __future__ import annotations

import importlib.util
import os
import time

import numpy as np
import pytest

import fastconv
from fastconv import backend, layers, optimizers, utils
from fastconv.models import Sequential

BATCH = 128


class _TimedKernels:
    """Forwards to a kernel set and adds up the wall time spent in it."""

    def __init__(self, kernels):
        self._kernels = kernels
        self.seconds = 0.0

    def __getattr__(self, name):
        function = getattr(self._kernels, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed


def mnist_cnn():
    utils.set_random_seed(0)
    model = Sequential(
        [
            layers.Conv2D(32, 3, activation="relu", input_shape=(28, 28, 1)),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizers.Adadelta(), "categorical_crossentropy", metrics=["accuracy"])
    return model


@pytest.mark.benchmark(group="train_step")
def test_mnist_cnn_train_step(benchmark, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 28, 28, 1), dtype=np.float32)
    y = utils.to_categorical(rng.integers(0, 10, BATCH), 10)
    model = mnist_cnn()
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up: buffers, slots

    timed = _TimedKernels(backend.kernels())
    monkeypatch.setattr(backend, "_current", timed)
    # Untimed runs (the ordinary test suite) only check that a step works.
    rounds = 1 if benchmark.disabled else 10
    start = time.perf_counter()
    for _ in range(rounds):
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
    total = time.perf_counter() - start
    share = timed.seconds / total

    history = benchmark.pedantic(
        model.fit,
        args=(x, y),
        kwargs={"batch_size": BATCH, "epochs": 1, "verbose": 0},
        rounds=rounds,
        iterations=1,
    )
    assert np.isfinite(history.history["loss"][0])
    benchmark.extra_info.update(
        batch=BATCH,
        threads=fastconv.get_num_threads(),
        kernel_share=round(share, 3),
        step_ms=round(1e3 * total / rounds, 2),
    )


def test_profile_script_times_every_layer(capsys):
    """benchmarks/profile_train_step.py's table gives each layer its backward
    time, also where the model takes a ReLU layer's gradient from the layer
    above it (its `backward` is not called then), and the convolution under
    a max pooling the forward and backward time of both (they run in one
    call each way)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profile_train_step.py")
    spec = importlib.util.spec_from_file_location("profile_train_step", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads = str(fastconv.get_num_threads())  # main() sets it: keep the suite's
    assert script.main(["--model", "keras-cnn", "--steps", "2", "--batch-size", "32",
                        "--threads", threads, "--cprofile", "3"]) == 0
    rows = []  # (layer type, forward ms, backward ms), bottom to top
    for line in capsys.readouterr().out.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[3] == "/" and parts[5] == "ms":
            rows.append((parts[1], float(parts[2]), float(parts[4])))
    assert [kind for kind, _, _ in rows] == ["Conv2D", "Conv2D", "MaxPooling2D", "Dropout",
                                             "Flatten", "Dense", "Dropout", "Dense"]
    for i in (0, 1, 5):  # the layers of tens of microseconds and more
        assert rows[i][1] > 0 and rows[i][2] > 0, rows[i]
    assert rows[2][1] == 0 and rows[2][2] == 0, rows[2]  # the pooling's passes: in conv2d_1's
