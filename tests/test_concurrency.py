"""Thread safety: the kernels called from several Python threads at once, and
the GIL released while they run.

Every kernel allocates its scratch per call (through a shared, locked cache of
freed blocks) and keeps no other state, so calls from different Python
threads must not disturb each other: each must return exactly, bit for bit,
what the same call returns alone. And every wrapper releases the GIL around
its kernel, so other Python threads keep running meanwhile.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from fastconv import ops

# (x shape, w shape, stride, padding): the direct, col2im, phase-GEMM, Winograd
# and plain-GEMM paths of the convolution, and a weight gradient in many chunks.
CONV_CASES = [
    ((2, 12, 11, 3), (3, 3, 3, 8), 1, "same"),
    ((2, 12, 11, 4), (3, 3, 4, 8), 1, "same"),
    ((2, 13, 12, 12), (3, 2, 12, 20), 2, 1),
    ((2, 14, 14, 16), (3, 3, 16, 24), 1, "same"),
    ((3, 9, 9, 32), (1, 1, 32, 17), 1, "valid"),
    ((4, 66, 66, 2), (3, 3, 2, 5), 1, "valid"),  # n*ho*wo = 16,384 + 512
]


def conv_inputs(case, seed):
    x_shape, w_shape, _, _ = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    b = rng.standard_normal(w_shape[3]).astype(np.float32)
    return x, w, b


def conv_pass(case, x, w, b, n_threads):
    """Forward and backward of one case: five arrays."""
    _, _, stride, padding = case
    args = dict(stride=stride, padding=padding, n_threads=n_threads)
    y = ops.conv2d(x, w, b, activation="relu", **args)
    dy = np.sin(y) + np.float32(0.5)
    return (y, *ops.conv2d_backward(dy, x, w, **args))


def other_pass(x, n_threads):
    """Pooling and GEMM on the same input: four arrays."""
    p = ops.max_pool2d(x, 3, strides=2, padding="same", n_threads=n_threads)
    q = ops.avg_pool2d_backward(np.ones_like(p), x, 3, strides=2, padding="same",
                                n_threads=n_threads)
    flat = x.reshape(-1, x.shape[3])
    g = ops.matmul(flat, flat.T[:, :40], n_threads=n_threads)
    return p, q, g, ops.dense(flat.T, flat[:, :7], n_threads=n_threads)


def same_bits(a, b) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_four_threads_get_the_serial_results():
    inputs = [conv_inputs(case, seed) for seed, case in enumerate(CONV_CASES)]
    serial = [conv_pass(case, *xwb, 1) + other_pass(xwb[0], 1)
              for case, xwb in zip(CONV_CASES, inputs)]
    start = threading.Barrier(4)
    errors, mismatches = [], []

    def worker(index):
        try:
            start.wait()
            for round_ in range(8):
                # Each thread walks the cases in its own order, with 1 or 2
                # kernel threads, so different kernels overlap.
                order = np.random.default_rng(100 * index + round_).permutation(len(CONV_CASES))
                for i in order:
                    n_threads = 1 + (index + round_ + int(i)) % 2
                    x, w, b = inputs[i]
                    got = conv_pass(CONV_CASES[i], x, w, b, n_threads) + other_pass(x, n_threads)
                    for k, (g, s) in enumerate(zip(got, serial[i])):
                        if not same_bits(g, s):
                            mismatches.append((index, round_, int(i), k, n_threads))
        except BaseException as error:  # noqa: BLE001 - re-raised below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert not mismatches, f"(thread, round, case, output, n_threads): {mismatches[:10]}"


def test_a_thread_with_an_error_does_not_disturb_the_others():
    """Refused calls in one thread while another computes."""
    x, w, b = conv_inputs(CONV_CASES[2], 0)
    want = conv_pass(CONV_CASES[2], x, w, b, 2)
    stop = threading.Event()

    def refuse():
        while not stop.is_set():
            for bad in (dict(stride=0), dict(padding="full"), dict(n_threads=0)):
                with pytest.raises(ValueError):
                    ops.conv2d(x, w, **bad)

    t = threading.Thread(target=refuse)
    t.start()
    try:
        for _ in range(5):
            got = conv_pass(CONV_CASES[2], x, w, b, 2)
            assert all(same_bits(g, s) for g, s in zip(got, want))
    finally:
        stop.set()
        t.join()


# ---- the GIL -----------------------------------------------------------------------


def duration(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def one_call(kind, size):
    """One kernel call on one thread; its work grows with size."""
    if kind == "matmul":
        a = np.full((size, size), 0.5, np.float32)
        return lambda: ops.matmul(a, a, n_threads=1)
    x = np.full((size, 56, 56, 32), 0.5, np.float32)
    w = np.full((3, 3, 32, 32), 0.25, np.float32)
    if kind == "conv2d":
        return lambda: ops.conv2d(x, w, stride=2, padding=1, n_threads=1)
    dy = np.ones((size, 28, 28, 32), np.float32)
    return lambda: ops.conv2d_backward(dy, x, w, stride=2, padding=1, n_threads=1)


def long_call(kind, seconds=0.3):
    """A single kernel call of about `seconds` on this machine."""
    small = 384 if kind == "matmul" else 2
    call = one_call(kind, small)
    call()  # first-touch costs out of the way
    scale = seconds / max(duration(call), 1e-4)
    if kind == "matmul":
        return one_call(kind, int(min(max(small * scale ** (1 / 3), small), 4096)))
    return one_call(kind, int(min(max(small * scale, small), 256)))


@pytest.mark.parametrize("kind", ["matmul", "conv2d", "conv2d_backward"])
def test_other_threads_run_while_a_kernel_runs(kind):
    call = long_call(kind)
    ticks = []
    done = threading.Event()

    def count():
        while not done.is_set():
            ticks.append(time.perf_counter())

    counter = threading.Thread(target=count)
    counter.start()
    try:
        time.sleep(0.02)
        start = time.perf_counter()
        call()
        end = time.perf_counter()
    finally:
        done.set()
        counter.join()
    inside = [start] + [t for t in ticks if start < t < end] + [end]
    longest_pause = max(b - a for a, b in zip(inside, inside[1:]))
    # Holding the GIL, the call would stop the counter from start to end.
    assert len(inside) > 100 and longest_pause < 0.5 * (end - start), (
        f"{len(inside) - 2} ticks during a {end - start:.3f} s call, "
        f"longest pause {longest_pause:.3f} s"
    )
