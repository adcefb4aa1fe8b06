"""The one image decode path for training, evaluation, prediction and the demo.

Every image the project reads goes through :func:`read_image` (files) or :func:`decode_image`
(bytes): OpenCV decodes it, applies the EXIF orientation, turns grey, RGBA and 16-bit images into
8-bit RGB, and a truncated JPEG or PNG is an error instead of a grey-filled picture (OpenCV only
warns about those). Before decoding, the width and height are read from the file's header
(:func:`image_size`) and an image of more than ``max_pixels`` pixels is refused: a small PNG can
declare 30000 x 30000 pixels and would take gigabytes to decode (a decompression bomb). An image whose
size cannot be read from its header (another type, which OpenCV would pick by content whatever the file
is called, or a header damaged in a way the decoder forgives) is refused too. Behind that check,
OpenCV enforces the same limit itself (``OPENCV_IO_MAX_IMAGE_PIXELS``, set by :mod:`dan.opencv`
before cv2 loads).
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dan.errors import DanError
from dan.opencv import DEFAULT_MAX_PIXELS, cv2

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageReadError",
    "ImageTooLargeError",
    "SUPPORTED_TYPES",
    "decode_image",
    "image_size",
    "is_truncated",
    "list_images",
    "read_image",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """The image files (by suffix, any case) in ``folder`` (and its subfolders when ``recursive``), sorted.

    Hidden files (a leading dot, such as the temporary files ``dan`` writes) are left out.
    """
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in Path(folder).glob(pattern)
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


SUPPORTED_TYPES = "JPEG, PNG, GIF, BMP, WebP or TIFF"  # the types whose size image_size reads
# JPEG start-of-frame markers (baseline, progressive, lossless, ...); C4, C8 and CC are other segments
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0..7 have no length field


_TRUNCATED = "{name}: truncated image (the file ends before the image data does)"


class ImageReadError(DanError):
    """An image file that is missing, truncated or not an image; the message names the file."""


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than allowed; refused before decoding."""


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the first start-of-frame segment of JPEG bytes."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:  # bytes where a marker must be: libjpeg skips them (with a warning), so do we
            i = data.find(b"\xff", i)
            if i < 0:
                return None
            continue
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker in _JPEG_STANDALONE or marker == 0x00:  # no length field (FF 00 is skipped as garbage)
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        (length,) = struct.unpack_from(">H", data, i + 2)
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack_from(">HH", data, i + 5)  # after length (2) and precision (1)
            return width, height
        i += 2 + length
    return None


# TIFF field types libtiff accepts for the width and height: BYTE, SHORT, LONG, SBYTE, SSHORT, SLONG,
# IFD, LONG8, SLONG8, IFD8, as (struct code, size)
_TIFF_INTS = {
    1: ("B", 1),
    3: ("H", 2),
    4: ("I", 4),
    6: ("b", 1),
    8: ("h", 2),
    9: ("i", 4),
    13: ("I", 4),
    16: ("Q", 8),
    17: ("q", 8),
    18: ("Q", 8),
}


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """Width and height (tags 256 and 257) of the first image of TIFF or BigTIFF bytes.

    A tag given twice counts with its larger value (whichever one the decoder keeps is within it); a
    negative or non-integer value is an unreadable header (None).
    """
    order = "<" if data[:2] == b"II" else ">"
    (version,) = struct.unpack_from(order + "H", data, 2)
    big = version == 43
    try:
        if big:
            (offset,) = struct.unpack_from(order + "Q", data, 8)
            (count,) = struct.unpack_from(order + "Q", data, offset)
            start, entry, inline = offset + 8, 20, 8
        else:
            (offset,) = struct.unpack_from(order + "I", data, 4)
            (count,) = struct.unpack_from(order + "H", data, offset)
            start, entry, inline = offset + 2, 12, 4
        found: dict[int, int] = {}
        for k in range(min(count, 4096)):
            at = start + k * entry
            tag, kind = struct.unpack_from(order + "HH", data, at)
            if tag not in (256, 257):
                continue
            if kind not in _TIFF_INTS:
                return None
            code, size = _TIFF_INTS[kind]
            value_at = at + entry - inline  # the value, or its offset when it does not fit there
            if size > inline:
                (value_at,) = struct.unpack_from(order + ("Q" if big else "I"), data, value_at)
            (value,) = struct.unpack_from(order + code, data, value_at)
            if value < 0:
                return None
            found[tag] = max(found.get(tag, 0), value)
    except (struct.error, OverflowError):  # the header points past the end of the data (or of any file)
        return None
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    """Canvas width and height of WebP bytes (VP8X, lossy VP8 or lossless VP8L first chunk)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 26)
        return w & 0x3FFF, h & 0x3FFF  # the top 2 bits are the scale
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height declared by the header of PNG, JPEG, GIF, BMP, WebP or TIFF bytes, without decoding.

    Args:
        data: The encoded file content (the first few KB are enough, except for JPEGs with large
            metadata segments before the frame header).

    Returns:
        ``(width, height)`` in pixels, or None for another format or a header that cannot be read.
    """
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack_from(">II", data, 16)
        if data[:3] == b"\xff\xd8\xff":
            return _jpeg_size(data)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack_from("<HH", data, 6)
        if data[:2] == b"BM":
            (header,) = struct.unpack_from("<I", data, 14)
            if header == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
                return struct.unpack_from("<HH", data, 18)
            w, h = struct.unpack_from("<ii", data, 18)  # h < 0: rows stored top-down
            return abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _tiff_size(data)
    except struct.error:  # shorter than its header
        return None
    return None


