"""The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28, 10 classes.

`load_data` returns what ``keras.datasets.mnist.load_data`` returns. It reads the four
IDX files of the original distribution, each gzipped (``.gz``) or raw; see `_files` for
where it looks and how it downloads, and `_idx` for the checks made on the files.
Fashion-MNIST has the same format and file names, and reuses `load_from`.

Downloads are verified by the SHA-256 of the decompressed bytes (recompressing a file
changes its ``.gz`` bytes but never its content).
"""

from __future__ import annotations

import os
from pathlib import Path

from fastconv.datasets import _files
from fastconv.datasets._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

__all__ = ["FILES", "load_data", "load_from", "missing_files"]

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28)

# (images, labels) base names per split; on disk each is raw or ends in ".gz".
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

REMOTES = (
    _files.Remote(
        "train-images-idx3-ubyte.gz", "sha256",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", decompressed=True,
    ),
    _files.Remote(
        "train-labels-idx1-ubyte.gz", "sha256",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", decompressed=True,
    ),
    _files.Remote(
        "t10k-images-idx3-ubyte.gz", "sha256",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", decompressed=True,
    ),
    _files.Remote(
        "t10k-labels-idx1-ubyte.gz", "sha256",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", decompressed=True,
    ),
)

WANTED = (
    "the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, "
    "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each raw or gzipped as .gz)"
)


def load_data(path: str | os.PathLike | None = None):
    """Load MNIST, downloading it to the cache folder if it is found nowhere.

    Parameters
    ----------
    path : str or path-like, optional
        A folder holding the four IDX files, looked in first. Then come
        ``$FASTCONV_DATA/mnist`` and ``~/.fastconv/datasets/mnist``.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` : ndarray of shape (60000, 28, 28), uint8;
        ``y_train`` : ndarray of shape (60000,), uint8, digits 0-9;
        ``x_test`` : ndarray of shape (10000, 28, 28), uint8;
        ``y_test`` : ndarray of shape (10000,), uint8.

    Raises
    ------
    DatasetNotFoundError
        (an `OSError`) if the files are found nowhere and cannot be downloaded.
    ValueError
        If a file is truncated, corrupt or inconsistent; the message names it.
    """
    folder = _files.find_or_download(
        dataset="mnist", title="MNIST", path=path, missing=missing_files,
        remotes=REMOTES, mirrors=MIRRORS, wanted=WANTED,
    )
    return load_from(folder)


def load_from(folder: str | os.PathLike):
    """Read the four MNIST-format IDX files in ``folder``; no search, no download.

    Any number of images is accepted, as long as each split's image and label counts
    agree; images must be 28x28 and labels 0-9.

    Parameters
    ----------
    folder : str or path-like
        Holds each of the files named in `FILES`, raw or with ``.gz`` appended (the raw
        file is read when both exist).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` : ndarray of shape (n, 28, 28), uint8; ``y`` : ndarray of shape (n,), uint8.

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    ValueError
        If a file is not a valid IDX file of the expected kind, or the counts disagree.
    """
    folder = Path(folder)
    splits = []
    for split in ("train", "test"):
        images_name, labels_name = FILES[split]
        images_path = _find_or_raise(folder, images_name)
        labels_path = _find_or_raise(folder, labels_name)
        images = read_idx(images_path, IMAGES_MAGIC)
        labels = read_idx(labels_path, LABELS_MAGIC)
        if images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(
                f"{images_path}: images of {images.shape[1]}x{images.shape[2]} pixels, "
                f"expected {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}"
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{images_path} holds {len(images)} images but {labels_path} holds "
                f"{len(labels)} labels"
            )
        if labels.size and labels.max() >= NUM_CLASSES:
            raise ValueError(
                f"{labels_path}: label {labels.max()} out of range 0-{NUM_CLASSES - 1}"
            )
        splits.append((images, labels))
    return splits[0], splits[1]


def missing_files(folder: Path) -> list[str]:
    """Return the names of the MNIST-format files ``folder`` lacks, e.g. ``["x[.gz]"]``."""
    names = [name for pair in FILES.values() for name in pair]
    return [f"{name}[.gz]" for name in names if _find(folder, name) is None]


def _find(folder: Path, name: str) -> Path | None:
    """Return ``folder / name`` if it exists, else ``folder / (name + ".gz")`` if that does."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_or_raise(folder: Path, name: str) -> Path:
    found = _find(folder, name)
    if found is None:
        raise FileNotFoundError(f"{folder}: neither {name} nor {name}.gz exists")
    return found
