"""The predictor: an image in, one labelled result per face out.

Example::

    from dan.inference import Predictor
    p = Predictor("rafdb")                    # a released model by name; YuNet faces, aligned
    for face in p.predict("photo.jpg"):
        print(face.box, face.label, face.confidence)

Each face is cut out as the model's preprocessing record says (aligned by YuNet's five landmarks for
models trained on aligned faces, else the detector's box plus a margin) and prepared by
:func:`dan.preprocess.prepare_faces`, the function every other path uses too. Images are RGB, as
everywhere inside ``dan`` (:func:`dan.imaging.read_image` gives RGB; OpenCV's BGR frames are converted
where they are read).

A model with the valence/arousal output (``va_head``) also gives each face its ``valence`` and
``arousal`` (in [-1, 1]) from the same run; for any other model they are None and every output is as
before.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dan.imaging import read_image
from dan.inference.crops import prepare_batch
from dan.inference.detectors import BoxLike, Detection, Detector, NoneDetector, create_detector
from dan.opencv import cv2
from dan.preprocess import Preprocessing
from dan.runtime.backend import Backend
from dan.vocab import resolve_labels

__all__ = ["FaceResult", "Predictor"]


@dataclass
class FaceResult:
    """One face and its expression.

    Attributes:
        index: Position of the face in the image's list (largest face first).
        box: ``(x, y, w, h)`` in pixels of the full image.
        label: Most probable class name.
        confidence: Its probability.
        probabilities: Softmax over the classes (of the logits over the model's calibrated temperature,
            if any), float32 (C,), in ``labels`` order.
        labels: The class names.
        score: The detector's confidence in the face (1 for Haar and none).
        attention: The heads' spatial maps (K, h, w) when asked for, else None.
        valence: The model's valence in [-1, 1] (a model with the output), else None.
        arousal: The model's arousal in [-1, 1] (a model with the output), else None.
    """

    index: int
    box: tuple[int, int, int, int]
    label: str
    confidence: float
    probabilities: np.ndarray
    labels: tuple[str, ...]
    score: float = 1.0
    attention: np.ndarray | None = field(default=None, repr=False)
    valence: float | None = None
    arousal: float | None = None

    @property
    def probs(self) -> dict[str, float]:
        """Probabilities as ``{class name: probability}``."""
        return {name: float(p) for name, p in zip(self.labels, self.probabilities)}

    def to_dict(self) -> dict:
        """Plain-type dict (JSON-ready): index, box, label, confidence, probabilities by name, and
        ``valence`` and ``arousal`` when the model gives them (absent otherwise)."""
        x, y, w, h = self.box
        out = {
            "face": self.index,
            "box": {"x": int(x), "y": int(y), "w": int(w), "h": int(h)},
            "label": self.label,
            "confidence": float(self.confidence),
            "probabilities": self.probs,
        }
        if self.valence is not None and self.arousal is not None:
            out.update(valence=float(self.valence), arousal=float(self.arousal))
        return out


class Predictor:
    """Find every face in an image and label its expression.

    Args:
        checkpoint_or_backend: A model file (``.pt``, ``.ckpt``, ``.safetensors``, ``.onnx``, ``.pt2``,
            ...), a released model name, or a ready backend (a :class:`dan.runtime.backend.Backend`).
        detector: ``"yunet"`` (default), ``"haar"``, ``"none"`` or a :class:`Detector`.
        margin: Fraction of the face box added on each side of a box crop; None: the model's
            preprocessing record's (ignored for ``none``, where the image is the face).
        labels: Label set name or class names, overriding the checkpoint's.
        backend: When a path is given: ``"auto"`` (default: the fastest runtime here that agrees with
            PyTorch, :func:`dan.auto.open_backend`, as ``dan predict``, ``demo`` and ``serve`` run it; a
            one-time export and timed probe, both cached), ``"torch"``, ``"onnx"`` or ``"openvino"``.
        yunet_model: Another YuNet ONNX file (default: the one shipped in the package).
        detect_size: Longest side detection runs at (large images are scaled down for it).
        threads: CPU threads for the model runtime.
        detector_options: More detector settings, e.g. ``{"scale_factor": 1.2, "min_face": 48}``
            for a faster Haar cascade on video.
        align: Align faces by their landmarks when the model was trained on aligned faces (YuNet
            gives landmarks; False: always a box crop).
        device: Where the model runs (when a path is given): ``auto`` (default: a CUDA GPU when PyTorch
            sees one, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; see
            :func:`dan.runtime.loader.load_backend`. The backend's ``device_reason`` says what was
            picked and why. Detection and cropping run on the CPU.
        int8: With ``backend="auto"`` and a checkpoint: an int8 ONNX export of it to race too (None:
            the copy ``dan export --int8`` keeps, if any; False: none).
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
        device: str = "auto",
        int8: str | os.PathLike | bool | None = None,
    ) -> None:
        self._labels: tuple[str, ...] | None = None
        if isinstance(checkpoint_or_backend, (str, os.PathLike)):
            from dan.auto.open import open_backend

            self.backend: Backend = open_backend(
                checkpoint_or_backend, backend, labels=labels, threads=threads, device=device, int8=int8
            )
        else:
            self.backend = checkpoint_or_backend
            if labels is not None:  # names for a ready backend's outputs (the backend itself is not changed)
                self._labels = resolve_labels(labels, len(self.backend.labels))
        self._detector_options = {"model_path": yunet_model, "detect_size": detect_size, **(detector_options or {})}
        self._detector_name = detector if isinstance(detector, str) else None  # a given object cannot be copied
        self.detector = create_detector(detector, **self._detector_options)
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
        return self.backend.has_attention

    @property
    def has_va(self) -> bool:
        """Whether the model gives valence and arousal (``va_head``)."""
        return self.backend.has_va

    @staticmethod
    def load_image(image: str | os.PathLike | np.ndarray) -> np.ndarray:
        """A path (read through :func:`dan.imaging.read_image`) or an RGB array, as uint8 RGB (H, W, 3).

        A grey array (H, W) gets three channels; an RGBA array loses its alpha.
        """
        if isinstance(image, (str, os.PathLike, Path)):
            return read_image(image)
        image = np.asarray(image)
        if image.ndim == 2:
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if image.shape[2] == 4:
            return cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
        return image

    def new_detector(self) -> Detector | None:
        """Another detector like :attr:`detector` (one per thread: a detector keeps state between calls),
        or None when the detector was given as an object, which cannot be copied."""
        if self._detector_name is None:
            return None
        return create_detector(self._detector_name, **self._detector_options)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """Face boxes ``(x, y, w, h, score[, landmarks])`` of an RGB frame."""
        return self.detector.detect(frame)

    def classify(
        self, frame: np.ndarray, boxes: Sequence[BoxLike], attention: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the model once on all ``boxes`` of a frame.

        Args:
            frame: uint8 frame (H, W, 3), RGB.
            boxes: Face detections ``(x, y, w, h[, score[, landmarks]])``.
            attention: Also return the heads' attention maps (backends that have them).

        Returns:
            ``(probabilities, maps)``: float32 (N, C) and float32 (N, K, h, w) or None.
        """
        if len(boxes) == 0:
            return np.zeros((0, len(self.labels)), np.float32), None
        return self.run_batch(self.prepare(frame, boxes), attention)

    def prepare(self, frame: np.ndarray, boxes: Sequence[BoxLike]) -> np.ndarray:
        """The model input (N, 3, S, S) for the faces of an RGB frame (align or crop, resize, normalise)."""
        return self.faces(frame, boxes)[0]

    def faces(self, frame: np.ndarray, boxes: Sequence[BoxLike]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The model input (N, 3, S, S) and each face image (uint8 RGB, as cut out) of an RGB frame."""
        square = not self.whole_image
        return prepare_batch(frame, boxes, self.preprocessing, self.margin, square, self.align)

    def run_batch(self, batch: np.ndarray, attention: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities (N, C) and, when asked and available, attention maps (N, K, h, w) of a batch."""
        probs, maps, _ = self.run_outputs(batch, attention)
        return probs, maps

    def run_outputs(
        self, batch: np.ndarray, attention: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """:meth:`run_batch`, and the valence/arousal (N, 2) of a model with them (else None), from one run."""
        out = self.backend.outputs(batch, attention=attention and self.has_attention)
        return self.backend.probabilities(out.logits), out.attention, out.va  # softmax(logits / T): calibrated

    def results(
        self, boxes: Sequence[BoxLike], probs: np.ndarray, maps: np.ndarray | None = None, va: np.ndarray | None = None
    ) -> list[FaceResult]:
        """Package boxes, probabilities (N, C), maps and valence/arousal (N, 2) as :class:`FaceResult` objects."""
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
                    valence=None if va is None else float(va[i, 0]),
                    arousal=None if va is None else float(va[i, 1]),
                )
            )
        return out

    def predict(self, image: str | os.PathLike | np.ndarray, attention: bool = False) -> list[FaceResult]:
        """Label every face of an image.

        Args:
            image: A file path, or a uint8 array in RGB order (H, W, 3) (an OpenCV frame is BGR:
                convert it with ``cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)``).
            attention: Attach each face's attention maps (K, h, w) to its result.

        Returns:
            One :class:`FaceResult` per face, largest first; empty when no face is found.

        Raises:
            dan.imaging.ImageReadError: The path is missing or not a readable image.
        """
        frame = self.load_image(image)
        boxes = self.detect(frame)
        if len(boxes) == 0:
            return []
        probs, maps, va = self.run_outputs(self.prepare(frame, boxes), attention)
        return self.results(boxes, probs, maps, va)
