"""CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, 10 classes.

Read from the *binary version* of the dataset (``cifar-10-binary.tar.gz``; no pickle).
Each of its six files, ``data_batch_1.bin`` ... ``data_batch_5.bin`` and
``test_batch.bin``, is a run of 3073-byte records: one label byte, then the 32x32
image as three 1024-byte planes, red, green and blue, each row-major. `load_data`
returns what ``keras.datasets.cifar10.load_data`` returns, images in NHWC order.

The files are read from the extracted folder ``cifar-10-batches-bin/`` or, when there is
none, straight out of the archive into memory: nothing is extracted to disk, and an
archive holding any absolute or ``..`` member path is rejected. Where `load_data` looks
and how it downloads is described in `_files`; downloads are verified by the MD5 of
the archive published on the CIFAR page.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from fastconv.datasets import _files

__all__ = ["CLASS_NAMES", "load_data", "load_from", "missing_files", "parse_batch"]

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)

ARCHIVE = "cifar-10-binary.tar.gz"
BATCHES = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
RECORD_BYTES = 1 + 3 * 32 * 32

MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
REMOTES = (_files.Remote(ARCHIVE, "md5", "c32a1d4ab5d03f1284b67883e8d87530"),)
WANTED = (
    f"{ARCHIVE}, or its extracted folder {BATCHES}/ (data_batch_1.bin to "
    f"data_batch_5.bin and {TEST_FILE})"
)


def load_data(path: str | os.PathLike | None = None):
    """Load CIFAR-10, downloading it to the cache folder if it is found nowhere.

    Parameters
    ----------
    path : str or path-like, optional
        A folder holding ``cifar-10-batches-bin/``, the six ``.bin`` files themselves,
        or ``cifar-10-binary.tar.gz``, looked in first. Then come
        ``$FASTCONV_DATA/cifar10`` and ``~/.fastconv/datasets/cifar10``.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x_train`` : ndarray of shape (50000, 32, 32, 3), uint8;
        ``y_train`` : ndarray of shape (50000, 1), uint8, classes 0-9;
        ``x_test`` : ndarray of shape (10000, 32, 32, 3), uint8;
        ``y_test`` : ndarray of shape (10000, 1), uint8.

    Raises
    ------
    DatasetNotFoundError
        (an `OSError`) if the files are found nowhere and cannot be downloaded.
    ValueError
        If a file or the archive is truncated, corrupt or unsafe; the message names it.
    """
    folder = _files.find_or_download(
        dataset="cifar10", title="CIFAR-10", path=path, missing=missing_files,
        remotes=REMOTES, mirrors=MIRRORS, wanted=WANTED,
    )
    return load_from(folder)


def load_from(folder: str | os.PathLike):
    """Read the six CIFAR-10 binary batches found in ``folder``; no search, no download.

    Looks, in order, for ``folder/cifar-10-batches-bin/*.bin``, for the ``.bin`` files
    directly in ``folder``, and for ``folder/cifar-10-binary.tar.gz``. Any number of
    records per batch is accepted.

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        ``x`` : ndarray of shape (n, 32, 32, 3), uint8, C-contiguous;
        ``y`` : ndarray of shape (n, 1), uint8.

    Raises
    ------
    FileNotFoundError
        If ``folder`` holds none of these forms.
    ValueError
        If a batch is not a whole number of records or has a label above 9, or the
        archive is corrupt, unsafe or lacks a batch; the message names the file.
    """
    folder = Path(folder)
    names = (*TRAIN_FILES, TEST_FILE)
    blobs = None
    for where in (folder / BATCHES, folder):
        if all((where / name).is_file() for name in names):
            blobs = {name: (str(where / name), (where / name).read_bytes()) for name in names}
            break
    if blobs is None:
        if not (folder / ARCHIVE).is_file():
            raise FileNotFoundError(f"{folder}: no CIFAR-10 files; expected {WANTED}")
        blobs = read_archive(folder / ARCHIVE)

    train = [parse_batch(blobs[name][1], blobs[name][0]) for name in TRAIN_FILES]
    x_test, y_test = parse_batch(blobs[TEST_FILE][1], blobs[TEST_FILE][0])
    x_train = _join([x for x, _ in train])
    y_train = _join([y for _, y in train])
    return (x_train, y_train), (_join([x_test]), _join([y_test]))


def _join(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenate into a new C-contiguous array (plain np.concatenate keeps the parts'
    transposed layout)."""
    out = np.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype=parts[0].dtype)
    return np.concatenate(parts, out=out)


def parse_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse one binary batch.

    Parameters
    ----------
    data : bytes
        The whole file: n records of 3073 bytes.
    name : str
        The file's name, for error messages.

    Returns
    -------
    x : ndarray of shape (n, 32, 32, 3), uint8
        A read-only view of ``data``, not contiguous.
    y : ndarray of shape (n, 1), uint8
        A read-only view of ``data``.

    Raises
    ------
    ValueError
        If the length is zero or not a multiple of 3073, or a label is above 9.
    """
    if len(data) == 0 or len(data) % RECORD_BYTES:
        raise ValueError(
            f"{name}: {len(data)} bytes is not a positive multiple of the "
            f"{RECORD_BYTES}-byte record (1 label byte + 3072 pixel bytes)"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD_BYTES)
    labels = records[:, :1]
    if labels.max() >= len(CLASS_NAMES):
        index = int(labels.argmax())
        raise ValueError(
            f"{name}: record {index} has label {labels[index, 0]}, expected 0-9"
        )
    # Channel-major planes (c, h, w) per record, to NHWC.
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def read_archive(archive: Path) -> dict[str, tuple[str, bytes]]:
    """Read the six batches out of ``cifar-10-binary.tar.gz`` into memory.

    Returns
    -------
    dict
        Maps each batch's file name to ``(display name, bytes)``.

    Raises
    ------
    ValueError
        If the archive is corrupt or truncated, has a member with an absolute or
        ``..`` path, or lacks one of the batches.
    """
    wanted = {f"{BATCHES}/{name}": name for name in (*TRAIN_FILES, TEST_FILE)}
    found = {}
    with open(archive, "rb") as f:
        try:
            with tarfile.open(fileobj=f, mode="r:gz") as tar:
                for member in tar:
                    key = _safe_member_name(archive, member.name)
                    if key in wanted and member.isfile():
                        content = tar.extractfile(member).read()
                        found[wanted[key]] = (f"{archive}:{member.name}", content)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{archive}: corrupt or truncated archive ({exc})") from exc
    lacking = [key for key, name in wanted.items() if name not in found]
    if lacking:
        raise ValueError(f"{archive}: the archive lacks {', '.join(lacking)}")
    return found


def _safe_member_name(archive: Path, name: str) -> str:
    """Return a member's normalised name; reject absolute and ``..`` paths."""
    for path in (PurePosixPath(name), PureWindowsPath(name)):
        if path.anchor or ".." in path.parts:
            raise ValueError(f"{archive}: unsafe member path {name!r} (absolute or '..')")
    return PurePosixPath(name).as_posix()


def missing_files(folder: Path) -> list[str]:
    """Return what ``folder`` lacks to hold CIFAR-10 (empty when it holds it)."""
    names = (*TRAIN_FILES, TEST_FILE)
    if (folder / ARCHIVE).is_file():
        return []
    for where in (folder / BATCHES, folder):
        if all((where / name).is_file() for name in names):
            return []
    if (folder / BATCHES).is_dir():
        return [f"{BATCHES}/{name}" for name in names if not (folder / BATCHES / name).is_file()]
    return [WANTED]
