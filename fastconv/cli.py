"""The `fastconv` command line: train, evaluate and predict MNIST models, and the engine's
configuration, demo and benchmark report.

    fastconv train mnist [--model fast|keras-cnn|lenet5] [--epochs N] [--plot] ...
    fastconv evaluate runs/mnist-fast/model.fcm
    fastconv predict runs/mnist-fast/model.fcm digit.png batch.npy
    fastconv info | demo | bench
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import fastconv
from fastconv import ops, reference

EXIT_ERROR = 1
EXIT_USAGE = 2
DATA_HELP = (
    "folder holding the four MNIST IDX files (default: $FASTCONV_DATA/mnist, then "
    "~/.fastconv/datasets/mnist, then a download)"
)


class CommandError(Exception):
    """A failure to report in one line and exit with status 1 (no traceback)."""


# ---- info, demo, bench ------------------------------------------------------


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


def bench(args: argparse.Namespace) -> int:
    """Hand the arguments to the performance report, `fastconv.bench.main`."""
    try:
        from fastconv import bench as bench_module
    except ModuleNotFoundError as error:
        if error.name != "fastconv.bench":
            raise
        raise CommandError(
            "the performance report (fastconv.bench) is not part of this installation; "
            "run the benchmark suite instead: pytest benchmarks --benchmark-enable"
        ) from None
    return int(bench_module.main(list(args.bench_args)) or 0)


# ---- data -------------------------------------------------------------------


def _load_mnist(data: str | None):
    from fastconv.datasets import DatasetNotFoundError, mnist

    try:
        return mnist.load_data(data)
    except DatasetNotFoundError as error:
        raise CommandError(str(error)) from None


def _as_images(x: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) digits as the models' float32 (n, 28, 28, 1) in [0, 1]."""
    return (x.astype(np.float32) * np.float32(1 / 255))[..., np.newaxis]


def _labels_for(model, y: np.ndarray) -> np.ndarray:
    """Integer labels, one-hot encoded when the model's loss wants them so."""
    from fastconv import losses, utils

    if isinstance(model.loss, losses.SparseCategoricalCrossentropy):
        return y
    return utils.to_categorical(y, model.output_shape[-1])


def _rate(images: int, seconds: float) -> str:
    return f"{images / seconds:,.0f} images/s" if seconds > 0 else "- images/s"


# ---- train ------------------------------------------------------------------


def _epoch_timer():
    """A callback that times each epoch's training part and validation part."""
    from fastconv.callbacks import Callback

    class EpochTimer(Callback):
        def __init__(self):
            super().__init__()
            self.train_seconds: list[float] = []
            self.epoch_seconds: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self._begin = self._last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self._last = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.train_seconds.append(self._last - self._begin)
            self.epoch_seconds.append(time.perf_counter() - self._begin)

    return EpochTimer()


def _linear_decay(start: float, end: float, epochs: int):
    """Learning rate for each epoch (from 0), falling linearly from start to end."""
    def schedule(epoch, lr):
        if epochs <= 1:
            return start
        return start + (end - start) * min(epoch, epochs - 1) / (epochs - 1)

    return schedule


