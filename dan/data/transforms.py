"""Image transforms: named pipelines from an RGB uint8 array to a normalised float32 tensor.

Every pipeline starts with the resize of :mod:`dan.preprocess` (torchvision's ``Resize`` on PIL
images: antialiased bilinear) and ends with its normalisation, so training sees inputs prepared
exactly as every inference path prepares them; ``eval`` is :func:`dan.preprocess.prepare_face`
itself. A pipeline runs whole on the CPU (``transform(rgb)``), or split at the normalisation
(:meth:`Transform.prepare`): the DataLoader workers resize and augment the uint8 image and draw the
random-erasing rectangle, and :mod:`dan.data.batch` normalises and erases whole batches on the
training device, with the same arithmetic. This is the only module that imports albumentations
(for the training augmentations only, imported when a training pipeline is built), so the
augmentation backend can change without touching anything else. Pipelines (the reference
implementation's recipes, see ``docs/design.md``):

- ``rafdb``: resize; horizontal flip; with p=0.2 both a rotation of up to 20 degrees and a crop
  after 32 px padding; normalise; random erasing (p 0.5, scale 0.02..0.25).
- ``affectnet``: resize; horizontal flip; with p=0.7 an affine transform (rotation up to 20 degrees,
  scale 0.8..1, translation up to 0.2); normalise; random erasing (p 0.5, scale 0.02..0.33).
- ``flip``: resize; horizontal flip; normalise (light, for data that is varied already, such as
  ``dan synth`` output).
- ``eval``: resize and normalise. ``none``: no augmentation, the same as ``eval``.

Every pipeline takes the model's preprocessing record (:class:`dan.preprocess.Preprocessing`: input size,
mean, std, resize filter), the one the data module builds and the model stores. Pixel amounts of the
reference recipes (the 32 px padding of the RAF-DB crop) are for 224 px inputs and scale with the
input size.

"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable

import numpy as np
import torch

from dan.errors import DanError
from dan.opencv import cv2
from dan.preprocess import Preprocessing, normalize, resize_face
from dan.vocab import RESIZE_NAMES, TRANSFORMS

__all__ = ["PIPELINES", "TRANSFORMS", "Box", "Transform"]

Steps = tuple[list, tuple[float, float] | None]
Box = tuple[int, int, int, int]
"""A random-erasing rectangle: ``(top, left, height, width)`` in pixels of the model input."""


def _plain(size: int) -> Steps:
    return [], None


def _rafdb(size: int) -> Steps:
    import albumentations as A

    # torchvision's RandomApply([RandomRotation(20), RandomCrop(size, padding=32)]) is a rotation about the
    # centre followed by an integer shift of -32..32 px per axis with zero fill: one affine warp does both.
    shift = max(1, round(32 * size / 224))  # 32 px at the reference's 224 px
    geometric = A.Affine(rotate=(-20, 20), translate_px=(-shift, shift), border_mode=cv2.BORDER_CONSTANT, fill=0, p=0.2)
    return [A.HorizontalFlip(p=0.5), geometric], (0.02, 0.25)


def _affectnet(size: int) -> Steps:
    import albumentations as A

    affine = A.Affine(
        rotate=(-20, 20),
        scale=(0.8, 1.0),
        translate_percent=(-0.2, 0.2),
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        p=0.7,
    )
    return [A.HorizontalFlip(p=0.5), affine], (0.02, 0.33)


def _flip(size: int) -> Steps:
    import albumentations as A

    return [A.HorizontalFlip(p=0.5)], None


PIPELINES: dict[str, Callable[[int], Steps]] = {
    "rafdb": _rafdb,
    "affectnet": _affectnet,
    "flip": _flip,
    "eval": _plain,
    "none": _plain,
}
"""Pipeline name (:data:`dan.vocab.TRANSFORMS`) -> its builder: input side -> (augmentations on the resized
uint8 image, random-erasing scale range or None)."""


class Transform:
    """A named pipeline: ``transform(rgb_uint8_hwc) -> float32 tensor (3, size, size)``.

    The image is resized first (:func:`dan.preprocess.resize_face`); the geometric augmentations run
    in albumentations on the resized uint8 image; then :func:`dan.preprocess.normalize` and random
    erasing (p 0.5, ratio 0.3..3.3, erased to 0 after normalising, exactly as torchvision's
    ``RandomErasing`` after ``Normalize``). :meth:`prepare` stops before the normalisation and returns
    the uint8 image and the rectangle to erase, drawn from the same random numbers in the same order,
    for :mod:`dan.data.batch` to finish on the device.

    Random state: in training every sample comes with its own seed from the sampler
    (:meth:`seed_sample`), so its augmentation does not depend on the worker that draws it, and a
    resumed epoch repeats an uninterrupted one. Without one, the pipeline seeds itself once per
    process from ``torch.initial_seed()`` (different in every worker and epoch, reproducible under
    ``seed_everything``), or from ``seed`` when given.

    Args:
        name: One of :data:`TRANSFORMS`.
        preprocessing: The model-input record (input size, mean, std, resize filter) the data module
            built and the model stores; default :class:`dan.preprocess.Preprocessing`'s defaults.
        seed: Fixed seed for the augmentations (tests, benchmarks); None derives one per process.
        ship_size: The side :meth:`prepare` resizes to and augments at (pixel amounts scaled to it),
            leaving the last resize to the input size to the device (``data.device_resize``); None:
            the input size (the exact contract). The erasing rectangle is always drawn for the input size.
    """

    def __init__(
        self,
        name: str = "eval",
        preprocessing: Preprocessing | None = None,
        seed: int | None = None,
        ship_size: int | None = None,
    ) -> None:
        if name not in TRANSFORMS:
            raise DanError(f"unknown augmentation {name!r}: choose one of {', '.join(TRANSFORMS)}")
        pre = Preprocessing() if preprocessing is None else preprocessing
        if not isinstance(pre, Preprocessing):
            raise TypeError(f"preprocessing must be a dan.preprocess.Preprocessing, not {type(pre).__name__}")
        if pre.input_size < 8:
            raise DanError(f"image_size={pre.input_size} is too small")
        if pre.resize not in RESIZE_NAMES:
            raise DanError(f"unknown resize filter {pre.resize!r}: choose one of {', '.join(RESIZE_NAMES)}")
        if ship_size is not None and ship_size < 8:
            raise DanError(f"device_resize={ship_size} is too small")
        self.name, self.pre, self.seed = name, pre, seed
        self.image_size = pre.input_size
        self.ship_size = ship_size or pre.input_size
        steps, self.erase_scale = PIPELINES[name](self.ship_size)
        self.train = bool(steps) or self.erase_scale is not None
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

    def _erase_box(self, h: int, w: int) -> Box | None:
        """torchvision's RandomErasing parameters: area share in ``erase_scale``, log-uniform aspect ratio."""
        assert self.erase_scale is not None  # called only for the pipelines that erase
        rng, (lo, hi) = self._rng, self.erase_scale
        for _ in range(10):
            area = h * w * rng.uniform(lo, hi)
            aspect = math.exp(rng.uniform(*self._log_ratio))
            eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
            if eh < h and ew < w:
                return rng.randint(0, h - eh), rng.randint(0, w - ew), eh, ew
        return None

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Box | None]:
        """The CPU part of the pipeline: resize and augment the uint8 image, draw the erasing rectangle.

        Args:
            image: RGB uint8 (H, W, 3), any size.

        Returns:
            The uint8 image (S, S, 3) the pipeline would normalise, and the rectangle it would then set to 0
            (None: no erasing). ``normalize`` of the one and zeroing the other is exactly ``self(image)``.
            With a ``ship_size`` N the image is (N, N, 3), to be resized to S before the normalisation.
        """
        if self._pid != os.getpid():
            self._reseed()
        hwc = resize_face(image, self.ship_size, self.pre.resize)  # (N, N, 3) uint8, N = S but with ship_size
        if self._compose is not None:
            hwc = self._compose(image=hwc)["image"]
        box = None
        if self.erase_scale is not None and self._rng.random() < self.erase_p:
            box = self._erase_box(self.image_size, self.image_size)
        return hwc, box

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """Transform one RGB uint8 image of shape (H, W, 3) into a (3, S, S) float32 tensor (all on the CPU)."""
        hwc, box = self.prepare(image)
        hwc = resize_face(hwc, self.image_size, self.pre.resize)  # (S, S, 3): a no-op without a ship_size
        out = torch.from_numpy(normalize(hwc, self.pre))  # (3, S, S) float32
        if box is not None:
            i, j, eh, ew = box
            out[:, i : i + eh, j : j + ew].zero_()
        return out

    def __repr__(self) -> str:
        return f"Transform(name={self.name!r}, preprocessing={self.pre!r})"
