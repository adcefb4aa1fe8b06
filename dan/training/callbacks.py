"""Callbacks the training CLI adds: the confusion matrix of every evaluation epoch, as CSV."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from pytorch_lightning import Callback, LightningModule, Trainer

__all__ = ["ConfusionMatrixWriter"]


class ConfusionMatrixWriter(Callback):
    """Write ``confusion/<stage>_epoch<NNN>.csv`` (rows true class, columns predicted) in the log folder.

    Only rank 0 writes; the matrix is already summed over all ranks by torchmetrics.
    """

    def _write(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        matrix = pl_module.last_confusion.get(stage)
        if matrix is None or trainer.sanity_checking:
            return
        log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
        if not trainer.is_global_zero:
            return
        root = Path(log_dir or trainer.default_root_dir) / "confusion"
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{stage}_epoch{trainer.current_epoch:03d}.csv"
        tmp = path.with_name(path.name + ".tmp")
        names = list(pl_module.model.labels)
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true\\pred", *names])
            for name, row in zip(names, matrix.tolist()):
                writer.writerow([name, *row])
        os.replace(tmp, path)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")
