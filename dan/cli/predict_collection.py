"""``dan predict`` over videos and collections: the options and the run (:mod:`dan.collection`).

Used by :mod:`dan.cli.predict` when an input is a video, or ``--output`` is a ``.jsonl`` or
``.parquet`` file or a folder: one row per face per analysed frame (columns in
:mod:`dan.collection.rows`), written as frames are scored into one part per input, resumable
(:mod:`dan.collection.store`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dan.cli.options import Number
from dan.errors import DanError

__all__ = ["add_collection_options", "is_collection", "score_collection"]

_COLLECTION_SUFFIXES = (".jsonl", ".parquet")


def add_collection_options(p: argparse.ArgumentParser) -> None:
    """Add ``--every``, ``--fps``, ``--format``, ``--smoothing``, ``--quiet`` to ``dan predict``'s parser."""
    g = p.add_argument_group("videos and collections")
    sample = g.add_mutually_exclusive_group()
    sample.add_argument(
        "--every",
        type=Number("--every", int, minimum=1),
        default=1,
        metavar="N",
        help="analyse every N-th frame of a video",
    )
    sample.add_argument(
        "--fps", type=Number("--fps", float, above=0), metavar="F", help="analyse F frames a second of a video"
    )
    g.add_argument(
        "--format",
        choices=("csv", "jsonl", "parquet"),
        default="csv",
        help="the parts' format when --output is a folder (default csv; parquet needs pyarrow: dan-fer[parquet])",
    )
    g.add_argument(
        "--smoothing",
        type=Number("--smoothing", float, minimum=0, below=1),
        default=0.6,
        help="weight of the past in each face track's probabilities, as in dan demo (default 0.6; 0: none)",
    )
    g.add_argument("--quiet", action="store_true", help="no progress line")
    g.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="score on a Ray cluster (dan-fer[scale]): its address, or 'local' for one on this machine; --workers "
        "actors, each whole videos; paths must be the same on every node",
    )


def is_collection(paths: list[Path], output: str | None) -> bool:
    """Whether ``dan predict`` writes rows per frame (videos, a ``.jsonl`` / ``.parquet`` file or a folder)."""
    from dan.collection.inputs import is_video

    if any(is_video(p) for p in paths):
        return True
    if output is None:
        return False
    out = Path(output)
    return out.suffix.lower() in _COLLECTION_SUFFIXES or out.is_dir() or output.endswith("/") or not out.suffix


def score_collection(args: argparse.Namespace, paths: list[Path], errors: list[str]) -> int:
    """Score ``paths`` into ``args.output``; returns the exit status (1 when anything was skipped)."""
    from dan.cli.options import predictor_from_args
    from dan.collection.frames import Sampling
    from dan.collection.run import run_collection
    from dan.collection.store import PartStore
    from dan.inference.pipeline import default_workers

    if args.output is None:
        raise DanError("videos give one row per face per frame: name an --output (.csv, .jsonl, .parquet or a folder/)")
    if args.output.lower().endswith(".json"):
        raise DanError(
            f"{args.output}: rows of videos are written as .csv, .jsonl or .parquet (or a folder), not .json"
        )
    sampling = Sampling(args.every, args.fps)
    store = PartStore(args.output, args.format)  # a bad output fails here, before the model loads
    for message in errors:  # inputs that are not there, said once the output is known to be good
        print(f"dan predict: {message}", file=sys.stderr)
    if args.ray:
        return _on_ray(args, paths, errors)
    try:
        predictor = predictor_from_args(args)
    except BaseException:
        store.remove_if_empty()
        raise
    stats = run_collection(
        predictor,
        paths,
        args.output,
        args.format,
        sampling,
        args.smoothing,
        args.batch_size,
        default_workers() if args.workers is None else max(1, args.workers),
        args.quiet,
    )
    for path, reason in stats.skipped:
        print(
            f"dan predict: skipped {reason}" if reason.startswith(path) else f"dan predict: skipped {path}: {reason}",
            file=sys.stderr,
        )
    for message in stats.errors:
        print(f"dan predict: {message}", file=sys.stderr)
    done = f"{stats.finished} input(s) scored, {stats.already} already done, {len(stats.skipped)} skipped"
    summary = f"{done}; {stats.frames} frame(s), {stats.rows} row(s) in {stats.seconds:.1f} s"
    if stats.interrupted:
        print(f"dan predict: interrupted: {summary}; run the same command again to go on", file=sys.stderr)
        return 130
    where = f"; wrote {stats.output}" if stats.output else "; nothing written"
    print(f"dan predict: {summary}{where}", file=sys.stderr)
    return 1 if errors or stats.skipped else 0


def _on_ray(args: argparse.Namespace, paths: list[Path], errors: list[str]) -> int:
    """``dan predict --ray``: :func:`dan.collection.distributed.run_on_ray`; returns the exit status."""
    from dan.collection.distributed import run_on_ray
    from dan.collection.frames import Sampling

    address = None if args.ray == "local" else args.ray
    options = {"backend": args.backend, "detector": args.detector, "detect_size": args.detect_size}
    stats = run_on_ray(
        args.checkpoint,
        paths,
        args.output,
        args.format,
        Sampling(args.every, args.fps),
        args.smoothing,
        args.workers or 2,
        address=address,
        **options,
    )
    for path, reason in stats.skipped:
        print(f"dan predict: skipped {reason if path in reason else f'{path}: {reason}'}", file=sys.stderr)
    summary = f"{stats.finished} input(s) scored on Ray, {stats.already} already done, {len(stats.skipped)} skipped"
    where = f"; wrote {stats.output}" if stats.output else "; nothing written"
    print(f"dan predict: {summary}; {stats.frames} frame(s), {stats.rows} row(s){where}", file=sys.stderr)
    return 1 if errors or stats.skipped else 0
