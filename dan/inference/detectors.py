"""Face detectors behind one call: ``detect(frame_rgb) -> [Detection(x, y, w, h, score, landmarks), ...]``.

Frames are RGB, as everywhere inside ``dan``; a detector that needs another order converts what it
runs on itself (YuNet takes BGR: the frame scaled down for detection is converted; Haar runs on grey).
Boxes (and landmarks) are in full-frame pixel coordinates whatever resolution the detector ran at:
a large frame is scaled down so its longest side is at most ``detect_size`` before detection
(detection cost grows with the pixel count; faces stay findable), and the results are scaled back.

- :class:`YuNetDetector` (the default): OpenCV Zoo's YuNet CNN through ``cv2.FaceDetectorYN``, with
  its model file shipped in the package (MIT / Apache-2.0, trained on WIDER FACE). Finds small,
  turned and partly hidden faces, and gives five landmarks per face (eyes, nose tip, mouth corners)
  for alignment.
- :class:`HaarDetector`: OpenCV's bundled frontal-face Haar cascade (no landmarks). Fast, but on
  real photographs it also fires on torsos, logos and backgrounds.
- :class:`NoneDetector`: the whole image (its central square) is the face: aligned crops, the
  synthetic data set, and ``scripts/demos/demo_video.py`` videos.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

import numpy as np

from dan.errors import DanError
from dan.opencv import cv2
from dan.vocab import DETECTORS

__all__ = [
    "DETECTORS",
    "YUNET_MODEL",
    "Box",
    "BoxLike",
    "Detection",
    "Detector",
    "HaarDetector",
    "NoneDetector",
    "YuNetDetector",
    "create_detector",
]

YUNET_MODEL = Path(__file__).parent / "assets" / "face_detection_yunet_2023mar.onnx"


class Detection(NamedTuple):
    """One face: a box in frame pixels, the detector's score and (YuNet) five landmarks.

    It is a tuple, so ``det[:4]`` is the box ``(x, y, w, h)`` and ``det[4]`` the score.

    Attributes:
        x: Left edge.
        y: Top edge.
        w: Width.
        h: Height.
        score: Detector confidence (1 for Haar and none).
        landmarks: float32 (5, 2) ``(x, y)`` of the right eye, left eye, nose tip, right and left mouth
            corners (as the person sees them: the eye on the image's left first), or None.
    """

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0
    landmarks: np.ndarray | None = None


Box = Detection  # the name earlier versions used
BoxLike: TypeAlias = "Detection | Sequence[float]"  # a detection, or a plain (x, y, w, h[, score]) tuple


class Detector:
    """Base class: scales large frames down, runs :meth:`_detect`, maps boxes back.

    Args:
        detect_size: Longest side, in pixels, detection runs at (frames larger than this are
            scaled down; smaller ones are used as they are). None: always full resolution.
    """

    name = "base"

    def __init__(self, detect_size: int | None = 640) -> None:
        self.detect_size = detect_size
        self._scale = 1.0

    def _detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """Faces of the frame at detection resolution (RGB uint8 (h, w, 3))."""
        raise NotImplementedError

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """Find faces.

        Args:
            frame_rgb: uint8 image of shape (H, W, 3), RGB.

        Returns:
            :class:`Detection` tuples in full-frame pixels, boxes clipped to the frame, largest first.
        """
        h, w = frame_rgb.shape[:2]
        scale = 1.0
        small = frame_rgb
        if self.detect_size and max(h, w) > self.detect_size:
            scale = self.detect_size / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(frame_rgb, size, interpolation=cv2.INTER_AREA)
        self._scale = scale  # detection pixels per frame pixel, for detectors' size limits
        found = []
        for det in self._detect(small):
            x, y, bw, bh, score = det[:5]
            x0, y0 = max(0, int(round(x / scale))), max(0, int(round(y / scale)))
            x1, y1 = min(w, int(round((x + bw) / scale))), min(h, int(round((y + bh) / scale)))
            marks = det[5] if len(det) > 5 else None
            if marks is not None:
                marks = (np.asarray(marks, np.float32) / scale).reshape(5, 2)  # (5, 2) in frame pixels
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                found.append(Detection(x0, y0, x1 - x0, y1 - y0, float(score), marks))
        return sorted(found, key=lambda b: -b.w * b.h)


class HaarDetector(Detector):
    """OpenCV's frontal-face Haar cascade (``haarcascade_frontalface_default.xml``).

    Args:
        detect_size: See :class:`Detector`.
        scale_factor: Image pyramid step of ``detectMultiScale`` (1.2 is about twice as fast as 1.1).
        min_neighbors: Overlapping hits needed to keep a face (higher: fewer false faces).
        min_face: Smallest face side to look for, in full-frame pixels (the cascade's own floor is
            24 pixels at detection resolution). Larger is faster.
        cascade: Path of another cascade XML file (default: OpenCV's bundled one).
    """

    name = "haar"

    def __init__(
        self,
        detect_size: int | None = 640,
        scale_factor: float = 1.1,
        min_neighbors: int = 6,
        min_face: int = 0,
        cascade: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(detect_size)
        if cascade is None:
            data = getattr(getattr(cv2, "data", None), "haarcascades", None)
            if not data:
                raise DanError("this OpenCV build has no bundled Haar cascades: use --detector yunet or none")
            cascade = Path(data) / "haarcascade_frontalface_default.xml"
        self.classifier = cv2.CascadeClassifier(str(cascade))
        if self.classifier.empty():
            raise DanError(f"{cascade}: cannot load the Haar cascade")
        self.scale_factor, self.min_neighbors, self.min_face = scale_factor, min_neighbors, min_face

    def _detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        grey = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY) if frame_rgb.ndim == 3 else frame_rgb
        found = self.classifier.detectMultiScale(
            grey,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(max(24, round(self.min_face * self._scale)),) * 2,
        )
        return [Detection(int(x), int(y), int(w), int(h), 1.0) for x, y, w, h in (found if len(found) else [])]


class YuNetDetector(Detector):
    """OpenCV Zoo's YuNet face detector (``cv2.FaceDetectorYN``), with five landmarks per face.

    Args:
        model_path: The ONNX model; default the copy shipped in the package
            (``face_detection_yunet_2023mar.onnx``).
        detect_size: See :class:`Detector`.
        score_threshold: Minimum face score.
        nms_threshold: Non-maximum suppression IoU threshold.

    Raises:
        DanError: The file is missing, or OpenCV cannot load it.
    """

    name = "yunet"

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        detect_size: int | None = 640,
        score_threshold: float = 0.7,
        nms_threshold: float = 0.3,
    ) -> None:
        super().__init__(detect_size)
        path = Path(model_path) if model_path else YUNET_MODEL
        if not path.is_file():
            raise DanError(f"{path}: YuNet model not found")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise DanError("this OpenCV build has no FaceDetectorYN (needs OpenCV >= 4.8): use --detector haar")
        try:
            self.net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), score_threshold, nms_threshold, 5000)
        except cv2.error as err:
            raise DanError(
                f"{path}: OpenCV cannot load this YuNet model: {str(err).strip().splitlines()[-1]}"
            ) from None
        self._size: tuple[int, int] | None = None

    def _detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        h, w = frame_rgb.shape[:2]
        if self._size != (w, h):
            self.net.setInputSize((w, h))
            self._size = (w, h)
        bgr = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)  # the order YuNet was trained on
        _, faces = self.net.detect(bgr)  # (N, 15): box 4, landmarks 10, score
        if faces is None:
            return []
        return [Detection(f[0], f[1], f[2], f[3], float(f[14]), f[4:14].reshape(5, 2)) for f in faces]


class NoneDetector(Detector):
    """No detection: the whole image is one face (for aligned crops).

    A square image is used whole; of a non-square one (a video frame showing one face) the central
    square is used, so the face is not squashed.
    """

    name = "none"

    def __init__(self, detect_size: int | None = None) -> None:
        super().__init__(None)

    def detect(self, frame_rgb: np.ndarray) -> list[Detection]:
        """One box: the whole frame, or its central square when it is not square; score 1."""
        h, w = frame_rgb.shape[:2]
        side = min(w, h)
        return [Detection((w - side) // 2, (h - side) // 2, side, side, 1.0)]


def create_detector(name: str | Detector = "yunet", **kw: Any) -> Detector:
    """Make a detector by name.

    Args:
        name: ``"yunet"``, ``"haar"`` or ``"none"`` (a :class:`Detector` is returned as it is).
        **kw: Constructor arguments (``model_path`` for yunet, ``detect_size``, Haar's
            ``scale_factor``/``min_face``...); None values are dropped so the defaults apply, and
            options another detector does not take are ignored.

    Raises:
        DanError: Unknown name or a detector that cannot be set up.
    """
    if isinstance(name, Detector):
        return name
    kw = {k: v for k, v in kw.items() if v is not None}
    if name == "haar":
        kw.pop("model_path", None)
        return HaarDetector(**kw)
    if name == "yunet":
        return YuNetDetector(**{k: v for k, v in kw.items() if k not in ("scale_factor", "min_neighbors", "min_face")})
    if name == "none":
        return NoneDetector()
    raise DanError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
