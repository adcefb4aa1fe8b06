"""Data layer: one record per data-set layout (:mod:`dan.data.formats`), readers for each, the one
reader options object (:mod:`dan.data.options`) and the record of what a model trained on
(:mod:`dan.data.provenance`), transforms, the Dataset, the epoch sampler, the Lightning data module,
the synthetic data set and the data checker.

Never imports the model, training or inference layers (docs/design.md, layers). Heavy submodules are
imported on attribute access, so ``import dan.data`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CheckReport",
    "DataFormat",
    "FERDataModule",
    "FERDataset",
    "FORMATS",
    "ReadOptions",
    "SplitData",
    "TrainedOn",
    "Transform",
    "build_dataset",
    "check_dataset",
    "generate",
    "get_format",
    "read_split",
]

_WHERE = {
    "CheckReport": "dan.data.check",
    "DataFormat": "dan.data.formats",
    "FERDataModule": "dan.data.datamodule",
    "FERDataset": "dan.data.dataset",
    "FORMATS": "dan.data.readers",
    "ReadOptions": "dan.data.options",
    "SplitData": "dan.data.samples",
    "TrainedOn": "dan.data.provenance",
    "Transform": "dan.data.transforms",
    "build_dataset": "dan.data.dataset",
    "check_dataset": "dan.data.check",
    "generate": "dan.data.synth",
    "get_format": "dan.data.formats",
    "read_split": "dan.data.readers",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'dan.data' has no attribute {name!r}")
