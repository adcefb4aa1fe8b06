"""Face sets for the int8 measurements: real photographs and the generated faces, prepared as a model wants.

- **Real faces** (:func:`real_faces`): the photographs with a face that ship with scikit-image and
  matplotlib (the astronaut, the cameraman, Grace Hopper: :func:`scripts.common.detector_set.test_set`,
  as they are, mirrored, turned by +-20 degrees, letterboxed, side by side), each face found by the
  YuNet detector shipped in ``dan`` and cut out as the model's preprocessing record says (aligned by its
  landmarks, or a box crop), each in a few exposures (darker, brighter, lower contrast, a JPEG copy);
  and the 100 faces of scikit-image's ``lfw_subset`` (Labeled Faces in the Wild, 25 x 25 grey crops),
  as they are and mirrored.
- **Generated faces** (:func:`generated_faces`): ``dan synth``'s faces (:func:`dan.data.synth.render_image`),
  seeded, the seven expressions in turn.

Every face goes through :func:`dan.preprocess.prepare_faces` with the model's record, as in ``dan predict``.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from dan.inference.crops import extract_face
from dan.inference.detectors import YuNetDetector
from dan.preprocess import Preprocessing, prepare_faces
from dan.synthface import prepared_faces

__all__ = ["generated_faces", "real_faces"]


def _exposures(face: np.ndarray) -> list[np.ndarray]:
    """The face and four copies as another camera might have taken it."""
    f = face.astype(np.float32)
    jpeg = cv2.imdecode(cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 40])[1], cv2.IMREAD_UNCHANGED)
    return [
        face,
        np.clip(f * 0.6, 0, 255).astype(np.uint8),
        np.clip(f * 1.3 + 10, 0, 255).astype(np.uint8),
        np.clip((f - 128) * 0.6 + 128, 0, 255).astype(np.uint8),
        jpeg,
    ]


def _photo_faces(pre: Preprocessing) -> list[np.ndarray]:
    """uint8 RGB face images cut out of the photographs, as ``pre`` says."""
    from scripts.common.detector_set import test_set

    detector = YuNetDetector()
    faces = []
    for _, image, truth in test_set():
        if not truth:
            continue
        for det in detector.detect(image):
            faces += _exposures(extract_face(image, det, pre))
    return faces


def _lfw_faces() -> list[np.ndarray]:
    """The 100 faces of scikit-image's ``lfw_subset`` (its first 100 images) as uint8 RGB, and mirrored."""
    import skimage.data

    grey = np.load(os.path.join(os.path.dirname(skimage.data.__file__), "lfw_subset.npy"))[:100]  # (100, 25, 25)
    faces = [cv2.cvtColor((g * 255).round().astype(np.uint8), cv2.COLOR_GRAY2RGB) for g in grey]
    return faces + [np.ascontiguousarray(f[:, ::-1]) for f in faces]


def real_faces(pre: Preprocessing) -> dict[str, np.ndarray]:
    """The real faces prepared for a model with record ``pre``: ``{"photos": (N, 3, S, S), "lfw": (200, 3, S, S)}``."""
    return {"photos": prepare_faces(_photo_faces(pre), pre), "lfw": prepare_faces(_lfw_faces(), pre)}


def generated_faces(n: int, pre: Preprocessing, seed: int) -> np.ndarray:
    """``n`` generated faces (100 px, the seven expressions in turn) prepared with ``pre``: (n, 3, S, S)."""
    return prepared_faces(n, pre, seed)
