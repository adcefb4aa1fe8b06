"""Training batches of uint8 faces: collated in the DataLoader workers, finished on the training device.

The workers do what needs the CPU (decode, resize, the geometric augmentations on uint8, drawing each
sample's random-erasing rectangle: :meth:`dan.data.transforms.Transform.prepare`) and ship a dict per
batch:

- ``image``: uint8 (B, 3, S, S), channels-last in memory (the layout the augmentations leave), a
  quarter of the bytes of the float32 faces they shipped before;
- ``label``: int64 (B,);
- ``erase``: int32 (B, 4), ``(top, left, height, width)`` of the rectangle to erase, ``-1`` rows for none;
- ``va``: float32 (B, 2), each face's ``(valence, arousal)``, NaN where unknown: only from a data set that
  can have them (:meth:`dan.data.formats.DataFormat.can_have_va`);
- any other key a data set adds (a tensor per sample), collated by ``torch``'s default rule.

:class:`DeviceTransform` then normalises and erases the whole batch where it lives (on the GPU after a
pinned, non-blocking copy: ``DANModule.on_after_batch_transfer``): ``(x / 255 - mean) / std`` in float32,
the same operations in the same order as :func:`dan.preprocess.normalize`, then 0 in each rectangle, as
torchvision's ``RandomErasing`` after ``Normalize``. On the CPU the result equals the all-CPU pipeline's
bit for bit; on a GPU within float rounding.

With ``data.device_resize`` the training faces arrive smaller than the model input (augmented at the size
the workers ship, RAF-DB's 100 px say) and are resized here first: torch's antialiased bilinear (or
bicubic) filter, rounded to whole levels as PIL's is (within one level of PIL's resize; on the CPU
torch's uint8 kernel, 10x faster than PIL's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import default_collate, get_worker_info

from dan.preprocess import Preprocessing

__all__ = [
    "ERASE",
    "IMAGE",
    "LABEL",
    "NO_ERASE",
    "VA",
    "DeviceTransform",
    "collate",
    "erase_boxes",
    "resize_faces",
    "sample",
]

IMAGE, LABEL, ERASE, VA = "image", "label", "erase", "va"
NO_ERASE = (-1, -1, -1, -1)
"""The ``erase`` row of a sample with nothing to erase."""


def sample(
    hwc: Any, label: int, box: Sequence[int] | None, va: Sequence[float] | None = None
) -> dict[str, torch.Tensor]:
    """One training sample as a worker ships it.

    Args:
        hwc: The prepared uint8 face, a numpy array (S, S, 3).
        label: Its class index.
        box: The rectangle to erase ``(top, left, height, width)``, or None.
        va: Its ``(valence, arousal)`` (NaN where unknown), from a data set that can have them; else None.

    Returns:
        ``image`` uint8 (3, S, S) (a channels-last view of ``hwc``'s memory), ``label`` int64 (),
        ``erase`` int32 (4,) and, when ``va`` is given, ``va`` float32 (2,).
    """
    if not (hwc.flags.writeable and hwc.flags.c_contiguous):  # PIL's output is read-only, a flip view strided
        hwc = hwc.copy()
    image = torch.from_numpy(hwc).permute(2, 0, 1)  # (S, S, 3) -> (3, S, S), no copy
    out = {
        IMAGE: image,
        LABEL: torch.tensor(label, dtype=torch.int64),
        ERASE: torch.tensor(NO_ERASE if box is None else box, dtype=torch.int32),
    }
    if va is not None:
        out[VA] = torch.tensor(va, dtype=torch.float32)
    return out


def _stack_images(images: list[torch.Tensor]) -> torch.Tensor:
    """(3, S, S) uint8 faces -> one (B, 3, S, S) channels-last tensor, in shared memory inside a worker."""
    c, h, w = images[0].shape
    shape = (len(images), h, w, c)
    if get_worker_info() is not None:  # as default_collate: written once, straight into shared memory
        storage = torch.UntypedStorage._new_shared(len(images) * h * w * c)
        strides = (h * w * c, w * c, c, 1)
        out = torch.empty(0, dtype=torch.uint8).set_(storage, 0, shape, strides)  # (B, S, S, 3)
    else:
        out = torch.empty(shape, dtype=torch.uint8)  # (B, S, S, 3)
    for i, image in enumerate(images):
        out[i].copy_(image.permute(1, 2, 0))  # (3, S, S) -> (S, S, 3): a plain copy of a channels-last face
    return out.permute(0, 3, 1, 2)  # (B, S, S, 3) -> (B, 3, S, S), channels-last strides


def collate(samples: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Collate :func:`sample` dicts: ``image`` as one channels-last uint8 batch, every other key by torch's rule.

    Keys other than ``image`` (``label``, ``erase``, and whatever a data set adds) pass through
    :func:`torch.utils.data.default_collate`.
    """
    out: dict[str, Any] = {key: default_collate([s[key] for s in samples]) for key in samples[0] if key != IMAGE}
    if IMAGE in samples[0]:
        images = [s[IMAGE] for s in samples]
        out[IMAGE] = _stack_images(images) if images[0].dtype == torch.uint8 else default_collate(images)
    return out


def erase_boxes(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Set each image's rectangle to 0, in place; on a GPU with no host synchronisation.

    Args:
        x: Images (B, C, H, W).
        boxes: int (B, 4) ``(top, left, height, width)``; rows with a height below 1 erase nothing.

    Returns:
        ``x``.
    """
    return _erase_sliced(x, boxes) if x.device.type == "cpu" else _erase_masked(x, boxes)


def _erase_sliced(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """One slice per rectangle: reading the boxes costs nothing on the CPU, and a slice beats a full mask."""
    for b, (i, j, h, w) in enumerate(boxes.tolist()):
        if h > 0 and w > 0:
            x[b, :, i : i + h, j : j + w] = 0
    return x


def _erase_masked(x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """One mask for the batch, built on the device: the boxes are never read back to the host."""
    boxes = boxes.to(torch.int64)
    top, left, height, width = boxes.unbind(1)  # each (B,)
    rows = torch.arange(x.shape[2], device=x.device)
    cols = torch.arange(x.shape[3], device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < (top + height)[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + width)[:, None])  # (B, W)
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :]  # (B, 1, H, W)
    return x.masked_fill_(mask, 0.0)


def resize_faces(images: torch.Tensor, side: int, mode: str, uint8: bool | None = None) -> torch.Tensor:
    """uint8 faces (B, 3, N, N) -> (B, 3, side, side), antialiased, in whole levels as PIL's resize gives.

    Args:
        images: uint8 faces.
        side: The model input's side.
        mode: ``bilinear`` or ``bicubic`` (the record's ``resize``).
        uint8: Use torch's uint8 kernel (PIL's arithmetic); default on the CPU. Else float arithmetic,
            clamped and rounded (GPUs): within one level of PIL's.
    """
    size = (side, side)
    if images.device.type == "cpu" if uint8 is None else uint8:
        return F.interpolate(images, size=size, mode=mode, antialias=True, align_corners=False)
    x = F.interpolate(images.float(), size=size, mode=mode, antialias=True, align_corners=False)
    return x.clamp_(0, 255).round_()  # whole levels in [0, 255], as a resized uint8 image


@contextlib.contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, one intra-op thread: these few memory-bound passes gain little from more, and where the
    cores are shared a second thread's barrier costs 50x the work (64 faces of 48 px: 0.8 ms on one thread,
    60 ms on two of a loaded 2-core machine)."""
    if device.type != "cpu" or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class DeviceTransform:
    """Normalise (and erase) a batch of uint8 faces on its device: the end of every training pipeline.

    Args:
        preprocessing: The model-input record (its ``mean`` and ``std``): the one the data module's
            workers prepared the faces by.

    The constants live on each device once (no host-to-device copy per batch). For a channels-last
    result they are whole (1, 3, H, W) planes in that layout, so each step runs over memory in order
    (broadcasting 3 channels along the innermost axis is 20 % slower on a CPU).
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.pre = preprocessing
        self._constants: dict[tuple, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def _on(self, x: torch.Tensor, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        key = (x.device, h, w) if channels_last else (x.device,)
        if key not in self._constants:
            scale = torch.tensor(255.0, dtype=torch.float32)  # a tensor, not a Python number: a true division
            mean = torch.tensor(self.pre.mean, dtype=torch.float32).view(1, 3, 1, 1)  # (1, 3, 1, 1)
            std = torch.tensor(self.pre.std, dtype=torch.float32).view(1, 3, 1, 1)  # (1, 3, 1, 1)
            if channels_last:
                mean = mean.expand(1, 3, h, w).contiguous(memory_format=torch.channels_last)  # (1, 3, H, W)
                std = std.expand(1, 3, h, w).contiguous(memory_format=torch.channels_last)  # (1, 3, H, W)
            self._constants[key] = (scale.to(x.device), mean.to(x.device), std.to(x.device))
        return self._constants[key]

    def __call__(
        self, images: torch.Tensor, boxes: torch.Tensor | None = None, channels_last: bool = False
    ) -> torch.Tensor:
        """uint8 (B, 3, S, S) -> the float32 model input (B, 3, S, S), rectangles erased.

        Args:
            images: uint8 faces, any memory layout.
            boxes: int (B, 4) rectangles to erase (``-1`` rows for none), or None.
            channels_last: Return the batch channels-last in memory (else contiguous).
        """
        with _one_thread(images.device):
            layout = torch.channels_last if channels_last else torch.contiguous_format
            side = self.pre.input_size
            if images.shape[-2:] != (side, side):  # shipped smaller (data.device_resize): the last resize
                images = resize_faces(images, side, self.pre.resize)
            scale, mean, std = self._on(images, channels_last)
            x = images.to(torch.float32, memory_format=layout)
            x.div_(scale).sub_(mean).div_(std)  # ToTensor + Normalize, as dan.preprocess.normalize
            if boxes is not None:
                erase_boxes(x, boxes)
            return x

    def batch(self, batch: dict[str, Any], channels_last: bool = False) -> dict[str, Any]:
        """The batch with ``image`` normalised and erased (and ``erase`` dropped); other keys untouched."""
        out = {k: v for k, v in batch.items() if k != ERASE}
        out[IMAGE] = self(batch[IMAGE], batch.get(ERASE), channels_last)
        return out
