"""Reader for the IDX format of MNIST and Fashion-MNIST.

An IDX file is a header followed by a dense big-endian array::

    0x00 0x00 <type> <ndim>      four bytes; read as one big-endian int they are the
                                 "magic number": 2051 for images (uint8, 3 dims),
                                 2049 for labels (uint8, 1 dim)
    <ndim> big-endian uint32     the size of each dimension
    payload                      prod(dims) items of the type, row-major, big-endian

Files may be gzipped (name ending in ``.gz``). The reader checks every part of this
layout, including the exact payload length, and raises ``ValueError`` naming the file
for anything that does not fit: it never returns an array built from a truncated,
over-long or corrupt file.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IMAGES_MAGIC", "LABELS_MAGIC", "parse_idx", "read_idx"]

IMAGES_MAGIC = 0x00000803  # 2051: uint8, 3 dimensions (n, rows, cols)
LABELS_MAGIC = 0x00000801  # 2049: uint8, 1 dimension (n,)

# IDX type byte -> big-endian NumPy dtype.
_DTYPES = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike, magic: int | None = None) -> np.ndarray:
    """Read one IDX file, raw or gzipped.

    Parameters
    ----------
    path : str or path-like
        The file. A name ending in ``.gz`` is decompressed with gzip.
    magic : int, optional
        The magic number the file must start with, e.g. ``IMAGES_MAGIC`` (2051) or
        ``LABELS_MAGIC`` (2049). By default any valid IDX header is accepted.

    Returns
    -------
    ndarray of shape dims, the header's dtype in native byte order
        A new, writable, C-contiguous array.

    Raises
    ------
    ValueError
        If the gzip stream is corrupt or truncated, or the content is not a valid IDX
        file (with ``magic``, if given). The message names the file.
    OSError
        If the file cannot be opened or read.
    """
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    return parse_idx(data, str(path), magic)


def parse_idx(data: bytes, name: str, magic: int | None = None) -> np.ndarray:
    """Parse the bytes of an IDX file; see `read_idx`.

    Parameters
    ----------
    data : bytes
        The whole (decompressed) file.
    name : str
        The file's name, for error messages.
    magic : int, optional
        The magic number the data must start with.

    Returns
    -------
    ndarray of shape dims, native byte order, writable
    """
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes is too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if magic is not None and found != magic:
        raise ValueError(
            f"{name}: magic number {found} (0x{found:08x}), expected {magic} "
            f"(0x{magic:08x}: {_describe(magic)})"
        )
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file: it starts with 0x{found:08x}, "
            f"the first two bytes must be zero"
        )
    type_code, ndim = data[2], data[3]
    if type_code not in _DTYPES:
        raise ValueError(f"{name}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{name}: truncated header: {ndim} dimensions need {header} bytes, "
            f"the file has {len(data)}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_DTYPES[type_code])
    count = math.prod(dims)
    expected = count * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        problem = "truncated" if actual < expected else "over-long"
        raise ValueError(
            f"{name}: {problem}: dimensions {dims} of {dtype.name} need {expected} "
            f"payload bytes, the file has {actual}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header)
    # astype copies: the result is writable and in native byte order.
    return array.astype(dtype.newbyteorder("=")).reshape(dims)


def _describe(magic: int) -> str:
    """Say in words what a magic number declares."""
    type_name = np.dtype(_DTYPES.get((magic >> 8) & 0xFF, "V")).name
    return f"{type_name}, {magic & 0xFF} dimensions"
