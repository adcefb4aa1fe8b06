"""Callbacks the training tests inject through the CLI (``--trainer.callbacks+=training_helpers.CrashAt``)."""

from __future__ import annotations

from pytorch_lightning import Callback


class CrashAt(Callback):
    """Raise a RuntimeError at a given epoch and batch, like a job killed mid-epoch."""

    def __init__(self, epoch: int = 1, batch: int = 1) -> None:
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch} batch {self.batch}")


class SignalAt(Callback):
    """Send this process a signal at the start of a given global step, like a scheduler preempting the job."""

    def __init__(self, step: int = 1, signum: int = 15) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if trainer.global_step == self.step:
            import os

            os.kill(os.getpid(), self.signum)


AT_STEP: dict = {}
"""``{step: function}``: what :class:`CallAt` runs at the start of that global step (set by the test)."""


class CallAt(Callback):
    """Run ``AT_STEP[step]`` at the start of that global step (a test cuts a server's connection there)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        action = AT_STEP.pop(trainer.global_step, None)
        if action is not None:
            action()
