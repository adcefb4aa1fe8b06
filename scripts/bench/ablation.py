#!/usr/bin/env python
"""Run DAN ablations on any data set and write one Markdown table of the results.

Each ablation is a small YAML delta in ``configs/ablation/`` applied on top of a base recipe
(LightningCLI merges ``-c`` files in order). For each one this script:

1. trains it with ``dan fit -c BASE -c DELTA --data.root ROOT`` in a subprocess, in its own folder
   ``OUT/NAME/`` (logs under ``OUT/NAME/runs/``, checkpoints in ``OUT/NAME/checkpoints/``);
2. scores the best checkpoint (by ``val/acc``) on the data set's held-out test split with
   ``dan evaluate`` (report in ``OUT/NAME/eval/``, numbers from its ``metrics.json``);
3. counts the network's parameters and times it: milliseconds per face at batch 1 on the CPU
   (PyTorch eager, a few warm-up runs, then the median of ``--timing-runs`` runs, ``--threads`` threads).

The table goes to ``OUT/ablation.md`` (and the numbers to ``OUT/ablation.json``) and is printed; its
caption says what data it ran on. Usage::

    python -m scripts.bench.ablation --configs k1 k2 k4 k8 no_affinity no_partition mha \\
        --base configs/synthetic.yaml --data data/synth --out runs/ablation --epochs 20 [--dry-run]

A name is a file of ``configs/ablation/`` (``k1`` -> ``configs/ablation/k1.yaml``) or a YAML path.
``--fit-args "..."`` passes more options to every ``dan fit`` (paths in them are relative to ``OUT/NAME``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from dan.system import cpu_model
from scripts.common.measure import REPO as ROOT
from scripts.common.measure import interleaved, markdown_table

ABLATIONS = ROOT / "configs" / "ablation"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", nargs="+", required=True, help="ablation names (k1 ... mha) or YAML files")
    p.add_argument("--base", default=str(ROOT / "configs" / "synthetic.yaml"), help="base recipe YAML")
    p.add_argument("--data", required=True, help="data set root (--data.root of dan fit, --root of dan evaluate)")
    p.add_argument("--format", help="data set layout (default: the base config's data.format)")
    p.add_argument("--out", default="runs/ablation", help="output folder (one sub-folder per config)")
    p.add_argument("--epochs", type=int, help="--trainer.max_epochs (default: the base config's)")
    p.add_argument("--fit-args", default="", help="more options for every dan fit, one quoted string")
    p.add_argument("--eval-workers", type=int, default=2, help="DataLoader workers of dan evaluate")
    p.add_argument("--eval-batch", type=int, default=64, help="batch size of dan evaluate")
    p.add_argument("--eval-device", default="cpu", help="device of dan evaluate (cpu, cuda)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for the ms/face timing")
    p.add_argument("--timing-runs", type=int, default=30, help="timed runs per model (median reported)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and stop")
    return p


def config_path(name: str) -> Path:
    """``k1`` -> ``configs/ablation/k1.yaml``; a path to a YAML file is taken as it is."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path.resolve()
    path = ABLATIONS / f"{name}.yaml"
    if not path.is_file():
        known = " ".join(sorted(p.stem for p in ABLATIONS.glob("*.yaml")))
        raise SystemExit(f"ablation.py: no ablation {name!r} (known: {known}; or give a YAML file)")
    return path


def _flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict) and "class_path" not in value:
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def describe(path: Path) -> str:
    """What a delta sets, e.g. ``model.num_heads=1``."""
    return ", ".join(f"{k}={v}" for k, v in _flatten(yaml.safe_load(path.read_text())).items())


