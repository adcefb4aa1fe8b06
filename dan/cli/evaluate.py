"""``dan evaluate``: score a model on a data set split and write a report.

Takes every model file ``dan`` writes or reads: this project's checkpoints, the reference
implementation's ``.pth`` files and released models by name, and exports (``.onnx``, ``.pt2``).
Images are prepared with the model's own preprocessing record, and probabilities are softmax(logits / T)
with the model's calibrated temperature (``dan calibrate``). A data set with another label set is scored
on the classes both have (what is left out is listed). The data set is read with the options the model
was trained with (its record, :class:`dan.data.provenance.TrainedOn`: CK+'s fold, fold count, split seed,
peak frames and first frame as neutral, ExpW's split seed, AffectNet's class count, RAF-DB's images)
unless a flag says otherwise, and a split holding faces the model trained on is refused before anything
is written. Writes ``metrics.json``, ``predictions.csv``,
``confusion.png``, ``reliability.png`` and ``report.md`` into ``--output``. Imports neither Lightning
nor albumentations.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from dan.cli.options import Number, add_device_option, add_model_and_data_options, say_device
from dan.cli.read_options import add_read_options, read_options, recorded_training
from dan.errors import DanError, MissingLabelsError
from dan.vocab import BACKENDS, LABEL_SETS, parse_labels

if TYPE_CHECKING:
    from dan.data.formats import DataFormat
    from dan.data.options import ReadOptions
    from dan.data.samples import SplitData
    from dan.runtime.backend import Backend

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
    add_read_options(p, recorded=True)
    p.add_argument("--tta", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--output", help="report folder (default runs/eval/<checkpoint>-<format>-<split>)")
    p.add_argument("--batch-size", type=Number("--batch-size", int, minimum=1), default=64)
    p.add_argument("--workers", type=Number("--workers", int, minimum=0), default=2, help="DataLoader worker processes")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="model runtime (auto: the fastest float32 runtime here that agrees with torch; an export file runs "
        "with its own runtime)",
    )
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


def _class_count(fmt: DataFormat, root: str, options: ReadOptions, model_classes: int) -> int | None:
    """The model's class count when the data set can be read with it (AffectNet's 7 or 8), else None (its own)."""
    try:
        fmt.label_names(root, options.overridden(num_classes=model_classes))
    except DanError:
        return None
    return model_classes


def _split(fmt: DataFormat, args: argparse.Namespace, options: ReadOptions) -> str:
    """The on-disk split to score: ``--split`` resolved, else the test split of these options."""
    if args.split:
        try:  # a role the data set lacks (RAF-DB's val) is an error, never another split scored instead
            return fmt.resolve_split(args.root, args.split, options)
        except DanError as err:
            raise DanError(f"--split {args.split}: {err}") from None
    split = fmt.default_splits(args.root, options)[2]
    if split is None:
        raise DanError(f"{args.root}: no test/ or val/ split folder to score: name a split with --split")
    return split


def _report_folder(out: Path) -> Path | None:
    """Make the report folder and check that it takes files; returns the topmost folder made (None: it was there).

    Raises:
        DanError: ``out`` is a file, cannot be made, or does not take files.
    """
    from dan.fileio import check_writable

    if out.exists() and not out.is_dir():
        raise DanError(f"{out}: --output names a file; it takes a folder")
    made = next((p for p in reversed((out, *out.parents)) if not p.exists()), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DanError(f"{out}: cannot create the report folder: {err.strerror or err}") from None
    check_writable(out / "metrics.json", "report")  # creates and removes a file there
    return made


def _unmake(out: Path, made: Path) -> None:
    """Remove the empty folders :func:`_report_folder` made, ``out`` up to ``made``."""
    for folder in (out, *out.parents):
        folder.rmdir()
        if folder == made:
            return


def _backend(args: argparse.Namespace, fmt: DataFormat) -> Backend:
    """The model's runtime; a reference file without class names gets the data set's label order."""
    from dan.auto.open import open_backend

    try:
        return open_backend(args.checkpoint, args.backend, labels=args.labels, device=args.device, int8=False)
    except MissingLabelsError:  # a 7-class reference file: the data set's own label set
        default = fmt.eval_labels
        if default is None:
            raise
        backend = open_backend(args.checkpoint, args.backend, labels=default, device=args.device, int8=False)
        print(f"note: {args.checkpoint} carries no class names; assuming the {default} label order (--labels)")
        return backend


def _scored_split(args: argparse.Namespace, fmt: DataFormat, backend: Backend) -> tuple[ReadOptions, SplitData]:
    """The reader options (the model's record, flags over it) and the split to score, refused when it
    holds faces the model trained on."""
    trained = recorded_training(args.checkpoint, backend, fmt)
    options = read_options(args, trained.options if trained is not None else None)
    if options.num_classes is None:
        options = options.overridden(num_classes=_class_count(fmt, args.root, options, len(backend.labels)))
    data = fmt.read_split(args.root, _split(fmt, args, options), options)  # class names checked
    if trained is not None:  # never score faces the model trained on
        trained.refuse_trained_faces(fmt, args.root, data, f"--split {args.split}" if args.split else args.root)
    return options, data


def main(argv: list[str]) -> int:
    """Run ``dan evaluate``; returns the exit status."""
    args = _parser().parse_args(argv)
    from dan.data.dataset import FERDataset
    from dan.data.formats import get_format
    from dan.data.transforms import Transform
    from dan.evaluation.evaluate import evaluate_backend
    from dan.evaluation.report import write_report

    fmt = get_format(args.format, "--format")
    given = Path(args.output) if args.output else None
    made = _report_folder(given) if given is not None else None  # checked before the model is loaded
    try:
        backend = _backend(args, fmt)
        options, data = _scored_split(args, fmt, backend)
    except BaseException:
        if given is not None and made is not None:  # a refusal leaves no folder behind
            _unmake(given, made)
        raise
    split = data.split
    out = given or Path("runs/eval") / f"{Path(args.checkpoint).stem}-{args.format}-{split}"
    if given is None:
        _report_folder(out)
    say_device(backend)  # after every refusal, so a refusal is one line
    dataset = FERDataset(data, Transform("eval", backend.preprocessing))
    from dan.collection.progress import Progress

    batches = -(-len(dataset) // max(1, args.batch_size))  # at most: classes the model lacks are left out
    progress = Progress(batches, "batch", quiet=args.quiet, prefix="dan evaluate")
    try:
        result = evaluate_backend(backend, dataset, args.batch_size, args.workers, args.tta, progress.update)
    except DanError as err:  # an unreadable or over-sized image, maybe raised in a DataLoader worker
        progress.close(finished=False)
        raise _worker_error(err) from None
    except BaseException:
        progress.close(finished=False)
        raise
    progress.close()
    meta = {"checkpoint": str(args.checkpoint), "format": args.format, "root": str(args.root), "split": split}
    meta["read"] = options.to_record()
    meta["backend"] = backend.name
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
