"""Images sent by clients: the body read under a size limit, checked, and decoded under a pixel limit.

Nothing here trusts the client: the body is counted while it streams in (a lying or missing
``Content-Length`` does not help) and must arrive within a time limit (a client trickling a few bytes
at a time is cut off), the image's width and height are read from its header before it
is decoded (a 30000 x 30000 PNG of a few KB is refused in microseconds), only the image types whose
header :func:`dan.imaging.image_size` understands are decoded, and no file name a client sends is
ever opened. Every refusal is an :class:`ApiError`: an HTTP status and a one-line message.
"""

from __future__ import annotations

import asyncio

import numpy as np
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from dan.imaging import ImageReadError, ImageTooLargeError, decode_image, image_size

__all__ = ["SUPPORTED_TYPES", "ApiError", "decode_upload", "image_from_request", "read_body"]

SUPPORTED_TYPES = "JPEG, PNG, GIF, BMP, WebP or TIFF"
_RAW_TYPES = ("image/", "application/octet-stream")


class ApiError(Exception):
    """A refused request: ``status`` is the HTTP status, the message one line for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body is larger than the limit of {limit:,} bytes")


async def read_body(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """Read the request body, refusing it as soon as it is known to exceed ``limit`` bytes.

    Args:
        request: The request.
        limit: Largest body accepted, in bytes.
        timeout: Seconds the whole body may take to arrive (None: no limit).

    Raises:
        ApiError: 413 when ``Content-Length`` or the bytes received pass ``limit``; 408 when the body
            takes longer than ``timeout``; 400 when the client disconnects or sends a malformed length.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []

    async def read() -> None:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # stop reading: the rest is never buffered
                raise _too_large(limit)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), timeout)
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before the body was complete") from None
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout:g} s") from None
    return b"".join(chunks)


async def _multipart_file(request: Request, body: bytes) -> bytes:
    async def once():
        yield body

    parser = MultiPartParser(request.headers, once(), max_files=1, max_fields=16)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        raise ApiError(422, f"malformed multipart body: {err.message}") from None
    try:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise ApiError(422, "the multipart body has no file field named 'file'")
        return await part.read()
    finally:
        await form.close()


async def image_from_request(request: Request, limit: int, timeout: float | None = None) -> bytes:
    """The image bytes of a request: multipart field ``file``, or the raw body with an image content type.

    Args:
        request: The request.
        limit: Largest body accepted, in bytes.
        timeout: Seconds the body may take to arrive (None: no limit).

    Raises:
        ApiError: 408 (too slow), 413 (too large), 415 (another content type), 422 (no file, empty).
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data" and not kind.startswith(_RAW_TYPES):
        raise ApiError(
            415,
            f"send the image as multipart field 'file' or as the raw body with an image content type, not {kind!r}"
            if kind
            else "send the image as multipart field 'file' or as the raw body with an image content type",
        )
    body = await read_body(request, limit, timeout)
    data = await _multipart_file(request, body) if kind == "multipart/form-data" else body
    if not data:
        raise ApiError(422, "the image is empty")
    return data


def decode_upload(data: bytes, max_pixels: int | None, name: str = "image") -> np.ndarray:
    """Check the header of client image bytes and decode them to an RGB uint8 array (H, W, 3).

    Args:
        data: Encoded image bytes.
        max_pixels: Largest width x height accepted (None: no limit).
        name: What to call the image in messages.

    Raises:
        ApiError: 415 for a type whose header is not understood, 413 over ``max_pixels``, 422 for a
            truncated or undecodable image.
    """
    if image_size(data) is None:
        raise ApiError(415, f"{name}: not an image of a supported type ({SUPPORTED_TYPES}) or its header is damaged")
    try:
        rgb = decode_image(data, name, max_pixels=max_pixels)
    except ImageTooLargeError as err:
        raise ApiError(413, str(err)) from None
    except ImageReadError as err:
        raise ApiError(422, str(err)) from None
    return rgb
