"""Face alignment: five landmarks mapped onto a template by a similarity transform.

RAF-DB's aligned images (what the reference RAF-DB model was trained on) are 100 x 100 faces made
by a similarity transform (rotation, uniform scale, shift) of five landmarks: the eye centres, the
nose tip and the mouth corners. :func:`align_face` does the same with the landmarks YuNet gives.

The template is the widely used five-point face template of face-recognition pipelines (the 112 x
112 ArcFace/MTCNN one), scaled to the face size. RAF-DB's own template is not published; this one
puts the eyes at 46 % and the mouth at 82 % of the height, and we have not been able to compare it
with RAF-DB's images (the data set is licensed).
"""

from __future__ import annotations

import numpy as np

from dan.opencv import cv2

__all__ = ["FACE_TEMPLATE", "align_face", "similarity_matrix"]

# (x, y) on a 1 x 1 face: the eye on the image's left, the other eye, nose tip, left and right mouth corner
FACE_TEMPLATE = (
    np.array(
        [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
        np.float32,
    )
    / 112.0
)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) taking ``src`` onto ``dst``.

    Umeyama's closed form, without reflection.

    Args:
        src: float (N, 2) points.
        dst: float (N, 2) points.

    Returns:
        float64 (2, 3) matrix for ``cv2.warpAffine``.
    """
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d  # (N, 2)
    cov = d0.T @ s0 / len(src)  # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var = (s0**2).sum() / len(src)
    scale = (sig * sign).sum() / var if var > 0 else 1.0
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 100) -> np.ndarray:
    """Warp the face with these landmarks onto the template, as a ``size`` x ``size`` image.

    When the face is shrunk a lot (a large face in a high-resolution frame), the region around it is
    first reduced with area averaging, so the warp does not alias.

    Args:
        image: uint8 (H, W, 3) frame (any channel order).
        landmarks: (5, 2) ``(x, y)`` in the order of :data:`FACE_TEMPLATE` (YuNet's order).
        size: Output side in pixels.

    Returns:
        uint8 (size, size, 3), borders filled by replicating the frame's edge pixels.
    """
    pts = np.asarray(landmarks, np.float64).reshape(5, 2)
    dst = FACE_TEMPLATE.astype(np.float64) * size
    m = similarity_matrix(pts, dst)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if scale < 0.5:
        # the output square mapped back into the frame, and a reduced copy of that region
        inv = cv2.invertAffineTransform(m)
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], np.float64)
        back = corners @ inv[:, :2].T + inv[:, 2]  # (4, 2) frame coordinates
        h, w = image.shape[:2]
        x0, y0 = np.floor(back.min(0)).astype(int) - 2
        x1, y1 = np.ceil(back.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            f = scale * 2  # keep twice the output resolution for the final bilinear warp
            region = cv2.resize(image[y0:y1, x0:x1], None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            pts = (pts - (x0, y0)) * (region.shape[1] / (x1 - x0), region.shape[0] / (y1 - y0))
            image, m = region, similarity_matrix(pts, dst)
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
