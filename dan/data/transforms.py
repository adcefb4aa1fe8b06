"""Image transforms: named pipelines from an RGB uint8 array to a normalised float32 tensor.

This is the only module that imports albumentations, so the augmentation backend can change
without touching anything else. Pipelines (DESIGN.md section 5):

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

import albumentations as A
import cv2
import numpy as np
import torch

from dan.common import DanError, Preprocessing

__all__ = ["TRANSFORMS", "Transform", "build_transform", "tta_flip"]

TRANSFORMS = ("rafdb", "affectnet", "flip", "eval", "none")
_PRE = Preprocessing()


def _pipeline(name: str, size: int) -> tuple[list, tuple[float, float] | None]:
    """The geometric (uint8) part of a pipeline, and the random-erasing scale range (None: no erasing)."""
    const = cv2.BORDER_CONSTANT
    resize = A.Resize(size, size, interpolation=cv2.INTER_LINEAR)
    flip = A.HorizontalFlip(p=0.5)  # before the resize: the same result on fewer pixels
    if name == "rafdb":
        # torchvision's RandomApply([RandomRotation(20), RandomCrop(size, padding=32)]) is a rotation about the
        # centre followed by an integer shift of -32..32 px per axis with zero fill: one affine warp does both.
        shift = max(1, round(32 * size / 224))  # 32 px at the reference's 224 px
        geometric = A.Affine(rotate=(-20, 20), translate_px=(-shift, shift), border_mode=const, fill=0, p=0.2)
        return [flip, resize, geometric], (0.02, 0.25)
    if name == "affectnet":
        affine = A.Affine(
            rotate=(-20, 20), scale=(0.8, 1.0), translate_percent=(-0.2, 0.2), border_mode=const, fill=0, p=0.7
        )
        return [flip, resize, affine], (0.02, 0.33)
    if name == "flip":
        return [flip, resize], None
    return [resize], None


class Transform:
    """A named pipeline: ``transform(rgb_uint8_hwc) -> float32 tensor (3, size, size)``.

    The geometric augmentations run in albumentations on the uint8 image; normalisation, the
    HWC -> CHW layout change and random erasing (p 0.5, ratio 0.3..3.3, erased to 0 after
    normalising, exactly as torchvision's ``RandomErasing`` after ``Normalize``) are fused into one
    pass over a torch tensor, which is what makes the pipeline fast.

    Random state: albumentations keeps its own generator, which forked DataLoader workers would
    share. The pipeline re-seeds itself once per process from ``torch.initial_seed()`` (different in
    every worker and epoch, reproducible under ``seed_everything``), or from ``seed`` when given.

    Args:
        name: One of :data:`TRANSFORMS`.
        image_size: Output side in pixels.
        mean: Per-channel RGB mean in [0, 1].
        std: Per-channel RGB standard deviation in [0, 1].
        seed: Fixed seed for the augmentations (tests, benchmarks); None derives one per process.
    """

    def __init__(
        self,
        name: str = "eval",
        image_size: int = _PRE.input_size,
        mean: Sequence[float] = _PRE.mean,
        std: Sequence[float] = _PRE.std,
        seed: int | None = None,
    ) -> None:
        if name not in TRANSFORMS:
            raise DanError(f"unknown augmentation {name!r}: choose one of {', '.join(TRANSFORMS)}")
        if image_size < 8:
            raise DanError(f"image_size={image_size} is too small")
        self.name, self.image_size, self.seed = name, int(image_size), seed
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self.train = name in ("rafdb", "affectnet", "flip")
        steps, self.erase_scale = _pipeline(name, self.image_size)
        self.erase_p, self.erase_ratio = 0.5, (0.3, 3.3)
        self._compose = A.Compose(steps)
        self._offset = torch.tensor([255.0 * m for m in self.mean]).view(3, 1, 1)
        self._scale = torch.tensor([1.0 / (255.0 * s) for s in self.std]).view(3, 1, 1)
        self._log_ratio = (math.log(self.erase_ratio[0]), math.log(self.erase_ratio[1]))
        self._rng = random.Random(seed)
        self._pid: int | None = None

    def _reseed(self) -> None:
        self._pid = os.getpid()
        seed = int(self.seed if self.seed is not None else torch.initial_seed()) % 2**32
        self._compose.set_random_seed(seed)
        self._rng = random.Random(seed + 1)

    def _erase(self, x: torch.Tensor) -> None:
        """torchvision's RandomErasing parameters: area share in ``erase_scale``, log-uniform aspect ratio."""
        _, h, w = x.shape
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
        hwc = self._compose(image=image)["image"]
        out = torch.empty((3, self.image_size, self.image_size), dtype=torch.float32)
        out.copy_(torch.from_numpy(hwc).permute(2, 0, 1))  # uint8 HWC -> float CHW in one pass
        out.sub_(self._offset).mul_(self._scale)
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
) -> Transform:
    """Build the named pipeline (see :class:`Transform`)."""
    return Transform(name, image_size, mean, std, seed)


def tta_flip(batch: torch.Tensor) -> torch.Tensor:
    """Horizontally mirrored copy of a (B, C, H, W) or (C, H, W) image tensor (flip test-time augmentation)."""
    return batch.flip(-1)
