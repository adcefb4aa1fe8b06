"""Image transforms: named pipelines from an RGB uint8 array to a normalised float32 tensor.

Every pipeline starts with the resize of :mod:`dan.preprocess` (torchvision's ``Resize`` on PIL
images: antialiased bilinear) and ends with its normalisation, so training sees inputs prepared
exactly as every inference path prepares them; ``eval`` is :func:`dan.preprocess.prepare_face`
itself. This is the only module that imports albumentations (for the training augmentations only,
imported when a training pipeline is built), so the augmentation backend can change without
touching anything else. Pipelines (the reference implementation's recipes, see ``docs/design.md``):

- ``rafdb``: resize; horizontal flip; with p=0.2 both a rotation of up to 20 degrees and a crop
  after 32 px padding; normalise; random erasing (p 0.5, scale 0.02..0.25).
- ``affectnet``: resize; horizontal flip; with p=0.7 an affine transform (rotation up to 20 degrees,
  scale 0.8..1, translation up to 0.2); normalise; random erasing (p 0.5, scale 0.02..0.33).
- ``flip``: resize; horizontal flip; normalise (light, for data that is varied already, such as
  ``dan synth`` output).
- ``eval``: resize and normalise. ``none``: no augmentation, the same as ``eval``.

Pixel amounts of the reference recipes (the 32 px padding of the RAF-DB crop) are for 224 px inputs
and scale with ``image_size``.

Test-time augmentation: :func:`tta_flip` mirrors a batch of ``eval`` tensors; average the model's
probabilities on ``batch`` and ``tta_flip(batch)``.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from dan.common import RESIZE_NAMES, DanError, Preprocessing
from dan.preprocess import normalize, resize_face

__all__ = ["TRANSFORMS", "Transform", "build_transform", "tta_flip"]

TRANSFORMS = ("rafdb", "affectnet", "flip", "eval", "none")
_PRE = Preprocessing()


def _rgb(values: Sequence[float]) -> tuple[float, float, float]:
    """Three per-channel (R, G, B) values as floats."""
    r, g, b = (float(v) for v in values)
    return r, g, b


def _pipeline(name: str, size: int) -> tuple[list, tuple[float, float] | None]:
    """The augmentations (on the resized uint8 image) and the random-erasing scale range (None: no erasing)."""
    if name in ("eval", "none"):
        return [], None
    import albumentations as A

    const = cv2.BORDER_CONSTANT
    flip = A.HorizontalFlip(p=0.5)
    if name == "rafdb":
        # torchvision's RandomApply([RandomRotation(20), RandomCrop(size, padding=32)]) is a rotation about the
        # centre followed by an integer shift of -32..32 px per axis with zero fill: one affine warp does both.
        shift = max(1, round(32 * size / 224))  # 32 px at the reference's 224 px
        geometric = A.Affine(rotate=(-20, 20), translate_px=(-shift, shift), border_mode=const, fill=0, p=0.2)
        return [flip, geometric], (0.02, 0.25)
    if name == "affectnet":
        affine = A.Affine(
            rotate=(-20, 20), scale=(0.8, 1.0), translate_percent=(-0.2, 0.2), border_mode=const, fill=0, p=0.7
        )
        return [flip, affine], (0.02, 0.33)
    return [flip], None


class Transform:
    """A named pipeline: ``transform(rgb_uint8_hwc) -> float32 tensor (3, size, size)``.

    The image is resized first (:func:`dan.preprocess.resize_face`); the geometric augmentations run
    in albumentations on the resized uint8 image; then :func:`dan.preprocess.normalize` and random
    erasing (p 0.5, ratio 0.3..3.3, erased to 0 after normalising, exactly as torchvision's
    ``RandomErasing`` after ``Normalize``).

    Random state: in training every sample comes with its own seed from the sampler
    (:meth:`seed_sample`), so its augmentation does not depend on the worker that draws it, and a
    resumed epoch repeats an uninterrupted one. Without one, the pipeline seeds itself once per
    process from ``torch.initial_seed()`` (different in every worker and epoch, reproducible under
    ``seed_everything``), or from ``seed`` when given.

    Args:
        name: One of :data:`TRANSFORMS`.
        image_size: Output side in pixels.
        mean: Per-channel RGB mean in [0, 1].
        std: Per-channel RGB standard deviation in [0, 1].
        seed: Fixed seed for the augmentations (tests, benchmarks); None derives one per process.
        resize: Resize filter (:data:`dan.common.RESIZE_NAMES`).
    """

    def __init__(
        self,
        name: str = "eval",
        image_size: int = _PRE.input_size,
        mean: Sequence[float] = _PRE.mean,
        std: Sequence[float] = _PRE.std,
        seed: int | None = None,
        resize: str = "bilinear",
    ) -> None:
        if name not in TRANSFORMS:
            raise DanError(f"unknown augmentation {name!r}: choose one of {', '.join(TRANSFORMS)}")
        if image_size < 8:
            raise DanError(f"image_size={image_size} is too small")
        if resize not in RESIZE_NAMES:
            raise DanError(f"unknown resize filter {resize!r}: choose one of {', '.join(RESIZE_NAMES)}")
        self.name, self.image_size, self.seed = name, int(image_size), seed
        self.mean, self.std = _rgb(mean), _rgb(std)
        self.pre = Preprocessing(input_size=self.image_size, mean=self.mean, std=self.std, resize=resize)
        self.train = name in ("rafdb", "affectnet", "flip")
        steps, self.erase_scale = _pipeline(name, self.image_size)
        self.erase_p, self.erase_ratio = 0.5, (0.3, 3.3)
        self._compose = None
        if steps:
            import albumentations as A

            self._compose = A.Compose(steps)
        self._log_ratio = (math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1]))
        self._rng = random.Random(seed)
        self._pid: int | None = None

    def _reseed(self, seed: int | None = None) -> None:
        self._pid = os.getpid()
        if seed is None:
            seed = int(self.seed if self.seed is not None else torch.initial_seed()) % 2**32
        if self._compose is not None:
            self._compose.set_random_seed(seed)
        self._rng = random.Random(seed + 1)

    def seed_sample(self, seed: int) -> None:
        """Seed the augmentations of the next image (the training sampler gives every sample its seed)."""
        if self.train:
            self._reseed(seed)

    def _erase(self, x: torch.Tensor) -> None:
        """torchvision's RandomErasing parameters: area share in ``erase_scale``, log-uniform aspect ratio."""
        _, h, w = x.shape
        assert self.erase_scale is not None  # called only for the pipelines that erase
        rng, (lo, hi) = self._rng, self.erase_scale
        for _ in range(10):
            area = h * w * rng.uniform(lo, hi)
            aspect = math.exp(rng.uniform(*self._log_ratio))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if eh < h and ew < w:
                i, j = rng.randint(0, h - eh), rng.randint(0, w - ew)
                x[:, i : i + eh, j : j + ew].zero_()
                return

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """Transform one RGB uint8 image of shape (H, W, 3) into a (3, S, S) float32 tensor."""
        if self._pid != os.getpid():
            self._reseed()
        hwc = resize_face(image, self.image_size, self.pre.resize)  # (S, S, 3) uint8
        if self._compose is not None:
            hwc = self._compose(image=hwc)["image"]
        out = torch.from_numpy(normalize(hwc, self.pre))  # (3, S, S) float32
        if self.erase_scale is not None and self._rng.random() < self.erase_p:
            self._erase(out)
        return out

    def __repr__(self) -> str:
        return f"Transform(name={self.name!r}, image_size={self.image_size}, mean={self.mean}, std={self.std})"


def build_transform(
    name: str = "eval",
    image_size: int = _PRE.input_size,
    mean: Sequence[float] = _PRE.mean,
    std: Sequence[float] = _PRE.std,
    seed: int | None = None,
    resize: str = "bilinear",
) -> Transform:
    """Build the named pipeline (see :class:`Transform`)."""
    return Transform(name, image_size, mean, std, seed, resize)


def tta_flip(batch: torch.Tensor) -> torch.Tensor:
    """Horizontally mirrored copy of a (B, C, H, W) or (C, H, W) image tensor (flip test-time augmentation)."""
    return batch.flip(-1)
