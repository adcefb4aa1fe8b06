"""The predictor: an image in, one labelled result per face out.

Example::

    from dan.inference import Predictor
    p = Predictor("rafdb")                    # a released model by name; YuNet faces, aligned
    for face in p.predict("photo.jpg"):
        print(face.box, face.label, face.confidence)

Each face is cut out as the model's preprocessing record says (aligned by YuNet's five landmarks for
models trained on aligned faces, else the detector's box plus a margin) and prepared by
:func:`dan.preprocess.prepare_faces`, the function every other path uses too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import cv2
import numpy as np

from dan.common import Preprocessing, resolve_labels
from dan.imaging import read_image
from dan.inference.backends import AttentionBackend, Backend, has_attention, load_backend
from dan.inference.crops import prepare_batch
from dan.inference.detectors import BoxLike, Detection, Detector, NoneDetector, create_detector

__all__ = ["FaceResult", "Predictor", "softmax"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, C) logits, float32."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass
class FaceResult:
    """One face and its expression.

    Attributes:
        index: Position of the face in the image's list (largest face first).
        box: ``(x, y, w, h)`` in pixels of the full image.
        label: Most probable class name.
        confidence: Its probability.
        probabilities: Softmax over the classes, float32 (C,), in ``labels`` order.
        labels: The class names.
        score: The detector's confidence in the face (1 for Haar and none).
        attention: The heads' spatial maps (K, h, w) when asked for, else None.
    """

    index: int
    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: np.ndarray
    labels: tuple[str, ...]
    score: float = 1.0
    attention: np.ndarray | None = field(default=None, repr=False)

    @property
    def probs(self) -> dict[str, float]:
        """Probabilities as ``{class name: probability}``."""
        return {name: float(p) for name, p in zip(self.labels, self.probabilities)}

    def to_dict(self) -> dict:
        """Plain-type dict (JSON-ready): index, box, label, confidence, probabilities by name."""
        x, y, w, h = self.box
        return {
            "face": self.index,
            "box": {"x": int(x), "y": int(y), "w": int(w), "h": int(h)},
            "label": self.label,
            "confidence": float(self.confidence),
            "probabilities": self.probs,
        }


class Predictor:
    """Find every face in an image and label its expression.

    Args:
        checkpoint_or_backend: A checkpoint path (``.pt``, ``.pth``, ``.onnx``, ...) or a ready
            backend (:class:`dan.inference.backends.TorchBackend` or anything with its interface).
        detector: ``"yunet"`` (default), ``"haar"``, ``"none"`` or a :class:`Detector`.
        margin: Fraction of the face box added on each side of a box crop; None: the model's
            preprocessing record's (ignored for ``none``, where the image is the face).
        labels: Label set name or class names, overriding the checkpoint's.
        backend: ``"auto"``, ``"torch"`` or ``"onnx"`` (when a path is given).
        yunet_model: Another YuNet ONNX file (default: the one shipped in the package).
        detect_size: Longest side detection runs at (large images are scaled down for it).
        threads: CPU threads for the model runtime.
        detector_options: More detector settings, e.g. ``{"scale_factor": 1.2, "min_face": 48}``
            for a faster Haar cascade on video.
        align: Align faces by their landmarks when the model was trained on aligned faces (YuNet
            gives landmarks; False: always a box crop).
        fastest: With ``backend="auto"``, pick the faster of PyTorch and ONNX Runtime on this CPU (a
            one-time export and probe, cached; see :func:`dan.inference.auto.auto_backend`).
    """

    def __init__(
        self,
        checkpoint_or_backend: str | os.PathLike | Backend,
        detector: str | Detector = "yunet",
        margin: float | None = None,
        labels: str | Sequence[str] | None = None,
        backend: str = "auto",
        yunet_model: str | os.PathLike | None = None,
        detect_size: int | None = 640,
        threads: int | None = None,
        detector_options: dict | None = None,
        align: bool = True,
        fastest: bool = False,
    ) -> None:
        self._labels: tuple[str, ...] | None = None
        if isinstance(checkpoint_or_backend, (str, os.PathLike)):
            self.backend = load_backend(checkpoint_or_backend, backend, labels=labels, threads=threads, fastest=fastest)
        else:
            self.backend = checkpoint_or_backend
            if labels is not None:  # names for a ready backend's outputs (the backend itself is not changed)
                self._labels = resolve_labels(labels, len(self.backend.labels))
        self.detector = create_detector(
            detector, model_path=yunet_model, detect_size=detect_size, **(detector_options or {})
        )
        self.whole_image = isinstance(self.detector, NoneDetector)
        self.margin = 0.0 if self.whole_image else margin
        self.align = align and not self.whole_image

    @property
    def labels(self) -> tuple[str, ...]:
        """Class names of the model outputs."""
        return self._labels or tuple(self.backend.labels)

    @property
    def preprocessing(self) -> Preprocessing:
        """The model's input preparation."""
        return self.backend.preprocessing

    @property
    def has_attention(self) -> bool:
        """Whether the backend can return attention maps."""
        return has_attention(self.backend)

    @staticmethod
    def load_bgr(image: str | os.PathLike | np.ndarray) -> np.ndarray:
        """A path (read through :func:`dan.imaging.read_image`) or an array, as uint8 BGR (H, W, 3)."""
        if isinstance(image, (str, os.PathLike, Path)):
            return cv2.cvtColor(read_image(image), cv2.COLOR_RGB2BGR)
        image = np.asarray(image)
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return image

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        """Face boxes ``(x, y, w, h, score)`` of a BGR frame."""
        return self.detector.detect(frame_bgr)

    def classify(
        self, frame_bgr: np.ndarray, boxes: Sequence[BoxLike], attention: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the model once on all ``boxes`` of a frame.

        Args:
            frame_bgr: uint8 frame (H, W, 3), BGR.
            boxes: Face detections ``(x, y, w, h[, score[, landmarks]])``.
            attention: Also return the heads' attention maps (backends that have them).

        Returns:
            ``(probabilities, maps)``: float32 (N, C) and float32 (N, K, h, w) or None.
        """
        if len(boxes) == 0:
            return np.zeros((0, len(self.labels)), np.float32), None
        return self.run_batch(self.prepare(frame_bgr, boxes), attention)

    def prepare(self, frame_bgr: np.ndarray, boxes: Sequence[BoxLike]) -> np.ndarray:
        """The model input (N, 3, S, S) for the faces of a BGR frame (align or crop, resize, normalise)."""
        return self.faces(frame_bgr, boxes)[0]

    def faces(self, frame_bgr: np.ndarray, boxes: Sequence[BoxLike]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The model input (N, 3, S, S) and each face image (uint8 RGB, as cut out) of a BGR frame."""
        square = not self.whole_image
        return prepare_batch(frame_bgr, boxes, self.preprocessing, self.margin, square, self.align)

    def run_batch(self, batch: np.ndarray, attention: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, C) and, when asked and available, attention maps (N, K, h, w) of a batch."""
        if len(batch) == 0:
            return np.zeros((0, len(self.labels)), np.float32), None
        maps = None
        if attention and self.has_attention and hasattr(self.backend, "predict_with_attention"):
            logits, maps = self.backend.predict_with_attention(batch)
        else:
            logits = self.backend(batch)
            if attention and self.has_attention:
                maps = cast(AttentionBackend, self.backend).attention(batch)  # has_attention: it has one
        return softmax(np.asarray(logits)), maps

    def results(self, boxes: Sequence[BoxLike], probs: np.ndarray, maps: np.ndarray | None = None) -> list[FaceResult]:
        """Package boxes and probabilities (N, C) as :class:`FaceResult` objects."""
        labels = self.labels
        out = []
        for i, (box, p) in enumerate(zip(boxes, probs)):
            k = int(np.argmax(p))
            x, y, w, h = (int(v) for v in box[:4])
            score = float(box[4]) if len(box) > 4 else 1.0
            out.append(
                FaceResult(
                    index=i,
                    box=(x, y, w, h),
                    label=labels[k],
                    confidence=float(p[k]),
                    probabilities=p,
                    labels=labels,
                    score=score,
                    attention=None if maps is None else maps[i],
                )
            )
        return out

    def predict(self, image: str | os.PathLike | np.ndarray, attention: bool = False) -> list[FaceResult]:
        """Label every face of an image.

        Args:
            image: A file path, or a uint8 array in BGR order (as OpenCV gives frames).
            attention: Attach each face's attention maps (K, h, w) to its result.

        Returns:
            One :class:`FaceResult` per face, largest first; empty when no face is found.

        Raises:
            dan.imaging.ImageReadError: The path is missing or not a readable image.
        """
        frame = self.load_bgr(image)
        boxes = self.detect(frame)
        probs, maps = self.classify(frame, boxes, attention=attention)
        return self.results(boxes, probs, maps)
