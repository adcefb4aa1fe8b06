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