def fit_command(base: Path, delta: Path, run_dir: Path, args: argparse.Namespace, base_cfg: dict) -> list[str]:
    """The ``dan fit`` command line of one ablation (run with ``cwd=run_dir``)."""
    ckpt = str(run_dir / "checkpoints")
    cmd = [sys.executable, "-m", "dan", "fit", "-c", str(base), "-c", str(delta)]
    cmd += ["--data.root", str(Path(args.data).resolve()), "--checkpoint.dirpath", ckpt]
    cmd += ["--last_checkpoint.dirpath", ckpt]
    if args.format:
        cmd += ["--data.format", args.format]
    if args.epochs:
        cmd += ["--trainer.max_epochs", str(args.epochs)]
        scheduler = (base_cfg.get("model") or {}).get("scheduler") or {}
        if str(scheduler.get("class_path", "")).endswith("CosineAnnealingLR"):  # anneal over the epochs run
            cmd += ["--model.scheduler.init_args.T_max", str(args.epochs)]
    return cmd + shlex.split(args.fit_args)


def evaluate_args(checkpoint: Path, run_dir: Path, fmt: str, args: argparse.Namespace) -> list[str]:
    """The ``dan evaluate`` arguments (without ``dan``) scoring ``checkpoint`` on the test split."""
    root = str(Path(args.data).resolve())
    out = ["evaluate", "--checkpoint", str(checkpoint), "--format", fmt, "--root", root]
    out += ["--output", str(run_dir / "eval"), "--workers", str(args.eval_workers)]
    return out + ["--batch-size", str(args.eval_batch), "--device", args.eval_device]


def best_checkpoint(folder: Path) -> Path | None:
    """The best-by-``val/acc`` checkpoint a run wrote (``last.ckpt`` when there is none)."""
    best = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    last = folder / "last.ckpt"
    return last if last.is_file() else None


def time_per_face(models: dict, threads: int, runs: int, warmup: int = 5) -> dict[str, float]:
    """Median milliseconds of one batch-1 forward pass on the CPU (PyTorch eager, float32) of each model.

    The models take turns (one call of each per round), so a change of load on the machine hits all alike.
    """
    import torch

    torch.set_num_threads(threads)
    inputs = {}
    for name, model in models.items():
        s = model.cpu().float().eval().preprocessing.input_size
        inputs[name] = torch.randn(1, model.in_chans, s, s)
    with torch.inference_mode():
        calls = {name: functools.partial(model, inputs[name]) for name, model in models.items()}
        return {name: seconds * 1e3 for name, seconds in interleaved(calls, runs, warmup).items()}


def caption(args: argparse.Namespace, fmt: str, base: Path, rows: list[dict]) -> str:
    """The table's caption: data set, splits, recipe and how the timing was taken."""
    from dan.data.readers import default_splits

    _, val, test = default_splits(fmt, args.data)
    samples = next((r["samples"] for r in rows if r.get("samples")), None)
    scored = f"{samples} images of its `{test}` split" if samples else f"its `{test}` split"
    val_text = f"the `{val}` split" if val else "a validation share of the training split"
    epochs = f"{args.epochs} epoch{'s' if args.epochs != 1 else ''}" if args.epochs else "the base config's epochs"
    import torch

    return (
        f"**Data: `{args.data}` ({fmt} layout)**, scored on {scored} (`dan evaluate`, no TTA) with the best "
        f"checkpoint by `val/acc` on {val_text}. Each row is `dan fit -c {_rel(base)} -c configs/ablation/"
        f"NAME.yaml` for {epochs}. Parameters: the network without the affinity loss's class centres. "
        f"ms/face: PyTorch {torch.__version__} eager float32, batch 1, {args.threads} threads, median of "
        f"{args.timing_runs} runs (the models taking turns) on {cpu_model()}."
    )


