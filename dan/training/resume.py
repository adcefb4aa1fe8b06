"""Training that survives preemption: a resumable checkpoint on SIGTERM / SIGINT and at set intervals,
and a resumed run that continues exactly where the stopped one was.

What a checkpoint written here holds besides Lightning's own state (model, optimiser, scheduler, loop
progress): the position in the epoch (batches done), and the random states of torch, numpy and
Python on every rank. On resume the training sampler skips the batches already done
(:meth:`dan.data.datamodule.FERDataModule.resume`), every sample's augmentation is seeded by the
sampler (not by a worker's running generator), and the random states are put back just before the
first resumed batch, so an interrupted-and-resumed run ends with the weights of an uninterrupted one.

SIGTERM (what a scheduler or a spot instance sends) and SIGINT (Ctrl-C) finish the current batch,
write ``last.ckpt`` and stop; ``dan fit`` then exits non-zero and says how to resume. Lightning's own
SLURM handling (SIGUSR1 with auto-requeue) keeps working.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.distributed as dist
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from dan.data.packed_store import DataSourceError
from dan.fileio import remove_stale_temps_in

if TYPE_CHECKING:
    from pytorch_lightning.loops.progress import _ProcessedTracker

__all__ = ["ResumableTraining", "rng_states", "set_rng_states"]

_KEY = "dan_resume"


def rng_states() -> dict:
    """The random states of torch (CPU and CUDA), numpy and Python in this process, in plain types and tensors
    (so a weights-only load reads them back)."""
    # the global generator is an MT19937: its legacy state is this tuple (a dict only for other bit generators)
    state_tuple = cast("tuple[str, np.ndarray, int, int, float]", np.random.get_state())
    name, keys, pos, has_gauss, gauss = state_tuple
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos)}
    numpy_state.update(has_gauss=int(has_gauss), gauss=float(gauss))
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_states(state: dict) -> None:
    """Put back what :func:`rng_states` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    """Lists back to tuples (a checkpoint round trip turns Python's random state into lists)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


class ResumableTraining(Callback):
    """Resumable checkpoints on signals and at intervals, and exact mid-epoch resumption.

    Args:
        every_n_steps: Also write ``last.ckpt`` every this many optimiser steps (None: off).
        every_minutes: Also write it every this many minutes of training (None: off).

    Attributes:
        stopped_by: ``"SIGTERM"`` or ``"SIGINT"`` when a signal stopped the run, else None.
        saved: Where the last resumable checkpoint was written, or None.
        latest: (class) The most recently made instance, for the command line's closing message.
    """

    latest: ResumableTraining | None = None

    def __init__(self, every_n_steps: int | None = None, every_minutes: float | None = None) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: must be at least 1")
        if every_minutes is not None and every_minutes <= 0:
            raise ValueError(f"every_minutes={every_minutes}: must be positive")
        self.every_n_steps, self.every_minutes = every_n_steps, every_minutes
        self.stopped_by: str | None = None
        self.saved: Path | None = None
        self._restore: dict | None = None
        self._last_save = time.monotonic()
        self._old_sigint: Callable[[int, FrameType | None], Any] | int | None = None
        self._trainer: Trainer | None = None
        ResumableTraining.latest = self

    # ----------------------------------------------------------------------------------- signals
    def _on_sigint(self, signum, frame) -> None:
        if self.stopped_by is not None and self._old_sigint is not None:  # a second Ctrl-C: the default
            signal.signal(signal.SIGINT, self._old_sigint)
            raise KeyboardInterrupt
        self.stopped_by = "SIGINT"
        if self._trainer is not None:
            self._trainer._signal_connector.received_sigterm = True  # finish the batch, then stop

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._trainer = trainer
        self._last_save = time.monotonic()
        if trainer.is_global_zero:
            self._remove_stale_temps(trainer)
        if os.name != "nt" and hasattr(signal, "SIGINT"):
            try:
                self._old_sigint = signal.signal(signal.SIGINT, self._on_sigint)
            except ValueError:  # not the main thread
                self._old_sigint = None

    @staticmethod
    def _remove_stale_temps(trainer: Trainer) -> None:
        """Remove temporary files of checkpoint saves killed mid-write (``kill -9``) from this run's checkpoint
        folders and from the folder of the checkpoint it resumes from (which the new run does not write to)."""
        folders = {
            str(cb.dirpath) for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath
        }
        if trainer.ckpt_path:  # the local file dan.training.ckpt_path resolved
            folders.add(str(Path(trainer.ckpt_path).parent))
        for folder in sorted(f for f in folders if "://" not in f):
            removed = remove_stale_temps_in(folder)
            if removed:
                print(f"removed {len(removed)} temporary file(s) of killed checkpoint saves in {folder}", flush=True)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._put_back_sigint()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._put_back_sigint()
        # the data went away (an object store cut off): keep what was trained, resumable, as for a signal;
        # one process only (a checkpoint of several ranks needs all of them, and the others may be waiting)
        if isinstance(exception, DataSourceError) and trainer.world_size == 1 and trainer.global_step > 0:
            self.saved = self._last_path(trainer)
            trainer.save_checkpoint(self.saved)
            print(f"resumable checkpoint: {self.saved.resolve()}", file=sys.stderr, flush=True)

    def _put_back_sigint(self) -> None:
        if self._old_sigint is not None:
            signal.signal(signal.SIGINT, self._old_sigint)
            self._old_sigint = None

    # ----------------------------------------------------------------------------------- saving
    def _last_path(self, trainer: Trainer) -> Path:
        for cb in trainer.checkpoint_callbacks:  # the run's last.ckpt, wherever its callback puts it
            if isinstance(cb, ModelCheckpoint) and cb.monitor is None and cb.filename == "last" and cb.dirpath:
                return Path(cb.dirpath) / f"last{cb.FILE_EXTENSION}"
        return Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints" / "last.ckpt"

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        signalled = trainer.received_sigterm
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)  # any rank
            if signalled:
                trainer._signal_connector.received_sigterm = True
        if signalled and self.stopped_by is None:
            self.stopped_by = "SIGTERM"
        due = (self.every_n_steps and trainer.global_step % self.every_n_steps == 0) or (
            self.every_minutes and time.monotonic() - self._last_save >= 60 * self.every_minutes
        )
        if signalled or due:
            self.saved = self._last_path(trainer)
            trainer.save_checkpoint(self.saved)
            self._last_save = time.monotonic()

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        state = rng_states()
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            states: list = [None] * trainer.world_size
            dist.all_gather_object(states, state)  # every rank's generators, put back per rank
        else:
            states = [state]
        # Lightning types it as the base tracker; batch progress always makes the one that counts processed batches
        progress = cast("_ProcessedTracker", trainer.fit_loop.epoch_loop.batch_progress.current)
        checkpoint[_KEY] = {"epoch": trainer.current_epoch, "batches_done": progress.processed, "rng": states}

    # ----------------------------------------------------------------------------------- resuming
    def on_load_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict) -> None:
        state = checkpoint.get(_KEY)
        if not state:
            return
        self._restore = state
        done = int(state.get("batches_done", 0))
        # Lightning's data connector sets Trainer.datamodule; the class does not declare it
        datamodule = trainer.datamodule  # type: ignore[attr-defined]
        if done and hasattr(datamodule, "resume"):
            datamodule.resume(int(state["epoch"]), done)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if self._restore is None:
            return
        states = self._restore.get("rng") or []
        rank = trainer.global_rank if len(states) > trainer.global_rank else 0
        if states:  # after the loader was made (which draws from torch's generator), as in the first run
            set_rng_states(states[rank])
        self._restore = None
