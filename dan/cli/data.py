"""``dan data check --format F --root DIR``: counts per split and class, and every problem found.
``dan data pack --format F --root DIR --output DIR|s3://BUCKET/PREFIX``: LitData chunks for training at scale.

Exit status: 0 when the data set is clean (or packed), 1 when anything is wrong.
"""

from __future__ import annotations

import argparse

from dan.cli.read_options import add_read_options, read_options
from dan.vocab import FORMAT_NAMES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dan data", description="Data set tools.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    c = sub.add_parser("check", help="count a data set per split and class and list every problem")
    c.add_argument("--format", required=True, choices=FORMAT_NAMES, help="data set layout")
    c.add_argument("--root", required=True, help="data set root folder (FER2013: folder or fer2013.csv)")
    add_read_options(c, recorded=False)
    c.add_argument("--no-decode", action="store_true", help="do not decode the images (faster, finds less)")
    c.add_argument("--workers", type=int, default=None, help="decoding threads (default: CPU count)")
    k = sub.add_parser("pack", help="write a data set's splits as LitData chunks (a folder or s3://BUCKET/PREFIX)")
    k.add_argument("--format", required=True, choices=[f for f in FORMAT_NAMES if f != "packed"], help="source layout")
    k.add_argument("--root", required=True, help="source data set root folder (FER2013: folder or fer2013.csv)")
    k.add_argument("--output", required=True, help="a new folder, or s3://BUCKET/PREFIX (credentials: AWS_* variables)")
    k.add_argument("--split", action="append", default=None, help="pack only this split (repeatable; default all)")
    add_read_options(k, recorded=False)
    k.add_argument("--chunk-bytes", default="64MB", help="target chunk size (default 64MB)")
    return p


def _pack(args: argparse.Namespace) -> int:
    from dan.data.options import ReadOptions
    from dan.data.pack import pack_dataset

    options = read_options(args, ReadOptions(soft_targets=True))  # vote fractions where the format has them
    pack_dataset(args.format, args.root, args.output, args.split, options, args.chunk_bytes)
    return 0


def main(argv: list[str]) -> int:
    """Run ``dan data`` with ``argv`` (without the command name); returns the exit status."""
    args = _parser().parse_args(argv)
    if args.action == "pack":
        return _pack(args)
    from dan.data.check import check_dataset

    options = read_options(args, strict=False)
    report = check_dataset(args.format, args.root, options, decode=not args.no_decode, workers=args.workers)
    print(report.text())
    return 0 if report.ok else 1
