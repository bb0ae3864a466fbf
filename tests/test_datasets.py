"""Tests for fastconv.datasets: the IDX reader, file finding and downloading, and loaders.

Small synthetic files are written to tmp_path. The network is never touched: an autouse
fixture replaces `_files.copy_url`, points HOME (hence the cache folder) at tmp_path and
unsets FASTCONV_DATA. The real MNIST is checked only when FASTCONV_DATA provides it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from fastconv.datasets import DatasetNotFoundError, _files, cifar10, fashion_mnist, mnist
from fastconv.datasets._idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx

# Read before the autouse fixture unsets it.
REAL_DATA = os.environ.get("FASTCONV_DATA")

MNIST_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, an empty home (cache) folder, no FASTCONV_DATA."""

    def no_network(url, out, timeout=None):
        raise OSError(f"network disabled in tests: {url}")

    monkeypatch.setattr(_files, "copy_url", no_network)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FASTCONV_DATA", raising=False)


# ---------------------------------------------------------------------------- helpers


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """Encode ``array`` as an IDX file, independently of the reader under test."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + np.ascontiguousarray(array, dtype=big[type_code]).tobytes()


def write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path``, gzipped if the name ends in .gz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_mnist(folder: Path, n_train: int = 5, n_test: int = 3, gz: bool = True, seed=0):
    """Write four small MNIST-format files; return ((x, y), (x, y)) as written."""
    rng = np.random.default_rng(seed)
    arrays = []
    for n in (n_train, n_test):
        arrays.append(rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8))
        arrays.append(rng.integers(0, 10, size=n, dtype=np.uint8))
    suffix = ".gz" if gz else ""
    for name, array in zip(MNIST_NAMES, arrays):
        write(folder / f"{name}{suffix}", idx_bytes(array))
    return (arrays[0], arrays[1]), (arrays[2], arrays[3])


def assert_same(loaded, expected):
    for got, want in zip((*loaded[0], *loaded[1]), (*expected[0], *expected[1])):
        assert got.dtype == want.dtype
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def cifar_batch(n: int, seed: int = 0):
    """Return (bytes, x of shape (n, 32, 32, 3), y of shape (n, 1)) of a binary batch."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=(n, 1), dtype=np.uint8)
    records = [bytes(y[i]) + x[i].transpose(2, 0, 1).tobytes() for i in range(n)]
    return b"".join(records), x, y


def cifar_batches(sizes=(2, 3, 1, 2, 2, 4)):
    """Return {file name: bytes} for the six batches, and the expected result."""
    names = (*cifar10.TRAIN_FILES, cifar10.TEST_FILE)
    blobs, xs, ys = {}, [], []
    for seed, (name, n) in enumerate(zip(names, sizes)):
        blobs[name], x, y = cifar_batch(n, seed)
        xs.append(x)
        ys.append(y)
    expected = (np.concatenate(xs[:5]), np.concatenate(ys[:5])), (xs[5], ys[5])
    return blobs, expected


def write_tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


# -------------------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_round_trip(tmp_path, suffix):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write(tmp_path / f"a-idx3-ubyte{suffix}", idx_bytes(array))
    got = read_idx(path, IMAGES_MAGIC)
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.uint8 and got.flags.writeable and got.flags.c_contiguous


@pytest.mark.parametrize(
    "type_code, dtype",
    [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32), (0x0D, np.float32),
     (0x0E, np.float64)],
)
def test_read_idx_other_types_native_order(tmp_path, type_code, dtype):
    array = (np.arange(6).reshape(2, 3) - 3).astype(dtype)
    path = write(tmp_path / "a.idx", idx_bytes(array, type_code))
    got = read_idx(path)
    np.testing.assert_array_equal(got, array)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative and got.flags.writeable