def train(args: argparse.Namespace) -> int:
    """Train a model on MNIST, report test accuracy and speed, save model, history, plots."""
    from fastconv import callbacks, plots, utils, zoo

    started = time.perf_counter()
    if args.plot:
        try:
            plots.require_matplotlib()
        except plots.MissingMatplotlib as error:
            raise CommandError(f"--plot: {error}") from None
    try:
        recipe = zoo.recipe(args.model)
    except ValueError as error:
        raise CommandError(str(error)) from None
    epochs = recipe.epochs if args.epochs is None else args.epochs
    batch_size = recipe.batch_size if args.batch_size is None else args.batch_size
    if epochs < 1 or batch_size < 1:
        raise CommandError(f"--epochs and --batch-size must be positive, got {epochs} and "
                           f"{batch_size}")
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    utils.set_random_seed(args.seed)

    (x_train, y_train), (x_test, y_test) = _load_mnist(args.data)
    if args.subset:
        x_train, y_train = x_train[: args.subset], y_train[: args.subset]
        x_test, y_test = x_test[: args.subset], y_test[: args.subset]
    n_val = min(args.validation, len(x_train) // 10) if args.validation else 0
    if n_val:
        x_val, y_val = x_train[-n_val:], y_train[-n_val:]
        x_train, y_train = x_train[:-n_val], y_train[:-n_val]
    x_train, x_test = _as_images(x_train), _as_images(x_test)

    try:
        model = zoo.build(args.model, args.optimizer, args.lr)
    except ValueError as error:
        raise CommandError(str(error)) from None
    lr = float(model.optimizer.learning_rate)
    schedule = []
    same_optimizer = args.optimizer is None or args.optimizer.lower() == recipe.optimizer
    if same_optimizer and recipe.decay_to != 1.0:
        schedule = [callbacks.LearningRateScheduler(
            _linear_decay(lr, lr * recipe.decay_to, epochs))]
    name = zoo.recipe(args.model).build.__name__
    print(f"fastconv {fastconv.__version__}: training {args.model!r} on MNIST, "
          f"{len(x_train):,} images ({n_val:,} held out for validation), "
          f"{fastconv.get_num_threads()} threads, {fastconv.get_simd_path()}")
    print(f"{epochs} epoch{'s' if epochs > 1 else ''} of batch {batch_size}, "
          f"{model.optimizer.name} lr={lr:g}"
          f"{f' decaying to {lr * recipe.decay_to:g}' if schedule else ''}, seed {args.seed}")
    if args.verbose:
        model.summary()

    timer = _epoch_timer()
    history = model.fit(
        x_train, y_train, batch_size=batch_size, epochs=epochs, verbose=args.verbose,
        validation_data=(_as_images(x_val), y_val) if n_val else None,
        validation_batch_size=1000, callbacks=[*schedule, timer],
    )

    start = time.perf_counter()
    probabilities = model.predict(x_test, batch_size=1000)
    test_seconds = time.perf_counter() - start
    predicted = probabilities.argmax(axis=1)
    test_loss = float(model.loss(y_test, probabilities))
    test_accuracy = float(np.mean(predicted == y_test))
    train_seconds = float(np.median(timer.train_seconds))
    epoch_seconds = float(np.median(timer.epoch_seconds))
    total_seconds = time.perf_counter() - started

    print(f"test accuracy: {100 * test_accuracy:.2f}%  test loss: {test_loss:.4f}  "
          f"({len(x_test):,} images)")
    print(f"training: {epoch_seconds:.1f} s per epoch (median, validation included), "
          f"{_rate(len(x_train), train_seconds)}; inference: {_rate(len(x_test), test_seconds)}")
    print(f"total time: {total_seconds:.1f} s")

    out = Path(args.out or f"runs/mnist-{args.model}")
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.fcm")
    record = {
        "dataset": "mnist",
        "model": args.model,
        "builder": f"fastconv.zoo.{name}",
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": model.optimizer.name,
        "learning_rate": lr,
        "seed": args.seed,
        "threads": fastconv.get_num_threads(),
        "simd": fastconv.get_simd_path(),
        "train_images": len(x_train),
        "validation_images": n_val,
        "test_images": len(x_test),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "epoch_seconds": timer.epoch_seconds,
        "train_seconds": timer.train_seconds,
        "train_images_per_second": len(x_train) / train_seconds if train_seconds else None,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "inference_images_per_second": len(x_test) / test_seconds if test_seconds else None,
        "total_seconds": total_seconds,
        "fastconv_version": fastconv.__version__,
    }
    (out / "history.json").write_text(json.dumps(record, indent=2) + "\n")
    saved = ["model.fcm", "history.json"]
    if args.plot:
        title = f"{args.model} on MNIST, test accuracy {100 * test_accuracy:.2f}%"
        plots.plot_history(history.history, out / "loss_accuracy.png", title=title)
        plots.plot_misclassified(x_test, y_test, predicted, out / "misclassified.png",
                                 title=f"{args.model}")
        saved += ["loss_accuracy.png", "misclassified.png"]
    print(f"saved {', '.join(saved)} in {out}")
    return 0


# ---- evaluate and predict ----------------------------------------------------------


def _load_model(path):
    from fastconv.models import load_model

    try:
        model = load_model(path)
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot load model {path}: {error}") from None
    if not model.compiled:
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def evaluate(args: argparse.Namespace) -> int:
    """Accuracy and loss of a saved model on the MNIST test set."""
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    model = _load_model(args.model)
    _, (x_test, y_test) = _load_mnist(args.data)
    if args.subset:
        x_test, y_test = x_test[: args.subset], y_test[: args.subset]
    x = _as_images(x_test)
    start = time.perf_counter()
    probabilities = model.predict(x, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    loss = float(model.loss(_labels_for(model, y_test), probabilities))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    print(f"{args.model}: test accuracy {100 * accuracy:.2f}%, test loss {loss:.4f} "
          f"on {len(x):,} images; {_rate(len(x), seconds)} at batch {args.batch_size}, "
          f"{fastconv.get_num_threads()} threads")
    return 0


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resampling of a 2-D float image (area-like when shrinking a lot)."""
    h, w = image.shape
    if (h, w) == (height, width):
        return image
    # Shrinking by more than 2x: average blocks first, so thin strokes survive.
    factor = min(h // height, w // width)
    if factor >= 2:
        h, w = h // factor * factor, w // factor * factor
        image = image[:h, :w].reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))
        h, w = image.shape
    ys = np.clip((np.arange(height) + 0.5) * h / height - 0.5, 0, h - 1)
    xs = np.clip((np.arange(width) + 0.5) * w / width - 0.5, 0, w - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = image[y0][:, x0] * (1 - fx) + image[y0][:, x1] * fx
    bottom = image[y1][:, x0] * (1 - fx) + image[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _png_digit(path: str) -> tuple[np.ndarray, list[str]]:
    """A PNG as one (28, 28) float image in [0, 1], white digit on black, with notes."""
    from fastconv._png import read_png

    try:
        pixels = read_png(path).astype(np.float32) / 255
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise CommandError(str(error)) from None
    notes = []
    if pixels.ndim == 3:
        alpha = None
        if pixels.shape[2] in (2, 4):
            alpha, pixels = pixels[..., -1:], pixels[..., :-1]
        grey = pixels[..., 0] if pixels.shape[2] == 1 else pixels @ np.float32([0.299, 0.587,
                                                                              0.114])
        if alpha is not None:  # what a viewer shows: the image over a white page
            grey = grey * alpha[..., 0] + (1 - alpha[..., 0])
        pixels = grey
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 0.5:
        pixels = 1 - pixels
        notes.append("inverted (dark digit on a light background)")
    if pixels.shape != (28, 28):
        notes.append(f"resized from {pixels.shape[1]}x{pixels.shape[0]}")
        pixels = _resize(pixels, 28, 28)
    return pixels, notes


def _npy_digits(path: str) -> tuple[np.ndarray, bool]:
    """A .npy image or batch as float32 (n, 28, 28) in [0, 1], and whether it was one image."""
    try:
        array = np.load(path, allow_pickle=False)
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise CommandError(f"{path}: not a plain .npy array ({error})") from None
    if array.dtype.kind not in "biuf":
        raise CommandError(f"{path}: expected numbers, got dtype {array.dtype}")
    shape = array.shape
    if array.ndim >= 3 and shape[-1] == 1:
        array = array[..., 0]
    single = array.ndim == 2
    if single:
        array = array[np.newaxis]
    if array.ndim != 3 or array.shape[1:] != (28, 28):
        raise CommandError(f"{path}: expected a 28x28 image or a batch (n, 28, 28) or "
                           f"(n, 28, 28, 1), got shape {shape}")
    # Raw pixel values (as MNIST stores them), or values already scaled to [0, 1].
    raw = array.dtype.kind != "f" or array.max(initial=0) > 1.5
    array = array.astype(np.float32)
    if raw:
        array *= np.float32(1 / 255)
    return array, single


def predict(args: argparse.Namespace) -> int:
    """The most likely digits for PNG or .npy images."""
    if args.threads is not None:
        fastconv.set_num_threads(args.threads)
    model = _load_model(args.model)
    names, images, notes = [], [], []
    for path in args.files:
        if path.lower().endswith(".npy"):
            batch, single = _npy_digits(path)
            names += [path] if single else [f"{path}[{i}]" for i in range(len(batch))]
            images += list(batch)
            notes += [[]] * len(batch)
        else:
            with open(path, "rb") as f:
                head = f.read(8)
            if not head.startswith(b"\x89PNG"):
                raise CommandError(f"{path}: not a PNG or .npy file")
            image, note = _png_digit(path)
            names.append(path)
            images.append(image)
            notes.append(note)
    x = np.stack(images)[..., np.newaxis].astype(np.float32)
    probabilities = model.predict(x, batch_size=1000)
    top = min(args.top, probabilities.shape[1])
    shown = len(names) if args.all else min(len(names), 20)
    for i in range(shown):
        order = np.argsort(-probabilities[i], kind="stable")[:top]
        guesses = ", ".join(f"{k} ({100 * probabilities[i, k]:.1f}%)" for k in order)
        suffix = f"  [{'; '.join(notes[i])}]" if notes[i] else ""
        print(f"{names[i]}: {guesses}{suffix}")
    if shown < len(names):
        counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
        print(f"... {len(names) - shown} more (--all shows every image); predicted digits "
              f"over all {len(names)}: " + ", ".join(f"{k}: {c}" for k, c in enumerate(counts)))
    if args.output:
        np.save(args.output, probabilities)
        print(f"saved the probabilities, shape {probabilities.shape}, to {args.output}")
    return 0


# ---- parser -------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _add_train(commands) -> None:
    from fastconv import zoo

    models = "; ".join(f"{name}: {r.summary}" for name, r in zoo.MODELS.items())
    models = models.replace("%", "%%")  # argparse formats help with %
    parser = commands.add_parser(
        "train", help="train a model on a dataset (mnist)",
        description="Train a model on MNIST with a Keras-style progress bar; report the "
                    "test accuracy, seconds per epoch and images per second; save the model "
                    "(model.fcm), the history (history.json) and, with --plot, PNG plots.",
    )
    parser.add_argument("dataset", choices=["mnist"])
    parser.add_argument("--model", default=zoo.DEFAULT_MODEL, metavar="NAME",
                        help=f"{models} (default: %(default)s)")
    parser.add_argument("--epochs", type=_positive_int, default=None, metavar="N",
                        help="default: the model's recipe (fast 5, keras-cnn 12, lenet5 10)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, metavar="B",
                        help="default: 128")
    parser.add_argument("--optimizer", default=None, metavar="NAME",
                        help="sgd, adam, rmsprop, adagrad or adadelta (default: the recipe's)")
    parser.add_argument("--lr", type=_positive_float, default=None, metavar="X",
                        help="learning rate (default: the recipe's, or the optimizer's own)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="T",
                        help="kernel threads (default: $OMP_NUM_THREADS or all cores)")
    parser.add_argument("--seed", type=_non_negative_int, default=0, metavar="S",
                        help="seeds weights, shuffling and dropout (default: 0)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where to save (default: runs/mnist-MODEL)")
    parser.add_argument("--plot", action="store_true",
                        help="also write loss_accuracy.png and misclassified.png (matplotlib)")
    parser.add_argument("--validation", type=_non_negative_int, default=5000, metavar="N",
                        help="training images held out for validation, at most a tenth "
                             "(default: %(default)s; 0: none)")
    parser.add_argument("--subset", type=_positive_int, default=None, metavar="N",
                        help="use only the first N training and N test images (quick tries)")
    parser.add_argument("--data", default=None, metavar="DIR", help=DATA_HELP)
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                        help="1: a progress bar per epoch, 2: one line per epoch, 0: quiet")
    parser.set_defaults(run=train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastconv", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n\n")[1:]),
    )
    parser.add_argument("--version", action="version", version=f"fastconv {fastconv.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train(commands)

    p = commands.add_parser("evaluate", help="test accuracy of a saved model on MNIST")
    p.add_argument("model", metavar="MODEL", help="a model file saved by fastconv (.fcm)")
    p.add_argument("--batch-size", type=_positive_int, default=1000, metavar="B")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="T")
    p.add_argument("--subset", type=_positive_int, default=None, metavar="N",
                   help="only the first N test images")
    p.add_argument("--data", default=None, metavar="DIR", help=DATA_HELP)
    p.set_defaults(run=evaluate)

    p = commands.add_parser(
        "predict", help="classify digits in PNG or .npy files",
        description="Print the most likely digits for each image. A PNG (8-bit grey, RGB or "
                    "palette, no Pillow needed) is turned grey, inverted when its background "
                    "is light (MNIST digits are white on black) and resized to 28x28; a .npy "
                    "holds one 28x28 image or a batch (n, 28, 28[, 1]) of raw 0-255 pixels "
                    "or values in [0, 1].",
    )
    p.add_argument("model", metavar="MODEL", help="a model file saved by fastconv (.fcm)")
    p.add_argument("files", metavar="FILE", nargs="+", help="PNG or .npy files")
    p.add_argument("--top", type=_positive_int, default=1, metavar="K",
                   help="show the K most likely digits (default: 1)")
    p.add_argument("--all", action="store_true", help="one line per image even past 20")
    p.add_argument("--output", default=None, metavar="FILE.npy",
                   help="save the probabilities, shape (n, 10)")
    p.add_argument("--threads", type=_positive_int, default=None, metavar="T")
    p.set_defaults(run=predict)

    commands.add_parser("info", help="print the engine's configuration").set_defaults(run=info)
    commands.add_parser("demo", help="time a convolution against the NumPy reference"
                        ).set_defaults(run=demo)
    p = commands.add_parser("bench", help="the performance report (fastconv.bench)",
                            add_help=False)
    p.add_argument("bench_args", nargs=argparse.REMAINDER)
    p.set_defaults(run=bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if argv[:1] == ["bench"]:
        # Everything after "bench" belongs to the report's own parser, options included.
        args = argparse.Namespace(command="bench", run=bench, bench_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CommandError as error:
        print(f"fastconv {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
