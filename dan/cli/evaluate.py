"""``dan evaluate``: score a checkpoint (this project's or the reference's) on a data set split.

Writes ``metrics.json``, ``predictions.csv``, ``confusion.png`` and ``report.md`` into ``--output``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dan.common import LABEL_SETS, DanError
from dan.data.dataset import build_dataset
from dan.data.readers import FORMATS, default_splits
from dan.models import load_model
from dan.training.evaluation import evaluate_model
from dan.training.report import write_report

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dan evaluate", description=__doc__)
    p.add_argument("--checkpoint", required=True, help="any file dan.load_model reads (.ckpt, .pt, reference .pth)")
    p.add_argument("--format", required=True, choices=FORMATS, help="data set layout")
    p.add_argument("--root", required=True, help="data set root folder")
    p.add_argument("--split", help="split to score (default: the format's test split)")
    p.add_argument("--labels", choices=sorted(LABEL_SETS), help="the model's label set (7-class reference files)")
    p.add_argument("--num-classes", type=int, help="AffectNet: 7 or 8 (default: the model's class count)")
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--output", help="report folder (default runs/eval/<checkpoint>-<format>-<split>)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--rafdb-images", default="aligned", choices=("aligned", "original"))
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    return p


def main(argv: list[str]) -> int:
    """Run ``dan evaluate``; returns the exit status."""
    args = _parser().parse_args(argv)
    split = args.split or default_splits(args.format, args.root)[2]
    num_classes = args.num_classes
    try:
        model = load_model(args.checkpoint, labels=args.labels, device=args.device)
    except DanError as err:
        if args.labels is None and "needs a label set" in str(err):  # 7-class reference file: the data's own set
            default = {"rafdb": "rafdb", "fer2013": "fer2013", "affectnet": "affectnet7"}.get(args.format)
            if default is None:
                raise
            model = load_model(args.checkpoint, labels=default, device=args.device)
            print(f"note: {args.checkpoint} carries no class names; assuming the {default} label order (--labels)")
        else:
            raise
    if args.format == "affectnet" and num_classes is None:
        num_classes = model.num_classes
    size = model.preprocessing.input_size
    dataset = build_dataset(args.format, args.root, split, num_classes, image_size=size, rafdb_images=args.rafdb_images)
    result = evaluate_model(model, dataset, args.batch_size, args.workers, args.tta, args.device)
    out = Path(args.output or Path("runs/eval") / f"{Path(args.checkpoint).stem}-{args.format}-{split}")
    meta = {"checkpoint": str(args.checkpoint), "format": args.format, "root": str(args.root), "split": split}
    meta["tta"] = args.tta
    paths = write_report(result, out, meta)
    print(
        f"{args.format}/{split}: {len(dataset)} images, accuracy {result.accuracy:.4f}, "
        f"balanced accuracy {result.balanced_accuracy:.4f}"
    )
    print(f"report: {paths['report']}")
    return 0
