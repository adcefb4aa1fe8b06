"""The Dataset: decode (through :mod:`dan.imaging`), crop the face box, transform, return a sample.

``dataset[i]`` is ``(image float32 (3, S, S), label int64 scalar tensor)``, the whole pipeline run on
the CPU (what ``dan evaluate`` reads); with ``device_transforms=True`` (the training data module) it is
a :func:`dan.data.batch.sample` dict: the uint8 face (3, S, S) before normalisation, the label, and the
random-erasing rectangle, for :mod:`dan.data.batch` to collate and finish on the training device. With
``with_va=True`` (a data set that can have valence and arousal) such a dict also carries the sample's
``(valence, arousal)`` as ``va``, float32 (2,), NaN where unknown; the pairs never do (``dan evaluate``
reads the targets from :attr:`FERDataset.va`). The
training sampler asks for ``dataset[(i, seed)]``, which also seeds that sample's augmentation. A file that cannot be
decoded during an epoch raises an error naming it, or with ``skip_bad_files=True`` is replaced by
another sample and counted in :attr:`FERDataset.bad_files` (shared across DataLoader workers).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from dan.data.batch import sample
from dan.data.options import ReadOptions
from dan.data.readers import read_split
from dan.data.samples import Sample, SplitData, StoredImages
from dan.data.transforms import Transform
from dan.imaging import ImageReadError, read_image
from dan.opencv import cv2
from dan.preprocess import Preprocessing

__all__ = ["FERDataset", "build_dataset", "load_sample_image"]

log = logging.getLogger(__name__)
_MAX_SUBSTITUTES = 32


def load_sample_image(
    sample: Sample, pixels: np.ndarray | None = None, index: int = 0, images: StoredImages | None = None
) -> np.ndarray:
    """Decode one sample to RGB uint8 (H, W, 3), its face box cropped.

    Args:
        sample: The sample.
        pixels: In-memory images of the split (FER2013), or None for files.
        index: The sample's index into ``pixels`` or ``images``.
        images: The split's packed images (:attr:`SplitData.images`), or None for files.

    Raises:
        ImageReadError: Missing, truncated or undecodable file, or a face box outside the image.
    """
    if pixels is not None:
        image = pixels[index]
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else np.ascontiguousarray(image)
    image = images.load(index) if images is not None else read_image(sample.source)
    if sample.box is not None:
        x, y, w, h = sample.box
        height, width = image.shape[:2]
        x0, y0, x1, y1 = max(0, x), max(0, y), min(width, x + w), min(height, y + h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            raise ImageReadError(f"{sample.source}: face box {sample.box} lies outside the {width}x{height} image")
        image = image[y0:y1, x0:x1]
    return image


class FERDataset(Dataset):
    """Samples of one split, decoded and transformed on access.

    Args:
        data: The split, as a reader returns it.
        transform: Callable from RGB uint8 (H, W, 3) to a float32 tensor; default the ``eval`` pipeline.
        skip_bad_files: Replace unreadable images by other samples (counted) instead of raising.
        device_transforms: Return :func:`dan.data.batch.sample` dicts (uint8 face, label, erasing
            rectangle) from the transform's ``prepare`` (a :class:`dan.data.transforms.Transform`), to be
            normalised on the training device; else ``(float32 image, label)`` pairs.
        with_va: Keep each sample's ``(valence, arousal)`` (:attr:`va`); the ``device_transforms`` dicts
            carry it as ``va`` (float32 (2,), NaN where unknown).

    Attributes:
        data: The :class:`SplitData` read from disk.
        label_names: Class names; label ``i`` is ``label_names[i]``.
        samples: ``(path or id, label)`` of every sample, in order.
        targets: Label of every sample, in order.
        va: ``(valence, arousal)`` of every sample, float32 (N, 2), NaN where unknown, with ``with_va``;
            else None.
    """

    def __init__(
        self,
        data: SplitData,
        transform: Callable[[np.ndarray], torch.Tensor] | None = None,
        skip_bad_files: bool = False,
        device_transforms: bool = False,
        with_va: bool = False,
    ) -> None:
        self.data = data
        self.transform = transform if transform is not None else Transform("eval")
        self.skip_bad_files = skip_bad_files
        self.device_transforms = device_transforms
        if device_transforms and not callable(getattr(self.transform, "prepare", None)):
            raise TypeError("device_transforms needs a transform with a prepare method (dan.data.transforms.Transform)")
        self.label_names: tuple[str, ...] = tuple(data.label_names)
        self.samples: list[tuple[str, int]] = [(s.source, s.label) for s in data.samples]
        self.targets: list[int] = [s.label for s in data.samples]
        self.va: np.ndarray | None = None
        if with_va:
            self.va = data.va if data.va is not None else np.full((len(data), 2), np.nan, np.float32)  # (N, 2)
        self._bad_count = torch.zeros(1, dtype=torch.int64).share_memory_()
        self._bad: set[int] = set()
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.label_names)

    @property
    def bad_files(self) -> int:
        """How many unreadable images were skipped so far (all DataLoader workers together)."""
        return int(self._bad_count.item())

    def class_counts(self) -> dict[str, int]:
        """Number of samples per class name."""
        return self.data.class_counts()

    def _on_new_process(self) -> None:
        self._pid = os.getpid()
        if get_worker_info() is not None:  # a DataLoader worker: no nested thread pools
            cv2.setNumThreads(0)
            torch.set_num_threads(1)

    def load(self, index: int) -> np.ndarray:
        """The decoded, face-cropped RGB uint8 image of sample ``index`` (no transform)."""
        return load_sample_image(self.data.samples[index], self.data.pixels, index, self.data.images)

    def _item(self, image: np.ndarray, index: int) -> tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        label = self.targets[index]
        if self.device_transforms:
            hwc, box = self.transform.prepare(image)  # type: ignore[attr-defined]  # checked in __init__
            return sample(hwc, label, box, None if self.va is None else self.va[index])
        return self.transform(image), torch.tensor(label, dtype=torch.int64)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor] | dict[str, torch.Tensor]:
        if self._pid != os.getpid():
            self._on_new_process()
        if isinstance(index, tuple):  # (index, seed) from the training sampler: seed this sample's augmentation
            index, seed = index
            seed_sample = getattr(self.transform, "seed_sample", None)
            if seed_sample is not None:
                seed_sample(seed)
        n = len(self.samples)
        candidate = index
        for attempt in range(_MAX_SUBSTITUTES + 1):
            if candidate not in self._bad:
                try:
                    image = self.load(candidate)
                except ImageReadError as err:
                    if not self.skip_bad_files:
                        raise
                    self._bad.add(candidate)
                    self._bad_count += 1
                    log.warning("skipping unreadable image: %s", err)
                else:
                    return self._item(image, candidate)
            candidate = (index + (attempt + 1) * 7919) % n  # a deterministic substitute
        raise ImageReadError(f"{self.data.source}: more than {_MAX_SUBSTITUTES} unreadable images in a row")

    def __repr__(self) -> str:
        return f"FERDataset({self.data.format}:{self.data.split}, {len(self)} samples, {self.num_classes} classes)"


def build_dataset(
    format: str,
    root: str | Path,
    split: str,
    options: ReadOptions | None = None,
    image_size: int = 224,
    augment: str = "eval",
    skip_bad_files: bool = False,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    preprocessing: Preprocessing | None = None,
) -> FERDataset:
    """Read a split of a data set and wrap it in a :class:`FERDataset` (for scripts and tests).

    Args:
        format: ``rafdb``, ``affectnet``, ``fer2013`` or ``folder``.
        root: The data set's root folder.
        split: Split name (e.g. ``train``, ``test``, ``validation``, ``PrivateTest``, ``val``).
        options: How to read it (:class:`dan.data.options.ReadOptions`); default the defaults.
        image_size: Output side in pixels.
        augment: Pipeline name (:data:`dan.data.transforms.TRANSFORMS`), ``eval`` for evaluation.
        skip_bad_files: Skip and count unreadable images instead of raising.
        mean: Normalisation mean (RGB, [0, 1]); default :class:`dan.preprocess.Preprocessing`'s (ImageNet).
        std: Normalisation standard deviation; default :class:`dan.preprocess.Preprocessing`'s.
        preprocessing: A model's whole record (size, mean, std, resize filter); overrides the three above.

    Raises:
        DanError: Anything wrong with the files, lists or arguments, before any image is decoded.
    """
    data = read_split(format, root, split, options)
    default = Preprocessing()
    pre = preprocessing or Preprocessing(input_size=image_size, mean=mean or default.mean, std=std or default.std)
    transform = Transform(augment, pre)
    return FERDataset(data, transform, skip_bad_files)
