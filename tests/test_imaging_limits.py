"""Image sizes read from file headers, and the pixel limit that refuses decompression bombs before decoding."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import time
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from dan.imaging import (
    ImageReadError,
    ImageTooLargeError,
    decode_image,
    image_size,
    read_image,
)
from dan.opencv import DEFAULT_MAX_PIXELS


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


# Files that declare 30000 x 30000 pixels in a form the header reader used to miss (it returned None,
# and the limit let them through to OpenCV, which decodes them: gigabytes and tens of seconds).


def stray_byte_jpeg(side: int = 30000) -> bytes:
    """A tiny valid JPEG whose frame header says ``side`` x ``side``, with one stray byte before the frame
    header (libjpeg skips it with a warning and decodes the whole declared size, grey-filled)."""
    data = _encode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    sof = data.find(b"\xff\xc0")
    data = data[: sof + 5] + struct.pack(">HH", side, side) + data[sof + 9 :]  # height, width after the precision
    return data[:sof] + b"\x00" + data[sof:]


def slong_tiff(side: int = 30000) -> bytes:
    """A small TIFF whose width and height tags have the type SLONG (libtiff reads any integer type)."""
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    assert data[:2] == b"II"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for k in range(count):
        at = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", data, at)[0]
        if tag in (256, 257, 278):  # width, height, rows per strip
            struct.pack_into("<HHIi", data, at, tag, 9 if tag != 278 else 4, 1, side)
    return bytes(data)


def jpeg2000_named_png(side: int = 30000) -> bytes:
    """A 244-byte JPEG 2000 file (OpenCV picks the decoder by content, not by the .png name) declaring
    ``side`` x ``side`` pixels in one tile: decoded, it fills the whole picture."""
    ok, encoded = cv2.imencode(".jp2", np.full((64, 64, 3), 128, np.uint8))
    assert ok
    data = bytearray(encoded.tobytes())
    siz = data.find(b"\xff\x51")  # SIZ: Xsiz, Ysiz, XOsiz, YOsiz, XTsiz, YTsiz after marker, length, Rsiz
    struct.pack_into(">IIIIII", data, siz + 6, side, side, 0, 0, side, side)
    ihdr = data.find(b"ihdr")
    struct.pack_into(">II", data, ihdr + 4, side, side)
    return bytes(data)


BOMBS = {"stray.jpg": stray_byte_jpeg, "slong.tif": slong_tiff, "j2k.png": jpeg2000_named_png}


def test_image_size_reads_what_the_decoders_read() -> None:
    assert image_size(stray_byte_jpeg()) == (30000, 30000)  # libjpeg skips bytes before a marker: so do we
    assert image_size(stray_byte_jpeg(40)) == (40, 40)
    assert image_size(slong_tiff()) == (30000, 30000)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 3) + struct.pack("<HHII", 256, 3, 1, 100)
    tiff += struct.pack("<HHII", 257, 4, 1, 100) + struct.pack("<HHII", 256, 4, 1, 70000)  # a second width
    assert image_size(tiff) == (70000, 100)  # the larger of the two: whichever libtiff keeps is within it
    tiff = b"MM\x00*" + struct.pack(">IH", 8, 2) + struct.pack(">HHII", 256, 16, 1, 34)  # LONG8: 8 bytes at 34
    tiff += struct.pack(">HHIB3x", 257, 1, 1, 9) + struct.pack(">Q", 90000)  # BYTE 9, then the LONG8 value
    assert image_size(tiff) == (90000, 9)
    negative = b"II*\x00" + struct.pack("<IH", 8, 2) + struct.pack("<HHIi", 256, 9, 1, -5)
    negative += struct.pack("<HHII", 257, 3, 1, 10)
    assert image_size(negative) is None


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_every_crafted_bomb_is_refused_before_decoding(name) -> None:
    data = BOMBS[name]()
    assert len(data) < 2000
    start = time.perf_counter()
    with pytest.raises(ImageReadError) as info:
        decode_image(data, name)
    assert time.perf_counter() - start < 0.05
    message = str(info.value)
    assert message.startswith(f"{name}: ") and "\n" not in message
    if name == "j2k.png":  # a type whose header dan does not read: refused, as dan serve does
        assert "not a decodable image" in message and "size cannot be read" in message
    else:
        assert isinstance(info.value, ImageTooLargeError) and "30000x30000" in message


def test_unknown_size_is_decoded_only_without_a_limit(picture) -> None:
    ppm = b"P6 53 37 255\n" + cv2.cvtColor(picture, cv2.COLOR_BGR2RGB).tobytes()
    assert image_size(ppm) is None
    with pytest.raises(ImageReadError, match="size cannot be read"):
        decode_image(ppm, "x.ppm")
    assert decode_image(ppm, max_pixels=None).shape == (37, 53, 3)


def test_opencv_enforces_the_limit_itself_once_dan_is_imported(tmp_path) -> None:
    """The second line of defence: dan sets OpenCV's own cap before cv2 loads, so even a decode that
    skipped dan's header check stops at the limit (an exception, at once, no memory touched)."""
    path = tmp_path / "stray.jpg"
    path.write_bytes(stray_byte_jpeg())
    code = (
        "import sys, time, resource, dan.imaging, cv2, numpy as np\n"
        "data = np.fromfile(sys.argv[1], np.uint8)\n"
        "start, peak = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        "    cv2.imdecode(data, cv2.IMREAD_COLOR)\n"
        "    print('decoded')\n"
        "except cv2.error as err:\n"
        "    print('refused' if 'CV_IO_MAX_IMAGE_PIXELS' in str(err) else err)\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak\n"
        "print(round(time.perf_counter() - start, 2), grown // 1024)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env, timeout=120)
    lines = out.stdout.split()
    assert lines[0] == "refused", out.stdout + out.stderr
    assert float(lines[1]) < 1 and int(lines[2]) < 100  # seconds, MB more than before the call (2.7 GB decoded)
