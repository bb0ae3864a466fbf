"""Fashion-MNIST (Zalando): 60,000 training and 10,000 test images of clothing, 28x28.

A drop-in replacement for MNIST: the same IDX format, file names, shapes and ten
classes (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
7 Sneaker, 8 Bag, 9 Ankle boot). `load_data` returns what
``keras.datasets.fashion_mnist.load_data`` returns; it looks in ``path``,
``$FASTCONV_DATA/fashion_mnist`` and ``~/.fastconv/datasets/fashion_mnist``.

Downloads are verified by the MD5 of the published ``.gz`` files, the checksums given
by Zalando's fashion-mnist repository.
"""

from __future__ import annotations

import os

from fastconv.datasets import _files
from fastconv.datasets.mnist import WANTED, load_from, missing_files

__all__ = ["CLASS_NAMES", "load_data", "load_from"]

CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

REMOTES = (
    _files.Remote("train-images-idx3-ubyte.gz", "md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    _files.Remote("train-labels-idx1-ubyte.gz", "md5", "25c81989df183df01b3e8a0aad5dffbe"),
    _files.Remote("t10k-images-idx3-ubyte.gz", "md5", "bef4ecab320f06d8554ea6380940ec79"),
    _files.Remote("t10k-labels-idx1-ubyte.gz", "md5", "bb300cfdad3c16e7a12a480ee83cd310"),
)


def load_data(path: str | os.PathLike | None = None):
    """Load Fashion-MNIST, downloading it to the cache folder if it is found nowhere.

    Parameters
    ----------
    path : str or path-like, optional
        A folder holding the four IDX files, looked in first.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` : ndarray of shape (60000, 28, 28), uint8;
        ``y_train`` : ndarray of shape (60000,), uint8, classes 0-9;
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
        dataset="fashion_mnist", title="Fashion-MNIST", path=path, missing=missing_files,
        remotes=REMOTES, mirrors=MIRRORS, wanted=WANTED,
    )
    return load_from(folder)
