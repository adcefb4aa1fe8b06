"""Callbacks the training CLI adds: a progress line per epoch, and the confusion matrix of every evaluation epoch."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

from pytorch_lightning import Callback, LightningModule, Trainer

from dan.fileio import atomic_path

if TYPE_CHECKING:
    from dan.training.module import DANModule

__all__ = ["ConfusionMatrixWriter", "EpochSummary"]


class ConfusionMatrixWriter(Callback):
    """Write ``confusion/<stage>_epoch<NNN>.csv`` (rows true class, columns predicted) in the log folder.

    Only rank 0 writes; the matrix is already summed over all ranks by torchmetrics.
    """

    def _write(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        module = cast("DANModule", pl_module)  # the training CLI adds this callback to DANModule runs
        matrix = module.last_confusion.get(stage)
        if matrix is None or trainer.sanity_checking:
            return
        log_dir = trainer.log_dir  # a collective call under DDP: every rank must make it
        if not trainer.is_global_zero:
            return
        root = Path(log_dir or trainer.default_root_dir) / "confusion"
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{stage}_epoch{trainer.current_epoch:03d}.csv"
        assert module.model.labels is not None  # DANModule sets them
        names = list(module.model.labels)
        with atomic_path(path, "confusion CSV") as tmp, open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["true\\pred", *names])
            for name, row in zip(names, matrix.tolist()):
                writer.writerow([name, *row])

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")


class EpochSummary(Callback):
    """Print one line per training epoch (rank 0): losses, accuracies, learning rate and seconds.

    Example line::

        epoch 3/12  train/loss 0.912  train/acc 0.684  val/loss 0.655  val/acc 0.771 (best 0.771)  lr 1.8e-03
            41 s (validation 3 s)

    (on one line).

    It replaces the progress bar where there is no terminal to draw one (logs, CI, ``nohup``). The
    seconds of an epoch a run was resumed in count from the resume (``... 12 s since the resume``).
    """

    _KEYS = ("train/loss", "train/acc", "val/loss", "val/acc")

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._resumed = False  # the epoch began before this process (a mid-epoch resume)
        self._val_start: float | None = None
        self._val_seconds = 0.0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # a run resumed mid-epoch never calls on_train_epoch_start for that epoch: time it from here
        self._start, self._resumed = time.perf_counter(), True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start, self._resumed, self._val_seconds = time.perf_counter(), False, 0.0

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._val_start is not None:
            self._val_seconds += time.perf_counter() - self._val_start
            self._val_start = None

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Lightning runs the epoch's validation before this hook, so its metrics are here too
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None  # -1: by steps
        parts = [f"epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs else "")]
        for key in self._KEYS:
            value = metrics.get(f"{key}_epoch", metrics.get(key))
            if value is not None:
                parts.append(f"{key} {float(value):.3f}")
                if key == "val/acc" and "val/acc_best" in metrics:
                    parts[-1] += f" (best {float(metrics['val/acc_best']):.3f})"
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.1e}")
        seconds = f"{time.perf_counter() - self._start:.0f} s" + (" since the resume" if self._resumed else "")
        if self._val_seconds:
            seconds += f" (validation {self._val_seconds:.0f} s)"
        parts.append(seconds)
        self._resumed = False
        print("  ".join(parts), flush=True)
