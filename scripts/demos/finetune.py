#!/usr/bin/env python
"""Fine-tuning against training from scratch, one epoch each, on a differently labelled set of generated faces.

1. The base model: ``--base CKPT`` (the quickstart's ``runs/quickstart/checkpoints/best.ckpt``), or else one
   trained briefly here: ``dan synth`` (seed 0) and ``dan fit -c configs/synthetic.yaml`` for
   ``--base-epochs`` epochs (RAF-DB's seven classes).
2. The target set: fresh faces (``dan synth``, seed ``--seed``, which the base never saw) relabelled into
   class folders (``ROOT/train/<class>/``, ``ROOT/test/<class>/``; validation is 10 % held out of train)
   with another label set: fear is dropped, and the disgust faces are filed as ``contempt``, a class
   the base model does not have (its classifier row starts fresh). Surprise, happiness, sadness, anger
   and neutral are kept, under folder names (``surprised``, ``happy``, ...) the reader maps back.
3. Three models scored on the target's test split with ``dan evaluate``: the base loaded into the new
   label set before any step (``start``), then one epoch of ``dan fit -c configs/synthetic.yaml`` on the
   target from the base (``--model.init_from``, ``finetune``) and from a random start (``scratch``),
   the same recipe otherwise.

Writes ``OUT/finetune_demo.md`` and ``OUT/finetune_demo.json`` and prints the table, with a note when
the base knows too little of the kept classes for the comparison to mean anything: DAN needs tens of
thousands of face-views from a random start (the quickstart: about 70,000), so the brief default base
is a smoke run of the pipeline; the figure worth quoting comes from ``--base`` the quickstart's model.
Usage::

    python -m scripts.demos.finetune --out runs/finetune_demo [--base runs/quickstart/checkpoints/best.ckpt]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from dan.system import cpu_model
from dan.vocab import CLASS_SYNONYMS, LABEL_SETS
from scripts.common.measure import REPO as ROOT
from scripts.common.measure import markdown_table

SYNTHETIC = ROOT / "configs" / "synthetic.yaml"


def _spelling(name: str) -> str:
    """Another spelling of a class (``happiness`` -> ``happy``) that the matcher maps back (dan.vocab)."""
    return next((k for k, v in CLASS_SYNONYMS.items() if v == name and k != name), name)


# the synth's RAF-DB classes -> the target's class folders; None: dropped. Disgust faces are filed under a
# name the base model has no row for; the others under another spelling of their own name.
RELABEL = {name: _spelling(name) for name in LABEL_SETS["rafdb"]} | {"fear": None, "disgust": "contempt"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/finetune_demo", help="output folder")
    p.add_argument("--base", help="a trained 7-class checkpoint (default: train one briefly here)")
    p.add_argument("--base-per-class", type=int, default=400, help="faces per class for the brief base model")
    p.add_argument("--base-epochs", type=int, default=3, help="epochs of the brief base model")
    p.add_argument("--per-class", type=int, default=200, help="faces per class of the target set (train + test)")
    p.add_argument("--epochs", type=int, default=1, help="epochs of each arm")
    p.add_argument("--seed", type=int, default=1, help="seed of the target's faces (the base's are seed 0)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    return p


def dan(*args: str, cwd: Path) -> None:
    """Run ``dan ARGS`` in ``cwd``; stop with its status if it fails."""
    cmd = [sys.executable, "-m", "dan", *args]
    print("$ dan " + " ".join(args), flush=True)
    done = subprocess.run(cmd, cwd=cwd)
    if done.returncode != 0:
        raise SystemExit(f"finetune_demo.py: dan {args[0]} failed with status {done.returncode}")


def relabel(synth: Path, root: Path) -> dict[str, int]:
    """File a ``dan synth`` set (RAF-DB layout) into class folders by :data:`RELABEL`; counts per class."""

    names = LABEL_SETS["rafdb"]
    words = (synth / "EmoLabel" / "list_patition_label.txt").read_text().split()
    counts: dict[str, int] = {}
    for name, label in zip(words[::2], words[1::2]):
        folder = RELABEL[names[int(label) - 1]]
        if folder is None:
            continue
        split = "train" if name.startswith("train") else "test"
        (root / split / folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(synth / "Image" / "aligned" / name.replace(".jpg", "_aligned.jpg"), root / split / folder / name)
        counts[f"{split}/{folder}"] = counts.get(f"{split}/{folder}", 0) + 1
    return counts


def fit(out: Path, data: Path, fmt: str, epochs: int, workers: int, *extra: str) -> Path:
    """One ``dan fit -c configs/synthetic.yaml`` run in ``out``; returns its ``last.ckpt``."""
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoints"
    dan(
        "fit", "-c", str(SYNTHETIC), "--data.format", fmt, "--data.root", str(data),
        "--trainer.max_epochs", str(epochs), "--data.num_workers", str(workers),
        "--trainer.enable_progress_bar", "false", "--checkpoint.dirpath", str(ckpt),
        "--last_checkpoint.dirpath", str(ckpt), *extra, cwd=out,
    )  # fmt: skip
    return ckpt / "last.ckpt"


def evaluate(checkpoint: Path, data: Path, out: Path, workers: int) -> dict:
    """``dan evaluate`` on the target's test split; its ``metrics.json``."""
    dan(
        "evaluate", "--checkpoint", str(checkpoint), "--format", "folder", "--root", str(data), "--split", "test",
        "--output", str(out), "--workers", str(workers), cwd=out.parent,
    )  # fmt: skip
    return json.loads((out / "metrics.json").read_text())


