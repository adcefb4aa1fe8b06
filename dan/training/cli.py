"""LightningCLI over :class:`DANModule` and :class:`FERDataModule`: what ``dan fit|validate|test`` runs.

Every Lightning option works (``--trainer.devices 2 --trainer.strategy ddp``, ``--trainer.precision
bf16-mixed``, ``--ckpt_path last.ckpt``, ...). The data module's class count, label names, ``trained_on``
and its one preprocessing record (``data.image_size``, ``data.mean``, ``data.std``, ``data.resize``
and the format's face crop: what the loaders apply and the checkpoints store) are linked into the
model, and callbacks are configured under their own keys:
``checkpoint`` (best by ``val/acc``), ``last_checkpoint`` (``last.ckpt`` after every epoch), ``confusion``
(a CSV per epoch), ``epoch_summary`` (a progress line per epoch), ``resume`` (SIGTERM / Ctrl-C save a
resumable ``last.ckpt`` mid-epoch; optional step or time intervals) and ``lr_monitor``. ``--ckpt_path``
is resolved to a checked local file before Lightning reads it (:mod:`dan.training.ckpt_path`), and
checkpoints are written atomically (:class:`dan.training.checkpoint_io.AtomicCheckpointIO`). A config
may say ``extends: other.yaml`` (``dan.cli.train`` reads the chain).

``trainer.precision: null`` (or left out) means *auto*: ``bf16-mixed`` where the hardware computes
bfloat16 natively (a CPU with AVX512-BF16 or AMX, a GPU that supports it), ``32-true`` elsewhere,
where bfloat16 would be emulated and several times slower. The choice and its reason are printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI
from pytorch_lightning.utilities.exceptions import SIGTERMException

from dan.data.datamodule import FERDataModule
from dan.preprocess import Preprocessing
from dan.system import resolve_precision
from dan.training.callbacks import ConfusionMatrixWriter, EpochSummary
from dan.training.checkpoint_io import AtomicCheckpointIO
from dan.training.ckpt_path import resolve_ckpt_path
from dan.training.module import DANModule
from dan.training.resume import ResumableTraining

__all__ = ["DANCLI", "run"]


def loggers(name: str) -> list[dict]:
    """CSV and TensorBoard loggers writing into ``runs/<name>/version_N`` (the default of every run)."""
    return [
        {"class_path": f"pytorch_lightning.loggers.{kind}", "init_args": {"save_dir": "runs", "name": name}}
        for kind in ("CSVLogger", "TensorBoardLogger")
    ]


def _record(preprocessing: Preprocessing) -> dict:
    """The data module's preprocessing record as the model's plain-type init argument."""
    return preprocessing.to_dict()


def _run_name(argv: list[str]) -> str:
    """The name of a run: the stem of the last config that is not a base (``configs/rafdb.yaml`` -> rafdb)."""
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-c", "--config")]
    configs += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    recipes = [Path(c).stem for c in configs if Path(c).stem != "base" and "ablation" not in Path(c).parts]
    return recipes[-1] if recipes else "dan"


class DANCLI(LightningCLI):
    """LightningCLI with DAN's links and callbacks."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/acc",
                "checkpoint.mode": "max",
                "checkpoint.save_last": False,
                "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best-epoch{epoch:02d}-acc{val/acc:.4f}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # Lightning 2.6 refreshes save_last's last.ckpt only when the best one changes, so "last" is its own
        # callback: the newest state after every epoch, what --ckpt_path resumes from.
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.filename": "last",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_argument("--extends", type=str | None, default=None, help="the config a config builds on")
        parser.add_lightning_class_args(ConfusionMatrixWriter, "confusion")
        parser.add_lightning_class_args(EpochSummary, "epoch_summary")
        # SIGTERM / SIGINT: save last.ckpt at the current step and stop; optional step or time intervals
        parser.add_lightning_class_args(ResumableTraining, "resume")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "epoch"})
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.label_names", "model.label_names", apply_on="instantiate")
        # one record from data to model: the loaders' transforms and the checkpoint's preprocessing are the same
        parser.link_arguments("data.preprocessing", "model.preprocessing", _record, apply_on="instantiate")
        parser.link_arguments("data.trained_on", "model.trained_on", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        """Parse, then turn ``ckpt_path`` (command line or config file) into a checked local file.

        Before Lightning reads the file's hyperparameters and before any logger or run folder exists;
        Lightning never sees a URL (:mod:`dan.training.ckpt_path`).
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        config = self.config[subcommand] if subcommand else self.config
        if config.get("ckpt_path"):
            config["ckpt_path"] = resolve_ckpt_path(config["ckpt_path"])

    def before_instantiate_classes(self) -> None:
        """Resolve ``trainer.precision: null`` (auto) from the hardware; one ``version_N`` for every logger."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        requested = config.get("trainer.precision")
        accelerator = str(config.get("trainer.accelerator") or "auto")
        if accelerator == "auto":
            import torch

            accelerator = "cuda" if torch.cuda.is_available() else "cpu"
        device = "cuda" if accelerator in ("gpu", "cuda") else "cpu"
        self._share_logger_version(config)
        precision, why = resolve_precision(requested, device)
        if why:
            config["trainer.precision"] = precision
            if os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0":
                print(f"precision: auto -> {precision} ({why})", flush=True)

    def instantiate_trainer(self, **kwargs):
        """The trainer, with checkpoints written atomically on any filesystem."""
        trainer = super().instantiate_trainer(**kwargs)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # Lightning's default, not a user's plugin
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _share_logger_version(self, config) -> None:
        """Give every logger without a version the same next ``version_N`` (each would count on its own)."""
        loggers = config.get("trainer.logger")
        if not isinstance(loggers, list) or len(loggers) < 2:
            return
        args = [getattr(lg, "init_args", None) for lg in loggers]
        if any(a is None for a in args) or any(getattr(a, "version", None) is not None for a in args):
            return
        first = args[0]
        folder = Path(str(getattr(first, "save_dir", "runs") or "runs")) / str(getattr(first, "name", "") or "")
        taken = [int(d.name.split("_", 1)[1]) for d in folder.glob("version_*") if d.name.split("_", 1)[1].isdigit()]
        version = max(taken, default=-1) + 1
        for a in args:
            assert a is not None  # every logger has init_args (returned above otherwise)
            a.version = version


def run(argv: list[str]) -> int:
    """Run LightningCLI with ``argv`` (``["fit", "-c", "configs/rafdb.yaml", ...]``).

    Returns:
        0; 143 when stopped by SIGTERM and 130 by Ctrl-C, after saving a resumable checkpoint.
    """
    saved = sys.argv
    sys.argv = [saved[0], *argv]  # LightningCLI reads sys.argv (given args= beside another sys.argv, it warns)
    try:
        cli = DANCLI(
            DANModule,
            FERDataModule,
            trainer_defaults={"logger": loggers(_run_name(argv)), "log_every_n_steps": 10},
            save_config_kwargs={"overwrite": True},
            seed_everything_default=0,
            auto_configure_optimizers=False,
        )
    except SIGTERMException:
        return _stopped(argv)
    finally:
        sys.argv = saved
    if argv and argv[0] == "fit" and cli.trainer.is_global_zero:
        init = cli.config_init[cli.subcommand]
        best, last = init["checkpoint"], init["last_checkpoint"]  # ours, whatever other callbacks a user adds
        if best.best_model_path:
            print(f"best checkpoint: {best.best_model_path} (val/acc {float(best.best_model_score):.4f})")
        if last.best_model_path:
            print(f"last checkpoint: {last.best_model_path}")
    return 0


def _stopped(argv: list[str]) -> int:
    """Say where the resumable checkpoint is and how to go on; the exit status of the signal."""
    resume = ResumableTraining.latest
    how = (resume.stopped_by if resume else None) or "SIGTERM"
    where = Path(resume.saved).resolve() if resume and resume.saved else None
    rest = [a for i, a in enumerate(argv[1:], 1) if a != "--ckpt_path" and argv[i - 1] != "--ckpt_path"]
    rest = [a for a in rest if not a.startswith("--ckpt_path=")]
    if where is not None:
        print(
            f"dan {argv[0]}: stopped by {how}; resumable checkpoint: {where}\n"
            f"resume with: dan {argv[0]} {' '.join(rest)} --ckpt_path {where}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(f"dan {argv[0]}: stopped by {how} before any training step; nothing to resume", file=sys.stderr)
    return 130 if how == "SIGINT" else 143
