"""The ``packed`` format: a data set that ``dan data pack`` wrote as LitData chunks, in a folder or ``s3://``.

``data.format: packed`` with ``data.root: DIR`` or ``data.root: s3://BUCKET/PREFIX`` trains on it like
on the original: the class names, splits, roles, face crop and valence/arousal come from
``dan-pack.json``, and every sample's label, box, va and soft targets from ``SPLIT/dan-split.json``
(so the training sampler knows every label before a chunk is read). Images are read map-style:
:class:`PackedImages` asks LitData's ``StreamingDataset`` for item ``i``, which fetches the chunk
holding it (from object storage into LitData's local chunk cache, ``LITDATA_CACHE_DIR``) the first
time any sample of it is asked for, and decodes the stored bytes with :func:`dan.imaging.decode_image`.
The order, the sharding over ranks, the seeds of the augmentations and mid-epoch resume therefore stay
dan's own (:class:`dan.data.sampler.EpochSampler`): a packed split gives exactly the batches of the
original layout.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from dan.data.formats import DataFormat, FaceCrop, register
from dan.data.options import ReadOptions
from dan.data.pack import MANIFEST, PACK_VERSION, SPLIT_FILE
from dan.data.packed_store import DataSourceError, Location, litdata_storage
from dan.data.samples import Sample, SplitData
from dan.errors import DanError
from dan.imaging import ImageReadError, decode_image

__all__ = ["PackedImages", "read_pack_manifest"]


def read_pack_manifest(root: str | os.PathLike) -> dict:
    """The ``dan-pack.json`` of the packed data set at ``root`` (a folder or ``s3://`` URL).

    Raises:
        DanError: Missing (not packed, or a pack that did not finish), another version, or unreadable.
    """
    where = Location(root)
    try:
        text = where.read_bytes(MANIFEST)
    except DanError as err:
        what = "not a packed data set, or its pack did not finish"
        raise DanError(f"{where.join(MANIFEST)}: not found: {what} ({err})") from None
    try:
        manifest = json.loads(text)
    except ValueError as err:
        raise DanError(f"{where.join(MANIFEST)}: not JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("dan_pack") != PACK_VERSION:
        raise DanError(f"{where.join(MANIFEST)}: not a dan pack of version {PACK_VERSION}")
    return manifest


class PackedImages:
    """The images of one packed split, read from its chunks on demand (an :class:`dan.data.samples.StoredImages`).

    Picklable: each process (a DataLoader worker) opens its own ``StreamingDataset`` on first use.

    Args:
        url: The split's folder or URL (``ROOT/SPLIT``).
        rows: The chunk item of each sample, in order (a hold-out takes a subset).
    """

    def __init__(self, url: str, rows: np.ndarray) -> None:
        self.url, self.rows = url, rows
        self._dataset: Any = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        return {"url": self.url, "rows": self.rows, "_dataset": None, "_pid": None}

    def _open(self) -> Any:
        if self._pid != os.getpid():
            try:
                from litdata import StreamingDataset
            except ImportError:
                raise DanError(f"{self.url}: packed data needs LitData: pip install 'dan[stream]'") from None
            cache = os.environ.get("LITDATA_CACHE_DIR")
            dataset = StreamingDataset(self.url, cache_dir=cache, storage_options=litdata_storage())
            dataset._on_demand_bytes = False  # whole chunks into the cache, not one ranged GET per sample
            self._dataset, self._pid = dataset, os.getpid()
        return self._dataset

    def load(self, index: int) -> np.ndarray:
        """Sample ``index`` decoded to RGB uint8 (H, W, 3).

        Raises:
            ImageReadError: The item is not the sample it should be, or its bytes do not decode.
            DataSourceError: The chunk could not be read (one line).
        """
        row = int(self.rows[index])
        try:
            item = self._open()[row]
        except (DanError, ImageReadError):
            raise
        except Exception as err:  # LitData's download and read errors: one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise DataSourceError(f"{self.url}: cannot read item {row}: {type(err).__name__}: {first}") from None
        if int(item["index"]) != row:
            raise ImageReadError(f"{self.url}#{row}: the chunk holds item {int(item['index'])} there (a damaged pack)")
        return decode_image(bytes(item["image"]), f"{self.url}#{row}")

    def take(self, index: np.ndarray) -> PackedImages:
        """The images of samples ``index``, in that order."""
        return PackedImages(self.url, self.rows[index])


def _manifest(root: Path, _options: ReadOptions | None = None) -> dict:
    return read_pack_manifest(root)


def _read(root: Path, split: str, options: ReadOptions) -> SplitData:
    manifest = read_pack_manifest(root)
    where = Location(root)
    try:
        record = json.loads(where.read_bytes(f"{split}/{SPLIT_FILE}"))
        labels, boxes, sources = record["labels"], record["boxes"], record["sources"]
        va, soft = record["va"], record["soft"]
    except (ValueError, KeyError, TypeError) as err:
        raise DanError(f"{where.join(split, SPLIT_FILE)}: damaged ({type(err).__name__}: {err})") from None
    samples = [
        Sample(src, int(label), tuple(box) if box is not None else None, None, tuple(va[i]) if va else None)
        for i, (src, label, box) in enumerate(zip(sources, labels, boxes, strict=True))
    ]
    data = SplitData(
        format="packed",
        split=split,
        label_names=tuple(manifest["label_names"]),
        samples=samples,
        source=where.join(split),
        soft=np.asarray(soft, np.float32).reshape(len(samples), -1) if soft else None,  # (N, C)
        images=PackedImages(where.join(split), np.arange(len(samples))),
    )
    return data.checked(options.strict)


register(
    DataFormat(
        name="packed",
        title="packed",
        read=_read,
        labels=lambda root, options: tuple(_manifest(root)["label_names"]),
        splits=lambda root, options: tuple(_manifest(root)["listed"]),
        roles=lambda root, options: dict(_manifest(root)["roles"]),
        face_crop=lambda root, options: FaceCrop(**_manifest(root)["face_crop"]),
        check=_manifest,
        va=lambda root, options: bool(_manifest(root)["va"]),
    )
)
