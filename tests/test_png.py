"""The PNG reader and writer `fastconv predict` uses (fastconv._png)."""

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from fastconv._png import read_png, write_png

DATA = Path(__file__).parent / "data"


def _pattern(h=19, w=23):
    """The pattern the Pillow-made fixtures in tests/data hold."""
    y, x = np.mgrid[0:h, 0:w]
    grey = ((x * 11 + y * 7) % 256).astype(np.uint8)
    rgb = np.stack([grey, (x * x + 3 * y) % 256, 255 - grey], -1).astype(np.uint8)
    return grey, rgb


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def _encode(image, color, depth=8, filters=(0, 1, 2, 3, 4), interlace=0, palette=None):
    """An independent PNG encoder: row y uses filter ``filters[y % len(filters)]``."""
    image = np.asarray(image)
    height, width = image.shape[:2]
    if depth < 8:
        per_byte = 8 // depth
        rows = []
        for row in image.reshape(height, width):
            padded = np.zeros(-(-width // per_byte) * per_byte, dtype=np.uint8)
            padded[:width] = row
            packed = np.zeros(len(padded) // per_byte, dtype=np.uint8)
            for k in range(per_byte):
                packed |= padded[k::per_byte] << (8 - depth * (k + 1))
            rows.append(packed)
        lines, bpp = np.array(rows, dtype=np.uint8), 1
    elif depth == 16:
        wide = image.astype(">u2").reshape(height, -1)
        lines = wide.view(np.uint8).reshape(height, -1)
        bpp = 2 * (1 if image.ndim == 2 else image.shape[2])
    else:
        lines = image.reshape(height, -1).astype(np.uint8)
        bpp = 1 if image.ndim == 2 else image.shape[2]
    raw = bytearray()
    prior = np.zeros(lines.shape[1], dtype=np.int64)
    for y, line in enumerate(lines.astype(np.int64)):
        kind = filters[y % len(filters)]
        out = []
        for i, value in enumerate(line):
            a = line[i - bpp] if i >= bpp else 0
            b = prior[i]
            c = prior[i - bpp] if i >= bpp else 0
            predictor = [0, a, b, (a + b) // 2, _paeth(a, b, c)][kind]
            out.append((value - predictor) % 256)
        raw.append(kind)
        raw.extend(bytes(out))
        prior = line
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    body = _chunk(b"IHDR", header)
    if palette is not None:
        body += _chunk(b"PLTE", np.asarray(palette, dtype=np.uint8).tobytes())
    data = zlib.compress(bytes(raw))
    # Split the image data over two IDAT chunks, as encoders may.
    body += _chunk(b"IDAT", data[:10]) + _chunk(b"IDAT", data[10:])
    return b"\x89PNG\r\n\x1a\n" + body + _chunk(b"IEND", b"")


@pytest.mark.parametrize("channels, color", [(1, 0), (3, 2), (2, 4), (4, 6)])
def test_every_filter_and_colour_type(tmp_path, channels, color):
    rng = np.random.default_rng(channels)
    shape = (13, 11) if channels == 1 else (13, 11, channels)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(_encode(image, color))
    got = read_png(path)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, image)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_bit_depth_grey(tmp_path, depth):
    rng = np.random.default_rng(depth)
    levels = rng.integers(0, 1 << depth, (7, 13), dtype=np.uint8)  # width not a byte multiple
    path = tmp_path / "x.png"
    path.write_bytes(_encode(levels, 0, depth=depth))
    expected = levels * (255 // ((1 << depth) - 1))
    np.testing.assert_array_equal(read_png(path), expected)


def test_palette_and_sixteen_bits(tmp_path):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    index = rng.integers(0, 5, (6, 9), dtype=np.uint8)
    (tmp_path / "p.png").write_bytes(_encode(index, 3, palette=palette))
    np.testing.assert_array_equal(read_png(tmp_path / "p.png"), palette[index])
    (tmp_path / "p4.png").write_bytes(_encode(index, 3, depth=4, palette=palette))
    np.testing.assert_array_equal(read_png(tmp_path / "p4.png"), palette[index])
    wide = rng.integers(0, 65536, (4, 5, 3), dtype=np.uint16)
    (tmp_path / "w.png").write_bytes(_encode(wide, 2, depth=16))
    np.testing.assert_array_equal(read_png(tmp_path / "w.png"), (wide >> 8).astype(np.uint8))


def test_files_written_by_pillow():
    """Files another encoder wrote, with its own choice of filters per row."""
    grey, rgb = _pattern()
    np.testing.assert_array_equal(read_png(DATA / "pillow_grey.png"), grey)
    np.testing.assert_array_equal(read_png(DATA / "pillow_rgb.png"), rgb)
    np.testing.assert_array_equal(read_png(DATA / "pillow_1bit.png"), np.where(grey > 100, 255, 0))
    np.testing.assert_array_equal(read_png(DATA / "pillow_palette4.png"),
                                  np.load(DATA / "pillow_palette4_rgb.npy"))


@pytest.mark.parametrize("shape", [(28, 28), (28, 28, 1), (5, 7, 3), (5, 7, 4)])
def test_write_read_round_trip(tmp_path, shape):
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    write_png(tmp_path / "x.png", image)
    np.testing.assert_array_equal(read_png(tmp_path / "x.png"), image.reshape(
        shape[:2] if shape[-1] == 1 else shape))


def test_write_clips_and_rounds_floats(tmp_path):
    write_png(tmp_path / "x.png", np.array([[-3.0, 0.4, 127.6, 300.0]]))
    np.testing.assert_array_equal(read_png(tmp_path / "x.png"), [[0, 0, 128, 255]])


def test_write_refuses_other_shapes(tmp_path):
    with pytest.raises(ValueError, match=r"\(2, 3, 5\)"):
        write_png(tmp_path / "x.png", np.zeros((2, 3, 5), dtype=np.uint8))


def _broken(tmp_path, data: bytes) -> Path:
    path = tmp_path / "broken.png"
    path.write_bytes(data)
    return path


def test_errors_name_the_file_and_the_problem(tmp_path):
    good = _encode(np.zeros((4, 4), dtype=np.uint8), 0)
    cases = {
        b"GIF89a" + good[6:]: "not a PNG",
        good[:-20]: "truncated",
        good[:40] + bytes([good[40] ^ 0xFF]) + good[41:]: "bad CRC|corrupt",
        _encode(np.zeros((4, 4), dtype=np.uint8), 0, interlace=1): "interlaced",
        _encode(np.zeros((4, 4, 2), dtype=np.uint16), 4, depth=16): "16-bit grey\\+alpha",
        _encode(np.zeros((2, 2), dtype=np.uint8), 3): "palette image without a PLTE",
        _encode(np.full((2, 2), 7, dtype=np.uint8), 3, palette=np.zeros((2, 3))):
            "palette index out of range",
    }
    for data, message in cases.items():
        path = _broken(tmp_path, data)
        with pytest.raises(ValueError, match=message) as info:
            read_png(path)
        assert str(path) in str(info.value)


def test_bad_filter_type_and_short_data(tmp_path):
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
    for raw, message in ((b"\x07\x00\x00\x00\x00\x00", "unknown filter type 7"),
                         (b"\x00\x00", "truncated")):
        data = (b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(raw))
                + _chunk(b"IEND", b""))
        with pytest.raises(ValueError, match=message):
            read_png(_broken(tmp_path, data))
    data = b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", b"not zlib") + _chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="does not inflate"):
        read_png(_broken(tmp_path, data))


def test_huge_header_is_refused_before_allocating(tmp_path):
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1 << 20, 1 << 20, 8, 0, 0, 0, 0))
    data = b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="unsupported PNG size"):
        read_png(_broken(tmp_path, data))