def start_model(base: Path, data: Path, out: Path) -> Path:
    """The base loaded into the target's label set before any training step, saved for ``dan evaluate``."""
    from dan.data.datamodule import FERDataModule
    from dan.models import save_model
    from dan.models.loading import read_weights
    from dan.training.module import DANModule

    record = FERDataModule(format="folder", root=str(data), image_size=48).preprocessing
    labels = FERDataModule(format="folder", root=str(data)).label_names
    config = read_weights(base).model_config
    module = DANModule(
        num_classes=len(labels), num_heads=config["num_heads"], backbone=config["backbone"],
        label_names=list(labels), preprocessing=record.to_dict(),
    )  # fmt: skip
    module.start_from(str(base))
    return save_model(module.model, out)


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0."""
    args = _parser().parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    if args.base:
        base = Path(args.base).resolve()
        base_text = f"`{args.base}`"
    else:
        base_data = out / "base_data"
        dan("synth", str(base_data), "--per-class", str(args.base_per_class), "--size", "64", "--seed", "0", cwd=out)
        base = fit(out / "base", base_data, "rafdb", args.base_epochs, args.workers)
        base_text = (
            f"trained here: `dan synth --per-class {args.base_per_class} --seed 0`, `configs/synthetic.yaml` for "
            f"{args.base_epochs} epochs"
        )
    base_seconds = time.time() - start
    synth, data = out / "target_synth", out / "target"
    dan("synth", str(synth), "--per-class", str(args.per_class), "--size", "64", "--seed", str(args.seed), cwd=out)
    shutil.rmtree(data, ignore_errors=True)
    counts = relabel(synth, data)
    rows: dict[str, dict] = {}
    rows["start"] = evaluate(start_model(base, data, out / "start.pt"), data, out / "eval_start", args.workers)
    for arm, extra in (("finetune", ("--model.init_from", str(base))), ("scratch", ())):
        t = time.time()
        last = fit(out / arm, data, "folder", args.epochs, args.workers, *extra)
        rows[arm] = {**evaluate(last, data, out / f"eval_{arm}", args.workers), "seconds": time.time() - t}
    train = sum(v for k, v in counts.items() if k.startswith("train/"))
    test = sum(v for k, v in counts.items() if k.startswith("test/"))
    caption = (
        f"Base model: {base_text}. Target: fresh generated faces (`dan synth --per-class {args.per_class} --seed "
        f"{args.seed}`), 6 classes (fear dropped, the disgust faces filed as a new class `contempt`), {train} "
        f"training faces (10 % held out for validation) and {test} test faces; each arm is `dan fit -c "
        f"configs/synthetic.yaml` for {args.epochs} epoch(s) at 48 px, scored on the test faces with `dan evaluate`. "
        f"{cpu_model()}, {time.strftime('%Y-%m-%d')}."
    )
    what = {
        "start": "the base, new label set, before any step",
        "finetune": f"`--model.init_from` the base, {args.epochs} epoch(s)",
        "scratch": f"random start, {args.epochs} epoch(s)",
    }
    cells = [
        [
            what[arm],
            f"{r['accuracy']:.4f}",
            f"{r['balanced_accuracy']:.4f}",
            f"{r['seconds']:.0f} s" if "seconds" in r else "-",
        ]
        for arm, r in rows.items()
    ]
    header = ["model", "test accuracy", "balanced accuracy", "training time"]
    table = f"{caption}\n\n{markdown_table(header, cells, right=(1, 2, 3))}\n"
    (out / "finetune_demo.md").write_text(table)
    summary = {arm: {k: r[k] for k in ("accuracy", "balanced_accuracy")} for arm, r in rows.items()}
    (out / "finetune_demo.json").write_text(json.dumps({"base": str(base), "base_seconds": base_seconds, **summary}))
    print("\n" + table, flush=True)
    kept = [c for c in rows["start"]["per_class"] if c != "contempt"]
    recall = sum(rows["start"]["per_class"][c]["recall"] for c in kept) / len(kept)
    chance = 1 / len(rows["start"]["labels"])
    if recall < 2 * chance:
        print(
            f"note: at the start the base recalls {recall:.2f} of the kept classes on average (chance {chance:.2f}): "
            "it knows too little for these figures to say anything about fine-tuning; pass a trained base "
            "(--base runs/quickstart/checkpoints/best.ckpt) or train it longer (--base-epochs, --base-per-class)",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
