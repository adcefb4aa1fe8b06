#!/usr/bin/env python
"""Valence and arousal on generated faces: a DAN with the regression output against the training mean.

1. The data: ``--data ROOT`` (a RAF-DB-layout set with ``EmoLabel/valence_arousal.txt``, such as ``dan
   synth`` writes), or else ``dan synth OUT/data --per-class N --seed S`` drawn here.
2. ``dan fit -c configs/va.yaml`` (the synthetic recipe with ``model.va_head: true``) for ``--epochs``
   epochs at ``--size`` px; the last checkpoint is scored on the test split.
3. The baseline predicts the training split's mean valence and arousal for every face: its CCC is 0 by
   definition (a constant prediction), its RMSE the spread of the test targets around that mean.

Prints the CPU (``lscpu``'s model line), the settings and a table of test CCC and RMSE for valence and
arousal, and writes ``OUT/va_demo.md`` and ``OUT/va_demo.json``. Usage::

    python -m scripts.demos.va --out runs/va_demo [--per-class 2500 --epochs 6 --size 48] [--data data/synth]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dan.system import cpu_model
from scripts.common.measure import REPO as ROOT
from scripts.common.measure import markdown_table

CONFIG = ROOT / "configs" / "va.yaml"
KEYS = ("ccc_valence", "ccc_arousal", "rmse_valence", "rmse_arousal")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/va_demo", help="output folder")
    p.add_argument("--data", help="a RAF-DB-layout set with EmoLabel/valence_arousal.txt (default: draw one here)")
    p.add_argument("--per-class", type=int, default=1000, help="faces per class when drawing the set")
    p.add_argument("--seed", type=int, default=0, help="seed of the drawn set")
    p.add_argument("--epochs", type=int, default=6, help="training epochs")
    p.add_argument("--size", type=int, default=48, help="model input side in pixels (data.image_size)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    p.add_argument("--backbone", help="another timm backbone (default: the recipe's ResNet-18)")
    return p


def lscpu_model() -> str:
    """``lscpu``'s ``Model name:`` line (from ``/proc/cpuinfo`` where there is no ``lscpu``)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    line = next((raw.strip() for raw in text.splitlines() if raw.strip().startswith("Model name:")), None)
    return " ".join(line.split()) if line else f"Model name: {cpu_model()}"


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """Run in ``folder`` (``dan fit`` writes its logs under ``runs/`` of the working folder)."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def dan(*args: str) -> None:
    """Run ``dan ARGS`` in this process; stop with its status if it fails."""
    from dan.cli.main import main

    print("$ dan " + " ".join(args), flush=True)
    status = main(list(args))
    if status != 0:
        raise SystemExit(f"va_demo.py: dan {args[0]} failed with status {status}")


def fit(out: Path, data: Path, epochs: int, size: int, workers: int, backbone: str | None) -> Path:
    """``dan fit -c configs/va.yaml`` in ``out``; returns its ``last.ckpt``."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoints"
    extra = ("--model.backbone", backbone) if backbone else ()
    with _inside(out):
        dan(
            "fit", "-c", str(CONFIG), "--data.root", str(data), "--data.image_size", str(size),
            "--trainer.max_epochs", str(epochs), "--data.num_workers", str(workers),
            "--trainer.enable_progress_bar", "false", "--checkpoint.dirpath", str(ckpt),
            "--last_checkpoint.dirpath", str(ckpt), *extra,
        )  # fmt: skip
    return ckpt / "last.ckpt"


def score(checkpoint: Path, data: Path, workers: int) -> tuple[dict, np.ndarray]:
    """The model's test scores (CCC, RMSE, accuracy) and the test split's (valence, arousal) targets (N, 2)."""
    from dan.data.dataset import build_dataset
    from dan.evaluation.evaluate import evaluate_backend
    from dan.runtime.loader import load_backend

    backend = load_backend(checkpoint, "torch", device="cpu")
    dataset = build_dataset("rafdb", data, "test", preprocessing=backend.preprocessing)
    result = evaluate_backend(backend, dataset, 64, workers)
    if result.va_scores is None or result.va_targets is None:
        raise SystemExit(f"va_demo.py: {checkpoint} scored no valence/arousal on {data} (no targets, or no output)")
    return {**result.va_scores, "accuracy": result.accuracy}, result.va_targets


def baseline(data: Path, targets: np.ndarray) -> dict:
    """The scores of predicting the training split's mean (valence, arousal) for every test face."""
    from dan.data.readers import read_split
    from dan.evaluation.va_metrics import va_scores

    train = read_split("rafdb", data, "train").va
    if train is None:
        raise SystemExit(f"va_demo.py: {data}: the training split has no valence/arousal")
    mean = np.nanmean(train, axis=0)  # (2,)
    scores = va_scores(np.broadcast_to(mean, targets.shape), targets)
    return {**scores, "mean_valence": float(mean[0]), "mean_arousal": float(mean[1])}


def _cell(value: float) -> str:
    """A score to three decimals (no ``-0.000`` for a rounding error around 0)."""
    return f"{0.0 if abs(value) < 5e-4 else value:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0."""
    args = _parser().parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cpu = lscpu_model()
    print(cpu, flush=True)
    if args.data:
        data = Path(args.data).resolve()
        data_text = f"`{args.data}`"
    else:
        data = out / "data"
        dan("synth", str(data), "--per-class", str(args.per_class), "--seed", str(args.seed), "--size", "100")
        data_text = f"`dan synth --per-class {args.per_class} --seed {args.seed}`"
    start = time.time()
    last = fit(out / "fit", data, args.epochs, args.size, args.workers, args.backbone)
    seconds = time.time() - start
    model, targets = score(last, data, args.workers)
    rows = {"model": model, "baseline": baseline(data, targets)}
    caption = (
        f"Valence and arousal on the test split of {data_text} ({len(targets)} faces): `dan fit -c configs/va.yaml` "
        f"for {args.epochs} epoch(s) at {args.size} px ({seconds:.0f} s), against predicting the training mean. "
        f"{cpu}; {time.strftime('%Y-%m-%d')}."
    )
    what = {"model": "DAN + valence/arousal output", "baseline": "training mean (a constant: CCC 0)"}
    cells = [[what[name], *(_cell(r[k]) for k in KEYS)] for name, r in rows.items()]
    header = ["model", "CCC valence", "CCC arousal", "RMSE valence", "RMSE arousal"]
    table = f"{caption}\n\n{markdown_table(header, cells, right=(1, 2, 3, 4))}\n"
    (out / "va_demo.md").write_text(table)
    summary = {name: {k: r[k] for k in KEYS} for name, r in rows.items()}
    summary["model"]["accuracy"] = model["accuracy"]
    (out / "va_demo.json").write_text(json.dumps({"cpu": cpu, "seconds": seconds, "test": len(targets), **summary}))
    print("\n" + table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