def _rel(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def markdown(rows: list[dict], text: str) -> str:
    """The table (config, setting, accuracy, balanced accuracy, parameters, ms/face) under its caption."""
    cells = [
        [r["config"], r["setting"], f"failed: {r['error']}", "", "", ""]
        if r.get("error")
        else [
            r["config"],
            r["setting"],
            f"{r['accuracy']:.4f}",
            f"{r['balanced_accuracy']:.4f}",
            f"{r['parameters']:,}",
            f"{r['ms_per_face']:.1f}",
        ]
        for r in rows
    ]
    header = ["config", "setting", "accuracy", "balanced accuracy", "parameters", "ms/face"]
    return f"{text}\n\n{markdown_table(header, cells, right=(2, 3, 4, 5))}\n"


def run_one(name: str, delta: Path, base: Path, fmt: str, args: argparse.Namespace, base_cfg: dict) -> dict:
    """Train, score, count and time one ablation; a failed step gives a row with ``error``."""
    from dan.cli.main import main as dan_main
    from dan.models import load_model

    out = Path(args.out).resolve()
    run_dir = out / name
    row: dict = {"config": name, "setting": describe(delta)}
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # this script's own folder: no stale best-*.ckpt
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = fit_command(base, delta, run_dir, args, base_cfg)
    log = run_dir / "fit.log"
    print(f"[{name}] {shlex.join(cmd)}\n[{name}] training (log: {log}) ...", flush=True)
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as f:
        status = subprocess.run(cmd, cwd=run_dir, env=env, stdout=f, stderr=subprocess.STDOUT).returncode
    row["fit_seconds"] = round(time.perf_counter() - start, 1)
    checkpoint = best_checkpoint(run_dir / "checkpoints")
    if status != 0 or checkpoint is None:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        print(f"[{name}] dan fit failed (exit {status}):\n  " + "\n  ".join(tail), file=sys.stderr)
        return {**row, "error": f"dan fit exit {status}, see {_rel(log)}"}
    eval_args = evaluate_args(checkpoint, run_dir, fmt, args)
    print(f"[{name}] dan {shlex.join(eval_args)}", flush=True)
    if dan_main(eval_args) != 0:
        return {**row, "error": "dan evaluate failed"}
    metrics = json.loads((run_dir / "eval" / "metrics.json").read_text())
    model = load_model(checkpoint)
    row.update(
        checkpoint=str(checkpoint),
        accuracy=metrics["accuracy"],
        balanced_accuracy=metrics["balanced_accuracy"],
        samples=metrics.get("samples"),
        parameters=sum(p.numel() for p in model.parameters()),
    )
    print(f"[{name}] accuracy {row['accuracy']:.4f}, {row['parameters']:,} parameters", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    """Run the ablations (or print their commands with ``--dry-run``); returns the exit status."""
    args = _parser().parse_args(argv)
    base = Path(args.base).resolve()
    if not base.is_file():
        raise SystemExit(f"ablation.py: base config {args.base} not found")
    base_cfg = yaml.safe_load(base.read_text()) or {}
    fmt = args.format or (base_cfg.get("data") or {}).get("format", "rafdb")
    deltas = {Path(name).stem: config_path(name) for name in args.configs}
    out = Path(args.out).resolve()
    if args.dry_run:
        for name, delta in deltas.items():
            run_dir = out / name
            fit = shlex.join(fit_command(base, delta, run_dir, args, base_cfg))
            print(f"# {name}: {describe(delta)}\n(cd {shlex.quote(str(run_dir))} && {fit})")
            best = run_dir / "checkpoints" / "BEST.ckpt"
            print(f"dan {shlex.join(evaluate_args(best, run_dir, fmt, args))}  # BEST: the best-*.ckpt written there")
        print(f"# then: parameters, ms/face (batch 1, {args.threads} CPU threads); table -> {out / 'ablation.md'}")
        return 0
    if not Path(args.data).is_dir():
        raise SystemExit(f"ablation.py: data root {args.data} not found")
    out.mkdir(parents=True, exist_ok=True)
    rows = [run_one(name, delta, base, fmt, args, base_cfg) for name, delta in deltas.items()]
    from dan.models import load_model

    done = {r["config"]: load_model(r["checkpoint"]) for r in rows if not r.get("error")}
    print(f"timing {len(done)} models: batch 1, {args.threads} CPU threads, {args.timing_runs} runs each", flush=True)
    ms = time_per_face(done, args.threads, args.timing_runs)
    for r in rows:
        r["ms_per_face"] = ms.get(r["config"])
    table = markdown(rows, caption(args, fmt, base, rows))
    (out / "ablation.md").write_text(table)
    (out / "ablation.json").write_text(json.dumps(rows, indent=2))
    print("\n" + table)
    print(f"wrote {out / 'ablation.md'}")
    return 1 if any(r.get("error") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
