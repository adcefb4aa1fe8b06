"""``dan evaluate``: score a model on a data set split and write a report.

Takes every model file ``dan`` writes or reads: this project's checkpoints, the reference
implementation's ``.pth`` files and released models by name, and exports (``.onnx``, ``.pt2``).
Images are prepared with the model's own preprocessing record, and probabilities are softmax(logits / T)
with the model's calibrated temperature (``dan calibrate``). A data set with another label set is scored
on the classes both have (what is left out is listed). Writes ``metrics.json``, ``predictions.csv``,
``confusion.png``, ``reliability.png`` and ``report.md`` into ``--output``. Imports neither Lightning
nor albumentations.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from dan.cli.options import add_device_option, add_model_and_data_options, say_device
from dan.errors import DanError, MissingLabelsError
from dan.vocab import BACKENDS, LABEL_SETS, RAFDB_IMAGES, parse_labels

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dan evaluate", description=__doc__)
    add_model_and_data_options(p)
    p.add_argument("--split", help="split to score (default: the format's test split; RAF-DB has no val split)")
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
    p.add_argument("--rafdb-images", default="aligned", choices=RAFDB_IMAGES)
    p.add_argument("--backend", default="auto", choices=BACKENDS, help="model runtime")
    add_device_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def _worker_error(err: DanError) -> DanError:
    """A DataLoader worker's error as its one line: torch re-raises it with the worker's traceback in the
    message ("Caught ImageReadError in DataLoader worker process 0. Original Traceback ...")."""
    text = str(err).strip()
    if "Original Traceback" not in text:
        return err
    last = text.splitlines()[-1]  # "dan.imaging.ImageReadError: path: what is wrong"
    return type(err)(last.partition(": ")[2] or last)


def main(argv: list[str]) -> int:
    """Run ``dan evaluate``; returns the exit status."""
    args = _parser().parse_args(argv)
    from dan.collection.progress import Progress
    from dan.data.dataset import build_dataset
    from dan.data.formats import ReadOptions, get_format
    from dan.evaluation.evaluate import evaluate_backend
    from dan.evaluation.report import write_report
    from dan.fileio import check_writable
    from dan.runtime.loader import load_backend

    fmt = get_format(args.format, "--format")
    options = ReadOptions(rafdb_images=args.rafdb_images)
    split: str | None
    if args.split:
        try:  # a role the data set lacks (RAF-DB's val) is an error, never another split scored instead
            split = fmt.resolve_split(args.root, args.split, options)
        except DanError as err:
            raise DanError(f"--split {args.split}: {err}") from None
    else:
        split = fmt.default_splits(args.root, options)[2]
    if split is None:
        raise DanError(f"{args.root}: no test/ or val/ split folder to score: name a split with --split")
    out = Path(args.output or Path("runs/eval") / f"{Path(args.checkpoint).stem}-{args.format}-{split}")
    if out.exists() and not out.is_dir():
        raise DanError(f"{out}: --output names a file; it takes a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DanError(f"{out}: cannot create the report folder: {err.strerror or err}") from None
    check_writable(out / "metrics.json", "report")  # creates and removes a file there: before any work
    try:
        backend = load_backend(args.checkpoint, args.backend, labels=args.labels, device=args.device)
    except MissingLabelsError:  # a 7-class reference file: the data set's own label set
        default = fmt.eval_labels
        if default is None:
            raise
        backend = load_backend(args.checkpoint, args.backend, labels=default, device=args.device)
        print(f"note: {args.checkpoint} carries no class names; assuming the {default} label order (--labels)")
    say_device(backend)
    num_classes = args.num_classes
    if args.format == "affectnet" and num_classes is None:
        num_classes = len(backend.labels)
    dataset = build_dataset(
        args.format, args.root, split, num_classes, rafdb_images=args.rafdb_images, preprocessing=backend.preprocessing
    )
    batches = -(-len(dataset) // max(1, args.batch_size))  # at most: classes the model lacks are left out
    progress = Progress(batches, "batch", quiet=args.quiet, prefix="dan evaluate")
    try:
        result = evaluate_backend(backend, dataset, args.batch_size, args.workers, args.tta, progress.update)
    except DanError as err:  # an unreadable or over-sized image, maybe raised in a DataLoader worker
        raise _worker_error(err) from None
    finally:
        progress.close()
    meta = {"checkpoint": str(args.checkpoint), "format": args.format, "root": str(args.root), "split": split}
    meta["backend"] = getattr(backend, "name", type(backend).__name__)
    meta["tta"] = args.tta
    paths = write_report(result, out, meta)
    for line in result.left_out_lines():  # another label set: what was not scored, on each side
        print(f"note: {line}")
    scored = f" ({len(result.targets)} of the shared classes)" if len(result.targets) != len(dataset) else ""
    print(
        f"{args.format}/{split}: {len(dataset)} images{scored}, accuracy {result.accuracy:.4f}, "
        f"balanced accuracy {result.balanced_accuracy:.4f}"
    )
    if result.calibration is not None:
        cal = result.calibration
        print(
            f"calibration: ECE {cal['ece']:.4f}, NLL {cal['nll']:.4f}, Brier {cal['brier']:.4f} "
            f"(T {cal['temperature']:.4g})"
        )
    if result.va_scores is not None:  # a model with the valence/arousal output, on data that has them
        from dan.evaluation.va_metrics import va_lines

        for line in va_lines(result.va_scores):
            print(line)
    print(f"report: {paths['report']}")
    return 0