@contextlib.contextmanager
def quiet_opencv(level: str = "ERROR") -> Iterator[None]:
    """Keep OpenCV's own log lines (``[ WARN:0@...]``, ``[ERROR:0@...]``) below ``level`` off the terminal."""
    logging_ = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_ is None:  # pragma: no cover - every 4.x build has it
        yield
        return
    before = logging_.getLogLevel()
    logging_.setLogLevel(getattr(logging_, f"LOG_LEVEL_{level}"))
    try:
        yield
    finally:
        logging_.setLogLevel(before)


def _check_pixels(data: bytes, name: str, max_pixels: int | None) -> None:
    if max_pixels is None:
        return
    size = image_size(data)
    if size is None:  # OpenCV would pick a decoder by content and allocate whatever the file declares
        if is_truncated(data):  # cut short before its frame header: say that
            raise ImageReadError(_TRUNCATED.format(name=name))
        raise ImageReadError(
            f"{name}: not a decodable image: its size cannot be read from its header (types read: {SUPPORTED_TYPES})"
        )
    if size[0] * size[1] > max_pixels:
        w, h = size
        raise ImageTooLargeError(
            f"{name}: image is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels), more than the limit of "
            f"{max_pixels / 1e6:g} megapixels"
        )


# in entropy-coded data, 0xFF followed by anything but 00 (stuffing), D0..D7 (restart) or FF (fill) is a marker
_SCAN_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def _jpeg_end(data: bytes) -> int | None:
    """Offset just past the JPEG's end-of-image marker, or None when the data stops before it.

    Walks the segments (length-prefixed) and the entropy-coded scan data after each start-of-scan
    (skipping stuffed ``FF 00`` bytes and restart markers), so bytes after the image (a camera's
    trailer, a motion photo's video) are not mistaken for it, and a real truncation is caught.
    """
    i, n = 2, len(data)
    while i + 2 <= n:
        if data[i] != 0xFF:  # no marker where one must be: damaged, not cut short (the decoder says)
            return n
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # EOI
            return i + 2
        if marker in _JPEG_STANDALONE:
            i += 2
            continue
        if i + 4 > n:
            return None
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data until the next real marker
            found = _SCAN_MARKER.search(data, i)  # in C: a scan of stuffed bytes is no per-byte Python loop
            if found is None:
                return None
            i = found.start()
    return None


def _png_end(data: bytes) -> int | None:
    """Offset just past the PNG's IEND chunk, or None when the data stops before it (damaged data that is
    not a chunk at all is left to the decoder: it is not a truncation)."""
    i, n = 8, len(data)
    while i + 12 <= n:
        length = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8]
        if not kind.isalpha():  # not a chunk header: damaged, not cut short (the decoder says)
            return n
        end = i + 12 + length
        if end > n:
            return None
        if zlib.crc32(data[i + 4 : end - 4]) != int.from_bytes(data[end - 4 : end], "big"):
            return n  # a whole chunk with a wrong checksum: damaged, not cut short
        i = end
        if kind == b"IEND":
            return i
    return None


def is_truncated(data: bytes) -> bool:
    """True when JPEG or PNG bytes end before the image does (bytes after a complete image are fine)."""
    if data[:3] == b"\xff\xd8\xff":
        return _jpeg_end(data) is None
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return _png_end(data) is None
    return False


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to an RGB uint8 array.

    Args:
        data: The encoded file content.
        name: What to call the image in errors (usually its path).
        max_pixels: Refuse, before decoding, an image whose header declares more pixels than this, or
            whose size cannot be read from its header (None: no limit; then any type OpenCV reads is
            decoded, up to OpenCV's own limit ``OPENCV_IO_MAX_IMAGE_PIXELS``).

    Returns:
        Array of shape (H, W, 3), dtype uint8, RGB, EXIF orientation applied.

    Raises:
        ImageTooLargeError: The header declares more than ``max_pixels`` pixels (or more than
            OpenCV's own limit).
        ImageReadError: Empty, truncated or undecodable data, or a size that cannot be read.
    """
    if not data:
        raise ImageReadError(f"{name}: empty file")
    _check_pixels(data, name, max_pixels)
    if is_truncated(data):
        raise ImageReadError(_TRUNCATED.format(name=name))
    with quiet_opencv("SILENT"):  # OpenCV's own "[ERROR:0@...] imdecode_" lines: the one line below says it
        try:
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # 8-bit BGR, EXIF applied
        except cv2.error as err:  # OpenCV's own size limit (validateInputImageSize) raises
            if "CV_IO_MAX_IMAGE" not in str(err):
                raise ImageReadError(f"{name}: not a decodable image") from None
            limit = os.environ.get("OPENCV_IO_MAX_IMAGE_PIXELS", "?")
            raise ImageTooLargeError(
                f"{name}: image is larger than OpenCV's decode limit (OPENCV_IO_MAX_IMAGE_PIXELS={limit}, "
                "read when cv2 loads)"
            ) from None
    if bgr is None or bgr.size == 0:
        raise ImageReadError(f"{name}: not a decodable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (see :func:`decode_image`).

    Args:
        path: The image file.
        max_pixels: Refuse an image whose header declares more pixels than this (None: no limit).

    Raises:
        ImageTooLargeError: The header declares more than ``max_pixels`` pixels.
        ImageReadError: Missing, unreadable, truncated or undecodable file, or one whose size cannot be
            read from its header; the message names it.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"{path}: cannot read: {err.strerror or err}") from None
    return decode_image(data, str(path), max_pixels)
