"""Image sizes read from file headers, and the pixel limit that refuses decompression bombs before decoding."""

from __future__ import annotations

import io
import struct
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from dan.imaging import (
    DEFAULT_MAX_PIXELS,
    ImageReadError,
    ImageTooLargeError,
    decode_image,
    image_size,
    read_image,
)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int = 30000, height: int = 30000, rows: int = 64) -> bytes:
    """A valid-looking PNG that declares ``width`` x ``height`` grey pixels; its IDAT holds only ``rows`` rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * ((width + 1) * rows), 9)  # filter byte + zeros per row
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _encode(ext: str, image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)  # odd sizes catch swapped width / height


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_image_size_of_real_files(picture, ext) -> None:
    assert image_size(_encode(ext, picture)) == (53, 37)


def test_image_size_of_other_encodings(picture) -> None:
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "GIF")
    assert image_size(buf.getvalue()) == (53, 37)
    assert image_size(_encode(".webp", picture)[:40]) == (53, 37)  # the header alone is enough
    lossless = cv2.imencode(".webp", picture, [cv2.IMWRITE_WEBP_QUALITY, 101])[1].tobytes()
    assert lossless[12:16] == b"VP8L" and image_size(lossless) == (53, 37)
    progressive = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert image_size(progressive) == (53, 37)
    for mode, fmt in (("RGBA", "PNG"), ("RGB", "TIFF"), ("L", "BMP")):
        buf = io.BytesIO()
        Image.fromarray(picture).convert(mode).save(buf, fmt)
        assert image_size(buf.getvalue()) == (53, 37), fmt
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "TIFF", big_tiff=True)
    assert buf.getvalue()[2] == 43 and image_size(buf.getvalue()) == (53, 37)


def test_image_size_of_crafted_headers() -> None:
    assert image_size(b"GIF89a" + struct.pack("<HH", 40000, 30000)) == (40000, 30000)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x0a\x00\x00\x00" + b"\x00" * 4
    vp8x += (16383).to_bytes(3, "little") + (9999).to_bytes(3, "little")
    assert image_size(vp8x) == (16384, 10000)
    bmp = b"BM" + b"\x00" * 12 + struct.pack("<Iii", 40, 20000, -30000)  # negative height: top-down rows
    assert image_size(bmp) == (20000, 30000)
    tiff = b"MM\x00*" + struct.pack(">IH", 8, 2) + struct.pack(">HHII", 256, 4, 1, 70000)
    tiff += struct.pack(">HHIHH", 257, 3, 1, 5000, 0)  # a SHORT value sits in the first 2 bytes
    assert image_size(tiff) == (70000, 5000)
    jpeg = b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9  # APP0 is skipped
    jpeg += b"\xff\xc2" + struct.pack(">HBHH", 11, 8, 30000, 40000) + b"\x01\x01\x11\x00"
    assert image_size(jpeg) == (40000, 30000)
    assert image_size(png_bomb()) == (30000, 30000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0\x00",
        b"BM\x00",
        b"II*\x00\xff\xff\xff\x7f",
        b"P6 3 3",
        b"II+\x00\x08\x00\x00\x00" + b"\xff" * 8,
    ],  # BigTIFF pointing past any file (found by fuzzing)
)
def test_image_size_unknown_or_short_is_none(data) -> None:
    assert image_size(data) is None


def test_decode_refuses_a_png_bomb_before_decoding() -> None:
    bomb = png_bomb()
    assert len(bomb) < 100_000
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError) as info:
        decode_image(bomb, "bomb.png")
    assert time.perf_counter() - start < 0.05  # decoding 900 megapixels would take seconds and 900 MB
    message = str(info.value)
    assert message.startswith("bomb.png: image is 30000x30000 pixels (900 megapixels)") and "\n" not in message
    assert "limit of 50 megapixels" in message
    assert isinstance(info.value, ImageReadError)  # callers that catch read errors catch this too


def test_pixel_limit_is_a_parameter(tmp_path, picture) -> None:
    data = _encode(".png", picture)  # 53 x 37 = 1961 pixels
    assert decode_image(data, max_pixels=1961).shape == (37, 53, 3)
    with pytest.raises(ImageTooLargeError, match=r"x\.png: image is 53x37 pixels"):
        decode_image(data, "x.png", max_pixels=1960)
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(ImageTooLargeError, match="x.png: image is 53x37"):
        read_image(path, max_pixels=100)
    assert read_image(path, max_pixels=None).shape == (37, 53, 3)
    assert read_image(path).shape == (37, 53, 3) and DEFAULT_MAX_PIXELS >= 40_000_000


def test_no_limit_still_decodes_small_bombs() -> None:
    """With max_pixels=None the header is not consulted: a small declared size decodes as usual."""
    small = png_bomb(width=300, height=200, rows=200)
    assert decode_image(small, max_pixels=None).shape == (200, 300, 3)
    with pytest.raises(ImageTooLargeError):
        decode_image(small, max_pixels=300 * 200 - 1)
