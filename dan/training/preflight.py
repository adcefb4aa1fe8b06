"""What ``dan fit|validate|test`` checks before a run folder exists: the machine, the data and the start.

LightningCLI makes ``runs/<name>/version_N`` (``config.yaml``, the loggers' files) as soon as the trainer
starts; a refusal after that leaves a folder and uses up a version number. :class:`dan.training.cli.DANCLI`
therefore runs these checks first:

- :func:`check_accelerator` (before the trainer is built): ``trainer.accelerator`` and ``trainer.devices``
  this machine cannot give are one line saying what it has, not Lightning's traceback.
- :func:`check_run` (after the model and the data module are built, before the trainer runs): the data
  module reads the splits the subcommand needs, a valence/arousal model finds enough known rows
  (:meth:`dan.training.module.DANModule.check_data`), and ``model.init_from`` is applied (a source that
  cannot be had or does not fit is refused here).
"""

from __future__ import annotations

import importlib.util
import os

import torch

from dan.errors import DanError

__all__ = ["check_accelerator", "check_run", "machine_summary"]

_CUDA_NAMES = ("gpu", "cuda")


def machine_summary() -> str:
    """What this machine offers training, in words (``1 CUDA GPU`` or ``no CUDA GPU ...; 16 CPU cores``)."""
    cores = os.cpu_count() or 1
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"{n} CUDA GPU{'s' if n != 1 else ''} and {cores} CPU cores"
    why = "torch is built without CUDA" if torch.version.cuda is None else "no GPU or no NVIDIA driver found"
    mps = torch.backends.mps.is_available()
    return f"no CUDA GPU ({why}){', an Apple MPS device' if mps else ''} and {cores} CPU cores"


def _device_count(devices: object) -> int | None:
    """How many devices ``trainer.devices`` asks for, when it says a number (``2``, ``"2"``, ``[0, 1]``)."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return devices
    if isinstance(devices, str) and devices.strip().isdigit():
        return int(devices)
    if isinstance(devices, (list, tuple)):
        return len(devices)
    return None


def check_accelerator(accelerator: object, devices: object = "auto") -> None:
    """Refuse an accelerator (or a device count) this machine lacks, in one line naming the key.

    Args:
        accelerator: ``trainer.accelerator`` (a name; an Accelerator object is left to Lightning).
        devices: ``trainer.devices``.

    Raises:
        DanError: ``gpu``/``cuda`` without a CUDA GPU (or more GPUs than there are), ``tpu`` without
            torch_xla, ``mps`` without an Apple GPU.
    """
    if not isinstance(accelerator, str):
        return
    name = accelerator.lower()
    key = f"trainer.accelerator={accelerator}"
    fix = "use --trainer.accelerator cpu (or auto)"
    if name in _CUDA_NAMES:
        if not torch.cuda.is_available():
            raise DanError(f"{key}: this machine has {machine_summary()}; {fix}")
        wanted, have = _device_count(devices), torch.cuda.device_count()
        if wanted is not None and wanted > have:
            raise DanError(f"trainer.devices={devices}: this machine has {machine_summary()}")
    elif name == "tpu" and importlib.util.find_spec("torch_xla") is None:
        raise DanError(f"{key}: this machine has no TPU runtime (torch_xla is not installed) and {machine_summary()}")
    elif name == "mps" and not torch.backends.mps.is_available():
        raise DanError(f"{key}: this machine has no Apple MPS device; it has {machine_summary()}; {fix}")


def check_run(subcommand: str | None, model: object, datamodule: object, ckpt_path: object) -> None:
    """Read the data, check it against the model and apply ``init_from``, before any run folder exists.

    Args:
        subcommand: ``fit``, ``validate`` or ``test`` (None: nothing runs).
        model: The instantiated LightningModule (:class:`dan.training.module.DANModule` is checked; another
            class passes).
        datamodule: The instantiated data module (:class:`dan.data.datamodule.FERDataModule` is read).
        ckpt_path: The checkpoint a run resumes from: its weights win, so ``init_from`` waits for it.

    Raises:
        DanError: Whatever the data module, :meth:`DANModule.check_data` or ``init_from`` refuses.
    """
    from dan.data.datamodule import FERDataModule
    from dan.training.module import DANModule

    if subcommand not in ("fit", "validate", "test"):
        return
    if isinstance(datamodule, FERDataModule):
        datamodule.setup(subcommand)  # reads the lists only; Lightning's own call finds them read
    if isinstance(model, DANModule):
        if subcommand == "fit":
            model.check_data(datamodule)
        if subcommand == "fit" and not ckpt_path:
            model.apply_init_from()
