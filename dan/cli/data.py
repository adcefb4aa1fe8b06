"""``dan data check --format F --root DIR``: counts per split and class, and every problem found.

Exit status: 0 when the data set is clean, 1 when anything is wrong.
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
    return p


def main(argv: list[str]) -> int:
    """Run ``dan data`` with ``argv`` (without the command name); returns the exit status."""
    args = _parser().parse_args(argv)
    from dan.data.check import check_dataset

    options = read_options(args, strict=False)
    report = check_dataset(args.format, args.root, options, decode=not args.no_decode, workers=args.workers)
    print(report.text())
    return 0 if report.ok else 1
