"""``dan evaluate``: score a model on a data set split and write a report.

Takes every model file ``dan`` writes or reads: this project's checkpoints, the reference
implementation's ``.pth`` files and released models by name, and exports (``.onnx``, ``.pt2``).
Images are prepared with the model's own preprocessing record. Writes ``metrics.json``,
``predictions.csv``, ``confusion.png`` and ``report.md`` into ``--output``. Imports neither Lightning
nor albumentations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dan.common import LABEL_SETS, DanError, MissingLabelsError, parse_labels

__all__ = ["main"]

FORMATS = ("rafdb", "affectnet", "fer2013", "folder")  # dan.data.readers.FORMATS, without importing it for --help
_DATA_LABELS = {"rafdb": "rafdb", "fer2013": "fer2013", "affectnet": "affectnet7"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dan evaluate", description=__doc__)
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a model file (.ckpt/.pt/.safetensors, reference .pth, .onnx, .pt2), a released model name "
        "(rafdb, affectnet7, affectnet8), an https:// URL or an hf:// path",
    )
    p.add_argument("--format", required=True, choices=FORMATS, help="data set layout")
    p.add_argument("--root", required=True, help="data set root folder")
    p.add_argument("--split", help="split to score (default: the format's test split)")
    p.add_argument(
        "--labels",
        type=parse_labels,
        help=f"the model's label set ({', '.join(LABEL_SETS)}) or comma-separated names (7-class reference files)",
    )
    p.add_argument("--num-classes", type=int, help="AffectNet: 7 or 8 (default: the model's class count)")
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--output", help="report folder (default runs/eval/<checkpoint>-<format>-<split>)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--rafdb-images", default="aligned", choices=("aligned", "original"))
    p.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx", "openvino"), help="model runtime")
    p.add_argument("--device", default="cpu", help="torch device for PyTorch checkpoints: cpu, cuda, cuda:1, ...")
    return p


def main(argv: list[str]) -> int:
    """Run ``dan evaluate``; returns the exit status."""
    args = _parser().parse_args(argv)
    from dan.data.dataset import build_dataset
    from dan.data.readers import default_splits
    from dan.evaluation.evaluate import evaluate_backend
    from dan.evaluation.report import write_report
    from dan.fileio import check_writable
    from dan.inference.backends import load_backend

    split = args.split or default_splits(args.format, args.root)[2]
    if split is None:
        raise DanError(f"{args.root}: no test/ or val/ split folder to score: name a split with --split")
    out = Path(args.output or Path("runs/eval") / f"{Path(args.checkpoint).stem}-{args.format}-{split}")
    if out.exists() and not out.is_dir():
        raise DanError(f"{out}: --output names a file; it takes a folder")
    out.mkdir(parents=True, exist_ok=True)
    check_writable(out / "metrics.json", "report")
    try:
        backend = load_backend(args.checkpoint, args.backend, labels=args.labels, device=args.device)
    except MissingLabelsError:  # a 7-class reference file: the data set's own label set
        default = _DATA_LABELS.get(args.format)
        if default is None:
            raise
        backend = load_backend(args.checkpoint, args.backend, labels=default, device=args.device)
        print(f"note: {args.checkpoint} carries no class names; assuming the {default} label order (--labels)")
    num_classes = args.num_classes
    if args.format == "affectnet" and num_classes is None:
        num_classes = len(backend.labels)
    dataset = build_dataset(
        args.format, args.root, split, num_classes, rafdb_images=args.rafdb_images, preprocessing=backend.preprocessing
    )
    result = evaluate_backend(backend, dataset, args.batch_size, args.workers, args.tta)
    meta = {"checkpoint": str(args.checkpoint), "format": args.format, "root": str(args.root), "split": split}
    meta["backend"] = getattr(backend, "name", type(backend).__name__)
    meta["tta"] = args.tta
    paths = write_report(result, out, meta)
    print(
        f"{args.format}/{split}: {len(dataset)} images, accuracy {result.accuracy:.4f}, "
        f"balanced accuracy {result.balanced_accuracy:.4f}"
    )
    print(f"report: {paths['report']}")
    return 0
