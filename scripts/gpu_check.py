#!/usr/bin/env python
"""Training throughput of a recipe on one device: images/s, peak memory, and data wait against compute.

Builds the trainer, model and data exactly as ``dan fit -c CONFIG`` does (the project's LightningCLI),
with the backbone randomly initialised (``--model.backbone_weights null``: the MS-Celeb file is not
needed), no validation and no checkpoints, and trains ``--steps`` steps once per precision. A
callback times every step:

- data wait: from the end of one step to the start of the next (the DataLoader, the host-to-device
  copy and Lightning's own work between steps);
- compute: from the start of a step to its end (forward, losses, backward, optimiser), with the
  device synchronised at the end of each step so the time is the device's, not just the launch's.

The first steps (``--warmup``, default a tenth, at most 20) are left out. Peak memory is
``torch.cuda.max_memory_allocated`` on a GPU and the process's peak RSS on the CPU. Usage
(``scripts/gpu_check.sh`` draws the data and runs this)::

    python scripts/gpu_check.py --data DIR [--config configs/rafdb.yaml] [--steps 300] [--device gpu]
        [--precision bf16-mixed 32-true] [--batch 256] [--workers 8] [--head dan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from pytorch_lightning import Callback

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
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
            self.images += int(batch[0].shape[0])
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
            "compute_ms": 1e3 * compute / max(len(self.compute), 1),
            "compute_ms_median": 1e3 * statistics.median(self.compute) if self.compute else 0.0,
            "data_share": wait / total if total else 0.0,
            "peak_gpu_mib": peak,
            "reserved_gpu_mib": reserved,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def run(args: argparse.Namespace, precision: str) -> dict:
    """Train ``args.steps`` steps of the recipe at ``precision`` and return the timer's summary."""
    from dan.data.datamodule import FERDataModule
    from dan.training.cli import DANCLI
    from dan.training.module import DANModule

    work = Path(args.work).resolve()
    logger = {"class_path": "pytorch_lightning.loggers.CSVLogger", "init_args": {"save_dir": str(work), "name": "logs"}}
    argv = ["-c", str(args.config), "--data.root", str(args.data), "--model.backbone_weights", "null"]
    argv += ["--model.head", args.head, "--trainer.accelerator", args.device, "--trainer.devices", "1"]
    argv += ["--trainer.precision", precision, "--trainer.max_steps", str(args.steps), "--trainer.max_epochs", "-1"]
    argv += ["--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0"]
    argv += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    argv += ["--trainer.logger", json.dumps(logger)]
    argv += ["--checkpoint.save_top_k", "0", "--last_checkpoint.save_top_k", "0"]  # no checkpoint files
    argv += ["--data.batch_size", str(args.batch), "--data.num_workers", str(args.workers)]
    argv += ["--data.pin_memory", str(args.device != "cpu").lower()]
    argv += shlex.split(args.extra)  # e.g. "--model.channels_last true --trainer.benchmark true"
    cli = DANCLI(
        DANModule,
        FERDataModule,
        args=argv,
        run=False,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        auto_configure_optimizers=False,
    )
    warmup = args.warmup if args.warmup is not None else max(1, min(20, args.steps // 10))
    timer = StepTimer(warmup)
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    result = {"precision": precision, "head": args.head, "batch": args.batch, "warmup_steps": warmup}
    result.update(timer.summary())
    del cli
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return result


def _table(rows: list[dict]) -> str:
    lines = [
        "| precision | head | batch | images/s | step ms | data wait ms | compute ms | data share | peak GPU MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        peak = f"{r['peak_gpu_mib']:,.0f}" if r["peak_gpu_mib"] is not None else f"n/a (RSS {r['peak_rss_mib']:,.0f})"
        lines.append(
            f"| {r['precision']} | {r['head']} | {r['batch']} | {r['images_per_s']:,.1f} | {r['step_ms']:.1f} "
            f"| {r['data_wait_ms']:.1f} | {r['compute_ms']:.1f} | {r['data_share']:.1%} | {peak} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the check for every precision and print (and optionally save) the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="data set root (RAF-DB layout, e.g. from dan synth)")
    p.add_argument("--config", default=str(ROOT / "configs" / "rafdb.yaml"), help="the recipe")
    p.add_argument("--steps", type=int, default=300, help="training steps per precision")
    p.add_argument("--warmup", type=int, help="steps left out of the timing (default steps/10, 1..20)")
    p.add_argument("--device", default="gpu", help="Lightning accelerator: gpu or cpu")
    p.add_argument("--precision", nargs="+", default=["bf16-mixed", "32-true"], help="trainer.precision values")
    p.add_argument("--batch", type=int, default=256, help="batch size (the RAF-DB recipe: 256)")
    p.add_argument("--workers", type=int, default=8, help="DataLoader workers (the RAF-DB recipe: 8)")
    p.add_argument("--head", default="dan", choices=("dan", "mha"), help="model.head")
    p.add_argument("--work", default="runs/gpu_check", help="folder for the logs")
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--extra", default="", help="more dan fit options, one quoted string")
    args = p.parse_args(argv)
    if args.device == "gpu" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (use --device cpu for a CPU run)", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name(0) if args.device != "cpu" else platform.processor() or platform.machine()
    print(f"gpu_check: torch {torch.__version__}, {device}, {args.config}, {args.steps} steps, batch {args.batch}")
    rows = [run(args, precision) for precision in args.precision]
    print()
    print(_table(rows))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"device": device, "torch": torch.__version__, "runs": rows}, indent=2))
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
