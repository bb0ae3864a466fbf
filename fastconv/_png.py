"""Reading and writing small PNG images with the standard library's zlib.

fastconv depends on NumPy alone, and `fastconv predict` must read a digit
drawn in any paint program without Pillow. PNG needs only zlib (inflate) and
five per-row filters, so a reader of the common cases is short:

- bit depth 8, colour types 0 (grey), 2 (RGB), 3 (palette), 4 (grey + alpha)
  and 6 (RGBA); 1, 2 and 4 bits for grey and palette images (black-and-white
  drawings are often saved with 1 bit); 16 bits for grey and RGB (scaled down
  to 8 bits);
- no interlacing (Adam7 is refused with a message that says how to re-save).

Everything else raises `ValueError` naming the file and what it holds. The
CRC of every chunk is checked, so a damaged file is reported, not misread.
`write_png` writes 8-bit grey or RGB(A), unfiltered: enough for tests and
for exporting digits.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

__all__ = ["read_png", "write_png"]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_COLOR_NAMES = {0: "grey", 2: "RGB", 3: "palette", 4: "grey+alpha", 6: "RGBA"}
# A 28x28 digit needs nothing near this; it refuses a header claiming
# gigapixels before anything is allocated.
_MAX_PIXELS = 1 << 26


def _chunks(data: bytes, name: str):
    pos = len(_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise ValueError(f"{name}: truncated PNG (chunk {kind!r} is cut short)")
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(kind + body) != crc:
            raise ValueError(f"{name}: corrupt PNG (bad CRC in chunk {kind!r})")
        yield kind, body
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ValueError(f"{name}: truncated PNG (no IEND chunk)")


def _paeth_row(line: np.ndarray, prior: np.ndarray, bpp: int) -> None:
    """Undo the Paeth filter of one row in place (sequential along the row)."""
    a = np.zeros(bpp, dtype=np.int16)
    c = np.zeros(bpp, dtype=np.int16)
    row = line.astype(np.int16)
    up = prior.astype(np.int16)
    for i in range(0, len(row), bpp):
        b = up[i : i + bpp]
        p = a + b - c
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
        pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        a = (row[i : i + bpp] + pred) & 0xFF
        row[i : i + bpp] = a
        c = b
    line[:] = row.astype(np.uint8)


def _unfilter(raw: bytes, height: int, stride: int, bpp: int, name: str) -> np.ndarray:
    if len(raw) < height * (stride + 1):
        raise ValueError(f"{name}: truncated PNG (image data holds {len(raw)} bytes, "
                         f"expected {height * (stride + 1)})")
    rows = np.frombuffer(raw, dtype=np.uint8, count=height * (stride + 1))
    rows = rows.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:].copy()
        if kind == 1:  # Sub: running sum along the row, per byte of a pixel
            line = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).ravel()
        elif kind == 2:  # Up
            line += prior
        elif kind == 3:  # Average of left and up: sequential along the row
            up = prior.astype(np.int16)
            row = line.astype(np.int16)
            for i in range(stride):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + up[i]) >> 1)) & 0xFF
            line = row.astype(np.uint8)
        elif kind == 4:
            _paeth_row(line, prior, bpp)
        elif kind != 0:
            raise ValueError(f"{name}: corrupt PNG (unknown filter type {kind} in row {y})")
        out[y] = line
        prior = line
    return out


def read_png(path) -> np.ndarray:
    """Read a PNG file into a uint8 array.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray of shape (h, w) for grey images, (h, w, 3) for RGB and palette
    images, (h, w, 2) for grey + alpha and (h, w, 4) for RGBA; uint8.

    Raises
    ------
    ValueError
        Not a PNG, damaged, interlaced, or a bit depth other than 8 (16 for
        grey and RGB).
    """
    name = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(_SIGNATURE):
        raise ValueError(f"{name}: not a PNG file (its first bytes are {data[:8]!r})")
    header = palette = None
    idat = []
    for kind, body in _chunks(data, name):
        if kind == b"IHDR":
            if len(body) != 13:
                raise ValueError(f"{name}: corrupt PNG (IHDR of {len(body)} bytes, expected 13)")
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
    if header is None:
        raise ValueError(f"{name}: corrupt PNG (no IHDR chunk)")
    width, height, depth, color, _, _, interlace = header
    if color not in _CHANNELS:
        raise ValueError(f"{name}: corrupt PNG (unknown colour type {color})")
    if width == 0 or height == 0 or width * height > _MAX_PIXELS:
        raise ValueError(f"{name}: unsupported PNG size {width}x{height}")
    if interlace:
        raise ValueError(f"{name}: interlaced (Adam7) PNGs are not supported; "
                         "save the image again without interlacing")
    if not (depth == 8 or (depth == 16 and color in (0, 2))
            or (depth in (1, 2, 4) and color in (0, 3))):
        raise ValueError(
            f"{name}: {depth}-bit {_COLOR_NAMES[color]} PNGs are not supported; "
            "save the image as 8-bit greyscale or RGB"
        )
    if color == 3 and palette is None:
        raise ValueError(f"{name}: corrupt PNG (palette image without a PLTE chunk)")
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as error:
        raise ValueError(f"{name}: corrupt PNG (image data does not inflate: {error})") from None
    channels = _CHANNELS[color]
    bpp = max(1, channels * depth // 8)
    stride = (width * channels * depth + 7) // 8
    pixels = _unfilter(raw, height, stride, bpp, name)
    if depth < 8:
        # Pack of 8 // depth pixels per byte, first pixel in the high bits.
        bits = np.unpackbits(pixels, axis=1)[:, : width * depth].reshape(height, width, depth)
        pixels = (bits * (1 << np.arange(depth - 1, -1, -1, dtype=np.uint8))).sum(
            axis=2, dtype=np.uint8)
        if color == 0:
            pixels = pixels * np.uint8(255 // ((1 << depth) - 1))
    if depth == 16:
        pixels = (pixels.reshape(height, width * channels, 2)[..., 0]).copy()
    image = pixels.reshape(height, width, channels)
    if color == 3:
        if image.max(initial=0) >= len(palette):
            raise ValueError(f"{name}: corrupt PNG (palette index out of range)")
        return palette[image[..., 0]]
    return image[..., 0] if channels == 1 else image


def write_png(path, image) -> None:
    """Write a uint8 image as an 8-bit PNG (no filtering, default compression).

    Parameters
    ----------
    path : str or path-like
    image : array of shape (h, w), (h, w, 1), (h, w, 3) or (h, w, 4), uint8
        Other integer or float arrays are clipped to [0, 255] and rounded.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        color = 0
    elif image.ndim == 3 and image.shape[2] in (3, 4):
        color = 2 if image.shape[2] == 3 else 6
    else:
        raise ValueError(f"image must have shape (h, w), (h, w, 3) or (h, w, 4), got {image.shape}")
    height, width = image.shape[:2]
    rows = np.ascontiguousarray(image).reshape(height, -1)
    raw = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rows], axis=1).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    data = (_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))
    with open(path, "wb") as f:
        f.write(data)