def test_read_idx_empty_array(tmp_path):
    path = write(tmp_path / "a.idx", idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    assert read_idx(path, IMAGES_MAGIC).shape == (0, 28, 28)


GOOD = idx_bytes(np.ones((2, 3, 3), np.uint8))


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short for an IDX header"),
        (b"\x01\x00" + GOOD[2:], "first two bytes must be zero"),
        (b"\x00\x00\x07\x03" + GOOD[4:], "unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x00", "0 dimensions"),
        (GOOD[:10], "truncated header"),
        (GOOD[:-1], "truncated: dimensions (2, 3, 3)"),
        (GOOD[:16], "truncated: dimensions (2, 3, 3)"),
        (GOOD + b"\x00", "over-long"),
        (b"\x00\x00\x08\x01\xff\xff\xff\xff", "truncated"),
    ],
    ids=["short", "nonzero", "type", "ndim0", "header", "payload-1", "no-payload",
         "over-long", "huge-dims"],
)
def test_read_idx_rejects_malformed(tmp_path, data, message):
    path = write(tmp_path / "bad-idx-ubyte", data)
    with pytest.raises(ValueError, match="bad-idx-ubyte") as info:
        read_idx(path)
    assert message in str(info.value)


def test_read_idx_wrong_magic_names_both_numbers(tmp_path):
    path = write(tmp_path / "labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="labels-idx1-ubyte") as info:
        read_idx(path, IMAGES_MAGIC)
    assert "magic number 2049" in str(info.value) and "expected 2051" in str(info.value)
    assert read_idx(path, LABELS_MAGIC).shape == (4,)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "not-gzip", "empty"])
def test_read_idx_rejects_corrupt_gzip(tmp_path, damage):
    packed = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8).reshape(2, 10, 10)))
    if damage == "truncated":
        packed = packed[: len(packed) // 2]
    elif damage == "flipped":
        middle = len(packed) // 2
        packed = packed[:middle] + bytes([packed[middle] ^ 0xFF]) + packed[middle + 1 :]
    elif damage == "not-gzip":
        packed = idx_bytes(np.zeros((2, 10, 10), np.uint8))
    else:
        packed = b""
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(packed)
    with pytest.raises(ValueError, match="x-idx3-ubyte.gz"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nothing.gz")


# ------------------------------------------------------------------- MNIST, load_from


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_load_from(tmp_path, gz):
    expected = write_mnist(tmp_path, n_train=5, n_test=3, gz=gz)
    loaded = mnist.load_from(tmp_path)
    assert_same(loaded, expected)
    assert loaded[0][0].shape == (5, 28, 28) and loaded[1][1].shape == (3,)


def test_mnist_load_from_mixed_and_prefers_raw(tmp_path):
    expected = write_mnist(tmp_path, gz=False)
    # A .gz beside a raw file is ignored; a lone .gz is read.
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(expected[1][1]))
    assert_same(mnist.load_from(tmp_path), expected)


def test_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(ValueError, match="3 images but .*t10k-labels-idx1-ubyte.gz holds 4"):
        mnist.load_from(tmp_path)


def test_mnist_wrong_image_size(tmp_path):
    write_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 27, 28), np.uint8)))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: images of 27x28"):
        mnist.load_from(tmp_path)


def test_mnist_wrong_number_of_dims(tmp_path):
    write_mnist(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte.gz", idx_bytes(np.zeros((5, 784), np.uint8)))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: magic number 2050"):
        mnist.load_from(tmp_path)


