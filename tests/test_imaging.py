"""The decode path: bytes after a complete image are accepted, a real truncation is still an error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data

from dan.imaging import ImageReadError, decode_image, is_truncated, read_image

ENCODINGS = [
    (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
    (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
    (".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]),
    (".png", []),
]


@pytest.mark.parametrize(("suffix", "params"), ENCODINGS)
def test_trailing_bytes_are_fine_and_truncation_is_caught(suffix: str, params: list[int], tmp_path) -> None:
    bgr = cv2.cvtColor(skimage.data.astronaut()[::2, ::2], cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(suffix, bgr, params)
    data = buf.tobytes()
    # a phone's motion photo: a video after the image; a camera's trailer; markers in the trailer too
    trailer = b"\xff\xd8\xff\xe1MotionPhoto_Data" + bytes(range(256)) * 8 + b"\xff\xd9junk"
    path = tmp_path / f"motion{suffix}"
    path.write_bytes(data + trailer)
    assert not is_truncated(data + trailer)
    np.testing.assert_array_equal(read_image(path), decode_image(data))
    for cut in (len(data) // 3, len(data) - 1):
        assert is_truncated(data[:cut])
        with pytest.raises(ImageReadError, match="truncated image"):
            decode_image(data[:cut], "cut" + suffix)


def test_jpeg_scan_walk_skips_stuffing_restarts_and_fill_bytes():
    """The end of a scan is the first real marker: not FF 00 (stuffing), FF D0..D7 (restart) or FF FF (fill)."""
    import cv2
    import numpy as np

    from dan.imaging import is_truncated

    ok, enc = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = enc.tobytes()
    sos = data.index(b"\xff\xda")
    head = data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")]
    scan = b"\x12\xff\x00\x34\xff\xd3\x56\xff\x00" * 1000  # stuffed bytes and restart markers only
    assert is_truncated(head + scan)  # no end-of-image: cut short
    assert is_truncated(head + scan + b"\xff\xff\xff")  # fill bytes are no marker
    assert not is_truncated(head + scan + b"\xff\xff\xd9")  # fill bytes, then EOI
    assert not is_truncated(head + scan + b"\xff\xd9" + b"trailer")  # bytes after the image are fine
