#!/usr/bin/env python
"""Training throughput of a recipe on one device: images/s, peak memory, data wait against compute, per row.

Builds the trainer, model and data exactly as ``dan fit -c CONFIG`` does (the project's LightningCLI),
with the backbone randomly initialised (``--model.backbone_weights null``: the MS-Celeb file is not
needed, and the GPU machine has no network), no validation and no checkpoints, and trains ``--steps``
steps once per row. A row is a variant of the recipe (``--rows``, in this order):

- ``old``: the workers ship normalised float32 faces (``data.device_transforms: false``);
- ``new``: the workers ship uint8 faces, normalised and erased on the device (the default pipeline);
- ``new100``: ``new`` on faces drawn at 100 px, as RAF-DB's aligned faces are (``--data100``): the
  workers resize them to 224 px (PIL) before augmenting;
- ``resize100``: the same faces with ``data.device_resize: 100``: the workers augment them at 100 px and
  ship them so, the device resizes the batch to 224 px;
- ``contiguous``: ``new`` with ``model.channels_last: false`` (the recipes train channels-last);
- ``compile``: ``new`` with ``model.compile: true``;
- ``fp32``: ``new`` in ``32-true`` precision.

A callback times every step:

- data wait: from the end of one step to the start of the next (the DataLoader, the host-to-device
  copy, the on-device normalisation of ``new`` batches and Lightning's own work between steps);
- compute: from the start of a step to its end (forward, losses, backward, optimiser), with the
  device synchronised at the end of each step so the time is the device's, not just the launch's.

The first steps (``--warmup``, default a quarter, at most 20; ``compile``'s compilation falls in them)
are left out. Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the process's peak RSS
(over the whole run so far) on the CPU. The table and the JSON file are rewritten after every row, so
a run stopped early keeps the rows done; a row that fails is recorded with its error and the next one
runs. Usage (``scripts/gpu_check.sh`` draws the data and runs this)::

    python -m scripts.maint.gpu_check --data DIR [--data100 DIR] [--config configs/rafdb.yaml] [--rows old new ...]
        [--steps 80] [--warmup N] [--device gpu] [--precision bf16-mixed] [--batch 256] [--workers 8]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch
from pytorch_lightning import Callback

from scripts.common.measure import REPO as ROOT

warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter.*")  # args given on purpose


class StepTimer(Callback):
    """Times each training step: data wait (between steps) and compute (inside a step).

    Args:
        warmup: Steps left out of the statistics.
    """

    def __init__(self, warmup: int = 10) -> None:
        self.warmup = warmup
        self.data_wait: list[float] = []
        self.compute: list[float] = []
        self.images = 0
        self._last_end: float | None = None
        self._start = 0.0

    def _sync(self, pl_module) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_start(self, trainer, pl_module) -> None:
        self.peak_gpu_mib: float | None = None
        self.reserved_gpu_mib: float | None = None
        if pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    def on_train_end(self, trainer, pl_module) -> None:
        if pl_module.device.type == "cuda":  # read here: after fit, Lightning moves the model back to the CPU
            self.peak_gpu_mib = torch.cuda.max_memory_allocated(pl_module.device) / 2**20
            self.reserved_gpu_mib = torch.cuda.max_memory_reserved(pl_module.device) / 2**20

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        self._sync(pl_module)
        self._start = time.perf_counter()
        if self._last_end is not None and trainer.global_step >= self.warmup:
            self.data_wait.append(self._start - self._last_end)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._sync(pl_module)
        end = time.perf_counter()
        if trainer.global_step > self.warmup:  # global_step counts this step already
            self.compute.append(end - self._start)
            labels = batch["label"] if isinstance(batch, dict) else batch[1]  # a dict, or (images, labels)
            self.images += int(labels.shape[0])
        self._last_end = end

    def summary(self) -> dict:
        """Images/s, step time split and peak memory of the timed steps."""
        wait, compute = sum(self.data_wait), sum(self.compute)
        total = wait + compute
        peak, reserved = getattr(self, "peak_gpu_mib", None), getattr(self, "reserved_gpu_mib", None)
        return {
            "timed_steps": len(self.compute),
            "images_per_s": self.images / total if total else 0.0,
            "step_ms": 1e3 * total / max(len(self.compute), 1),
            "data_wait_ms": 1e3 * wait / max(len(self.data_wait), 1),
            "data_wait_ms_median": 1e3 * statistics.median(self.data_wait) if self.data_wait else 0.0,
            "compute_ms": 1e3 * compute / max(len(self.compute), 1),
            "compute_ms_median": 1e3 * statistics.median(self.compute) if self.compute else 0.0,
            "data_share": wait / total if total else 0.0,
            "peak_gpu_mib": peak,
            "reserved_gpu_mib": reserved,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


_NEW = ["--data.device_transforms", "true"]
ROWS: dict[str, tuple[str, list[str]]] = {
    "old": ("float32 faces from the workers", ["--data.device_transforms", "false"]),
    "new": ("uint8 faces, normalised on the device", _NEW),
    "new100": ("new, 100 px faces resized in the workers", _NEW),
    "resize100": ("100 px faces resized on the device", [*_NEW, "--data.device_resize", "100"]),
    "contiguous": ("new, channels-last off", [*_NEW, "--model.channels_last", "false"]),
    "compile": ("new + model.compile", [*_NEW, "--model.compile", "true"]),
    "fp32": ("new in 32-true", [*_NEW, "--trainer.precision", "32-true"]),
}
"""Row name -> (what it is, the dan fit options that make it). Rows ending in 100 train on ``--data100``."""
DEFAULT_ROWS = ["old", "new", "new100", "resize100", "contiguous", "compile"]


def run(args: argparse.Namespace, row: str) -> dict:
    """Train ``args.steps`` steps of the recipe as ``row`` says and return the timer's summary."""
    from dan.data.datamodule import FERDataModule
    from dan.training.cli import DANCLI
    from dan.training.module import DANModule

    work = Path(args.work).resolve()
    logger = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(work), "name": "logs"}}
    data = args.data100 if row.endswith("100") else args.data
    if data is None:
        raise ValueError(f"row {row} needs --data100 (faces drawn at 100 px)")
    argv = ["-c", str(args.config), "--data.root", str(data), "--model.backbone_weights", "null"]
    argv += ["--model.head", args.head, "--trainer.accelerator", args.device, "--trainer.devices", "1"]
    argv += ["--trainer.precision", args.precision, "--trainer.max_steps", str(args.steps)]
    argv += ["--trainer.max_epochs", "-1", "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"]
    argv += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    argv += ["--trainer.logger", json.dumps(logger)]
    argv += ["--checkpoint.save_top_k", "0", "--last_checkpoint.save_top_k", "0"]  # no checkpoint files
    argv += ["--data.batch_size", str(args.batch), "--data.num_workers", str(args.workers)]
    argv += ["--data.pin_memory", str(args.device != "cpu").lower()]
    argv += shlex.split(args.extra)  # e.g. "--trainer.benchmark true"
    argv += ROWS[row][1]
    cli = DANCLI(
        DANModule,
        FERDataModule,
        args=argv,
        run=False,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        auto_configure_optimizers=False,
    )
    warmup = args.warmup if args.warmup is not None else max(1, min(20, args.steps // 4))
    timer = StepTimer(warmup)
    cli.trainer.callbacks.append(timer)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    result = {"row": row, "what": ROWS[row][0], "precision": str(cli.trainer.precision), "head": args.head}
    result.update(batch=args.batch, workers=args.workers, warmup_steps=warmup, wall_s=time.perf_counter() - start)
    result.update(timer.summary())
    del cli
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def _table(rows: list[dict]) -> str:
    lines = [
        "| row | what | precision | images/s | step ms | data wait ms (median) | compute ms | data share "
        "| peak GPU MiB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['row']} | {r['what']} | | failed: {r['error']} | | | | | |")
            continue
        peak = f"{r['peak_gpu_mib']:,.0f}" if r["peak_gpu_mib"] is not None else f"n/a (RSS {r['peak_rss_mib']:,.0f})"
        lines.append(
            f"| {r['row']} | {r['what']} | {r['precision']} | {r['images_per_s']:,.1f} | {r['step_ms']:.1f} "
            f"| {r['data_wait_ms']:.1f} ({r['data_wait_ms_median']:.1f}) | {r['compute_ms']:.1f} "
            f"| {r['data_share']:.1%} | {peak} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every row and print (and optionally save) the table; 1 if a row failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data set root (RAF-DB layout, e.g. from dan synth)")
    p.add_argument("--config", default=str(ROOT / "configs" / "rafdb.yaml"), help="the recipe")
    p.add_argument("--data100", help="the same faces drawn at 100 px, for the rows ending in 100")
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS), help="in this order")
    p.add_argument("--steps", type=int, default=80, help="training steps per row (default 80)")
    p.add_argument("--warmup", type=int, help="steps left out of the timing (default steps/4, 1..20)")
    p.add_argument("--device", default="gpu", help="Lightning accelerator: gpu or cpu")
    p.add_argument("--precision", default="bf16-mixed", help="trainer.precision of every row but fp32")
    p.add_argument("--batch", type=int, default=256, help="batch size (the RAF-DB recipe: 256)")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers (the RAF-DB recipe: 8)")
    p.add_argument("--head", default="dan", choices=("dan", "mha"), help="model.head")
    p.add_argument("--work", default="runs/gpu_check", help="folder for the logs")
    p.add_argument("--json", help="also write the results to this JSON file (after every row)")
    p.add_argument("--extra", default="", help="more dan fit options for every row, one quoted string")
    args = p.parse_args(argv)
    if args.device == "gpu" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (use --device cpu for a CPU run)", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0) if args.device != "cpu" else platform.processor() or platform.machine()
    print(
        f"gpu_check: torch {torch.__version__}, {device}, {os.cpu_count()} CPUs, {args.config}, rows "
        f"{' '.join(args.rows)}, {args.steps} steps each, batch {args.batch}, {args.workers} workers",
        flush=True,
    )
    rows: list[dict] = []
    for row in args.rows:
        print(f"== {row}: {ROWS[row][0]}", flush=True)
        try:
            rows.append(run(args, row))
        except Exception as err:  # one failed row (say, /dev/shm too small for float32 batches) is reported
            traceback.print_exc()
            rows.append({"row": row, "what": ROWS[row][0], "error": f"{type(err).__name__}: {err}"[:300]})
        print(_table(rows[-1:]).splitlines()[-1], flush=True)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            report = {"device": device, "torch": torch.__version__, "cpus": os.cpu_count(), "runs": rows}
            Path(args.json).write_text(json.dumps(report, indent=2))
    print()
    print(_table(rows))
    if args.json:
        print(f"results: {args.json}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
