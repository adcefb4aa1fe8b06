"""``dan predict``: label every face in images and videos, folders and globs; print a table or write rows.

Usage::

    dan predict photo.jpg photos/ "shots/**/*.png" --checkpoint model.pt --output faces.csv
    dan predict interviews/ --checkpoint model.pt --fps 5 --output rows.parquet

Videos (``.mp4 .avi .mkv .mov .webm``), and any run writing ``.jsonl``, ``.parquet`` or a folder, give
one row per face per analysed frame, streamed, resumable and with progress
(:mod:`dan.cli.predict_collection`, :mod:`dan.collection`). Images alone to ``.csv`` / ``.json`` or
a table work as below.

CSV columns: ``path, face, x, y, w, h, label, confidence``, then one probability column per class
named by the class name, then ``valence, arousal`` for a model with that output (``va_head``; the
JSON's faces have ``valence`` and ``arousal`` then too). A path that is missing, not an image, or a
folder with no images is reported by name and skipped; the exit status is 1 when anything failed,
else 0. Output files are written atomically, and only when at least one image was read.

Images are read, searched for faces and cropped in ``--workers`` threads while the model runs on
batches of ``--batch-size`` faces (:mod:`dan.inference.pipeline`); rows come in input order, and
``--workers 0`` runs one image at a time in one thread.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dan.cli.options import Number, add_model_and_detector_options, predictor_from_args
from dan.cli.predict_collection import add_collection_options, is_collection, score_collection
from dan.collection.inputs import expand_inputs
from dan.errors import DanError
from dan.fileio import check_writable

DEFAULT_BATCH_SIZE = 32  # dan.inference.pipeline.DEFAULT_BATCH_SIZE (not imported: --help stays fast)

__all__ = ["build_parser", "expand_inputs", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dan predict``."""
    p = argparse.ArgumentParser(
        prog="dan predict", description="Label the facial expression of every face in images and videos."
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders of them, or glob patterns")
    add_model_and_detector_options(p, whole="image", detect_size=640)
    p.add_argument(
        "--output",
        help="write results to FILE.csv or FILE.json (images), FILE.jsonl, FILE.parquet or a FOLDER/ of parts "
        "(videos too; default: print a table of images)",
    )
    p.add_argument("--recursive", action="store_true", help="also look for images in subfolders of folders")
    p.add_argument(
        "--threads",
        type=Number("--threads", int, minimum=1),
        help="CPU threads for the model (default: torch's, one per core)",
    )
    p.add_argument(
        "--batch-size",
        type=Number("--batch-size", int, minimum=1),
        default=DEFAULT_BATCH_SIZE,
        help=f"faces per model run (default {DEFAULT_BATCH_SIZE})",
    )
    p.add_argument(
        "--workers",
        type=Number("--workers", int, minimum=0),
        help="threads that read images, find faces and crop them while the model runs (default: one per core "
        "but one, 1 to 4; 0: one image at a time in one thread); for videos, videos scored at once",
    )
    add_collection_options(p)
    return p


def _print_table(rows: list[list], header: list[str]) -> None:
    if not rows:
        return
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        print("  ".join(c.ljust(w) if i in (0, 6) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())


def main(argv: list[str]) -> int:
    """Run ``dan predict``; returns 0 when every input was processed, 1 when some failed."""
    args = build_parser().parse_args(argv)
    paths, errors = expand_inputs(args.inputs, args.recursive)  # said once the output is known to be good
    if is_collection(paths, args.output):
        return score_collection(args, paths, errors)
    out = Path(args.output) if args.output else None
    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise DanError(f"{out}: --output must end in .csv or .json")
    if out is not None:
        check_writable(out)  # before the model is loaded and the images are read
    for message in errors:
        print(f"dan predict: {message}", file=sys.stderr)
    from dan.collection.writers import write_csv, write_json
    from dan.inference.pipeline import predict_images

    predictor = predictor_from_args(args)
    labels = predictor.labels
    rows: list[list] = []
    records: list[dict] = []
    for result in predict_images(predictor, paths, args.batch_size, args.workers):
        path, faces = result.path, result.faces
        if result.error is not None:
            errors.append(result.error)
            print(f"dan predict: {result.error}", file=sys.stderr)
            continue
        if not faces:
            print(f"dan predict: {path}: no face found", file=sys.stderr)
        records.append(
            {"path": str(path), "width": result.width, "height": result.height, "faces": [f.to_dict() for f in faces]}
        )
        for f in faces:
            row = [str(path), f.index, *f.box, f.label, f"{f.confidence:.4f}", *(f"{p:.4f}" for p in f.probabilities)]
            if predictor.has_va:  # a model with the valence/arousal output: two more columns
                row += [f"{f.valence:.4f}", f"{f.arousal:.4f}"]
            rows.append(row)
    header = ["path", "face", "x", "y", "w", "h", "label", "confidence", *labels]
    header += ["valence", "arousal"] if predictor.has_va else []
    if out is None:
        va = slice(-2, None) if predictor.has_va else slice(0, 0)  # the printed table: valence, arousal too
        _print_table([r[:8] + r[va] for r in rows], header[:8] + header[va])
    elif not records:  # nothing was read: no file that could pass for a result
        out = None
    elif out.suffix.lower() == ".csv":
        write_csv(out, header, rows)
    else:
        write_json(
            out, {"checkpoint": str(args.checkpoint), "labels": list(labels), "images": records, "errors": errors}
        )
    n_faces = len(rows)
    summary = f"{len(records)} image(s), {n_faces} face(s)" + (f", {len(errors)} failed" if errors else "")
    written = f"; wrote {out}" if out else ("; nothing written" if args.output else "")
    print(f"dan predict: {summary}{written}", file=sys.stderr)
    return 1 if errors else 0