def test_mnist_images_and_labels_swapped(tmp_path):
    write_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte.gz"
    write(labels, idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: magic number 2051"):
        mnist.load_from(tmp_path)


def test_mnist_label_out_of_range(tmp_path):
    write_mnist(tmp_path)
    write(tmp_path / "train-labels-idx1-ubyte.gz", idx_bytes(np.array([0, 1, 10, 2, 3], np.uint8)))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: label 10"):
        mnist.load_from(tmp_path)


def test_mnist_truncated_file(tmp_path):
    write_mnist(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: truncated"):
        mnist.load_from(tmp_path)


def test_mnist_load_from_missing_file(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        mnist.load_from(tmp_path)


# ------------------------------------------------------------ MNIST, search and errors


def test_cache_folder_is_under_home(tmp_path):
    assert _files.cache_folder("mnist") == tmp_path / "home" / ".fastconv" / "datasets" / "mnist"


def test_mnist_search_order(tmp_path, monkeypatch):
    given, data = tmp_path / "given", tmp_path / "data"
    cache = _files.cache_folder("mnist")
    from_given = write_mnist(given, n_train=3, seed=1)
    from_env = write_mnist(data / "mnist", n_train=4, seed=2)
    from_cache = write_mnist(cache, n_train=6, gz=False, seed=3)
    monkeypatch.setenv("FASTCONV_DATA", str(data))

    assert_same(mnist.load_data(given), from_given)
    assert_same(mnist.load_data(str(given)), from_given)
    assert_same(mnist.load_data(), from_env)
    (given / "t10k-labels-idx1-ubyte.gz").unlink()  # incomplete: skipped
    assert_same(mnist.load_data(given), from_env)
    monkeypatch.delenv("FASTCONV_DATA")
    assert_same(mnist.load_data(given), from_cache)


def test_mnist_nowhere_names_every_place(tmp_path, monkeypatch):
    given, data = tmp_path / "given", tmp_path / "data"
    write_mnist(given)
    (given / "train-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("FASTCONV_DATA", str(data))

    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data(given)
    assert isinstance(info.value, OSError)
    message = str(info.value)
    cache = _files.cache_folder("mnist")
    for expected in (
        f"{given} (the path argument): missing train-labels-idx1-ubyte[.gz]",
        f"{data / 'mnist'} ($FASTCONV_DATA/mnist): no such folder",
        f"{cache} (the cache): no such folder",
        "network disabled in tests",
        *(url + "train-images-idx3-ubyte.gz" for url in mnist.MIRRORS),
        "set FASTCONV_DATA",
        "load_data(path=folder)",
        "t10k-labels-idx1-ubyte",
    ):
        assert expected in message
    # The failed download left nothing behind in the cache.
    assert list(cache.iterdir()) == []


def test_mnist_nowhere_without_path_or_env():
    with pytest.raises(DatasetNotFoundError) as info:
        mnist.load_data()
    message = str(info.value)
    assert "the path argument: not given" in message
    assert "$FASTCONV_DATA/mnist: FASTCONV_DATA is not set" in message
    assert str(_files.cache_folder("mnist")) in message


# ------------------------------------------------------------------------ downloading


def serve(monkeypatch, files: dict[str, bytes], calls: list[str]):
    """Replace the network by ``files`` (url -> bytes); other URLs fail like a 404."""

    def fake_copy_url(url, out, timeout=None):
        calls.append(url)
        if url not in files:
            raise OSError(f"HTTP Error 404: {url}")
        out.write(files[url])

    monkeypatch.setattr(_files, "copy_url", fake_copy_url)


def synthetic_mnist_remotes(folder: Path):
    """Gzipped synthetic MNIST files and Remotes with their decompressed SHA-256."""
    expected = write_mnist(folder)
    remotes = tuple(
        _files.Remote(
            f"{name}.gz", "sha256",
            hashlib.sha256(gzip.decompress((folder / f"{name}.gz").read_bytes())).hexdigest(),
            decompressed=True,
        )
        for name in MNIST_NAMES
    )
    return expected, remotes


def test_mnist_download_falls_back_to_next_mirror_and_caches(tmp_path, monkeypatch):
    served = tmp_path / "served"
    expected, remotes = synthetic_mnist_remotes(served)
    monkeypatch.setattr(mnist, "REMOTES", remotes)
    second = mnist.MIRRORS[1]
    calls = []
    serve(monkeypatch, {second + r.name: (served / r.name).read_bytes() for r in remotes}, calls)

    assert_same(mnist.load_data(), expected)
    assert calls == [m + r.name for r in remotes for m in mnist.MIRRORS]
    cache = _files.cache_folder("mnist")
    assert sorted(p.name for p in cache.iterdir()) == sorted(r.name for r in remotes)

    calls.clear()
    assert_same(mnist.load_data(), expected)  # from the cache now
    assert calls == []


def test_download_checksum_mismatch_keeps_nothing(tmp_path, monkeypatch):
    served = tmp_path / "served"
    _, remotes = synthetic_mnist_remotes(served)
    monkeypatch.setattr(mnist, "REMOTES", remotes)
    wrong = gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    serve(monkeypatch, {m + remotes[0].name: wrong for m in mnist.MIRRORS}, [])

    with pytest.raises(DatasetNotFoundError, match="sha256 checksum mismatch"):
        mnist.load_data()
    assert list(_files.cache_folder("mnist").iterdir()) == []


def test_download_interrupted_keeps_nothing(tmp_path, monkeypatch):
    def half_then_fail(url, out, timeout=None):
        out.write(b"partial")
        raise TimeoutError("timed out")

    monkeypatch.setattr(_files, "copy_url", half_then_fail)
    remote = _files.Remote("f.bin", "md5", hashlib.md5(b"whole").hexdigest())
    with pytest.raises(OSError, match="timed out") as info:
        _files.download(remote, ["https://a/", "https://b/"], tmp_path)
    assert "https://a/f.bin" in str(info.value) and "https://b/f.bin" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_md5_of_file(tmp_path, monkeypatch):
    serve(monkeypatch, {"https://m/f.gz": b"whole"}, [])
    remote = _files.Remote("f.gz", "md5", hashlib.md5(b"whole").hexdigest())
    path = _files.download(remote, ["https://m/"], tmp_path)
    assert path == tmp_path / "f.gz" and path.read_bytes() == b"whole"
    assert [p.name for p in tmp_path.iterdir()] == ["f.gz"]


def test_verify_decompressed_rejects_non_gzip(tmp_path):
    path = write(tmp_path / "f", b"not gzip")
    remote = _files.Remote("f", "sha256", hashlib.sha256(b"not gzip").hexdigest(), True)
    with pytest.raises(ValueError, match="not a valid gzip file"):
        _files.verify(path, remote)


def test_unwritable_cache_is_reported(tmp_path):
    (tmp_path / "home").write_text("a file where the home folder should be")
    with pytest.raises(DatasetNotFoundError, match="Download into .* failed"):
        mnist.load_data()


# ----------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_path_and_env(tmp_path, monkeypatch):
    expected = write_mnist(tmp_path / "given", gz=False, seed=4)
    assert_same(fashion_mnist.load_data(tmp_path / "given"), expected)
    expected = write_mnist(tmp_path / "data" / "fashion_mnist", seed=5)
    write_mnist(tmp_path / "data" / "mnist", seed=6)  # not Fashion-MNIST's folder
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "data"))
    assert_same(fashion_mnist.load_data(), expected)


def test_fashion_mnist_nowhere(tmp_path):
    write_mnist(_files.cache_folder("mnist"))  # MNIST's cache is not Fashion-MNIST's
    with pytest.raises(DatasetNotFoundError) as info:
        fashion_mnist.load_data()
    message = str(info.value)
    assert "Fashion-MNIST" in message
    assert f"{_files.cache_folder('fashion_mnist')} (the cache)" in message
    assert fashion_mnist.MIRRORS[0] + "train-images-idx3-ubyte.gz" in message
    assert all(r.algorithm == "md5" and len(r.digest) == 32 for r in fashion_mnist.REMOTES)


# ---------------------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("layout", ["extracted", "flat", "archive"])
def test_cifar10_load_from(tmp_path, layout):
    blobs, expected = cifar_batches()
    if layout == "extracted":
        for name, data in blobs.items():
            write(tmp_path / cifar10.BATCHES / name, data)
    elif layout == "flat":
        for name, data in blobs.items():
            write(tmp_path / name, data)
    else:
        write_tar(
            tmp_path / cifar10.ARCHIVE,
            {f"{cifar10.BATCHES}/readme.html": b"<html>",
             **{f"{cifar10.BATCHES}/{name}": data for name, data in blobs.items()}},
        )
    assert cifar10.missing_files(tmp_path) == []
    loaded = cifar10.load_from(tmp_path)
    assert_same(loaded, expected)
    (x_train, y_train), (x_test, y_test) = loaded
    assert x_train.shape == (10, 32, 32, 3) and y_train.shape == (10, 1)
    assert x_test.shape == (4, 32, 32, 3) and y_test.shape == (4, 1)
    for array in (x_train, y_train, x_test, y_test):
        assert array.flags.c_contiguous and array.flags.writeable


def test_cifar10_channel_major_records():
    record = bytes([7]) + bytes([10]) * 1024 + bytes([20]) * 1024 + bytes([30]) * 1023 + b"\x31"
    x, y = cifar10.parse_batch(record, "one")
    assert y.tolist() == [[7]]
    assert (x[0, :, :, 0] == 10).all() and (x[0, :, :, 1] == 20).all()
    assert x[0, 31, 31, 2] == 0x31 and x[0, 31, 30, 2] == 30 and x[0, 0, 0, 2] == 30


@pytest.mark.parametrize("length", [0, 3072, 3074, 2 * 3073 + 1])
def test_cifar10_bad_length_names_file(tmp_path, length):
    blobs, _ = cifar_batches()
    blobs["data_batch_3.bin"] = bytes(length)
    for name, data in blobs.items():
        write(tmp_path / name, data)
    with pytest.raises(ValueError, match=f"data_batch_3.bin: {length} bytes is not"):
        cifar10.load_from(tmp_path)


def test_cifar10_label_out_of_range(tmp_path):
    blobs, _ = cifar_batches()
    blobs["test_batch.bin"] = blobs["test_batch.bin"][:3073] + b"\x0a" + bytes(3072)
    for name, data in blobs.items():
        write(tmp_path / name, data)
    with pytest.raises(ValueError, match="test_batch.bin: record 1 has label 10"):
        cifar10.load_from(tmp_path)


@pytest.mark.parametrize(
    "bad_name", ["../evil.bin", "cifar-10-batches-bin/../../evil.bin", "/tmp/evil.bin"]
)
def test_cifar10_rejects_unsafe_archive(tmp_path, bad_name):
    blobs, _ = cifar_batches()
    members = {f"{cifar10.BATCHES}/{name}": data for name, data in blobs.items()}
    write_tar(tmp_path / cifar10.ARCHIVE, {bad_name: b"x", **members})
    with pytest.raises(ValueError, match="unsafe member path"):
        cifar10.load_from(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [cifar10.ARCHIVE]


def test_cifar10_archive_lacking_a_batch(tmp_path):
    blobs, _ = cifar_batches()
    del blobs["test_batch.bin"]
    write_tar(tmp_path / cifar10.ARCHIVE,
              {f"{cifar10.BATCHES}/{name}": data for name, data in blobs.items()})
    with pytest.raises(ValueError, match="lacks cifar-10-batches-bin/test_batch.bin"):
        cifar10.load_from(tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cifar10_corrupt_archive(tmp_path, damage):
    blobs, _ = cifar_batches()
    path = write_tar(tmp_path / cifar10.ARCHIVE,
                     {f"{cifar10.BATCHES}/{name}": data for name, data in blobs.items()})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"garbage" * 100)
    with pytest.raises(ValueError, match=f"{cifar10.ARCHIVE}: corrupt or truncated"):
        cifar10.load_from(tmp_path)


def test_cifar10_missing_files(tmp_path):
    assert cifar10.missing_files(tmp_path) == [cifar10.WANTED]
    write(tmp_path / cifar10.BATCHES / "data_batch_1.bin", b"")
    assert "cifar-10-batches-bin/test_batch.bin" in cifar10.missing_files(tmp_path)
    with pytest.raises(FileNotFoundError):
        cifar10.load_from(tmp_path)


def test_cifar10_load_data_from_env_and_nowhere(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as info:
        cifar10.load_data(tmp_path / "given")
    message = str(info.value)
    assert f"{tmp_path / 'given'} (the path argument): no such folder" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert f"{_files.cache_folder('cifar10')} (the cache)" in message

    blobs, expected = cifar_batches()
    for name, data in blobs.items():
        write(tmp_path / "data" / "cifar10" / cifar10.BATCHES / name, data)
    monkeypatch.setenv("FASTCONV_DATA", str(tmp_path / "data"))
    assert_same(cifar10.load_data(), expected)


# ------------------------------------------------------------------------- real MNIST


def real_mnist_folder() -> Path | None:
    if not REAL_DATA:
        return None
    folder = Path(REAL_DATA) / "mnist"
    return folder if folder.is_dir() and not mnist.missing_files(folder) else None


@pytest.mark.skipif(
    real_mnist_folder() is None,
    reason="set FASTCONV_DATA to a folder whose mnist/ subfolder holds the real MNIST files",
)
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("FASTCONV_DATA", REAL_DATA)
    (x_train, y_train), (x_test, y_test) = mnist.load_data()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert all(a.dtype == np.uint8 for a in (x_train, y_train, x_test, y_test))
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    assert abs(x_train.mean() / 255.0 - 0.1307) < 1e-3
    # The checksums used to verify downloads match the real files.
    for remote in mnist.REMOTES:
        _files.verify(real_mnist_folder() / remote.name, remote)
