"""``dan models``: list the released models (and whether they are cached); ``dan models download NAME...``.

Any ``--checkpoint`` option also takes a released name (``rafdb``, ``affectnet7``, ``affectnet8``), an
https:// URL or an ``hf://owner/repo/path[@revision]`` path: the file is fetched once into the cache
(``$DAN_HOME/models``, default ``~/.cache/dan/models``) and read from there afterwards, with no network.
"""

from __future__ import annotations

import argparse
import sys

from dan.common import DanError
from dan.hub import RELEASED, is_remote, list_released, models_dir

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dan models", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="action", metavar="{list,download}")
    sub.add_parser("list", help="list the released models (the default)")
    d = sub.add_parser("download", help="fetch released models (or URLs, hf:// paths) into the cache")
    d.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(RELEASED)}, an https:// URL or hf:// path")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _list() -> int:
    rows = list_released()
    width = max(len(r["name"]) for r in rows)
    print(f"{'name'.ljust(width)}  classes  accuracy  balanced  cached")
    for r in rows:
        cached = f"yes: {r['cached']}" if r["cached"] else "no"
        acc, bacc = _percent(r["accuracy"]), _percent(r["balanced_accuracy"])
        print(f"{r['name'].ljust(width)}  {r['num_classes']:>7}  {acc:>8}  {bacc:>8}  {cached}")
        print(f"{''.ljust(width)}  {r['description']}; labels {r['labels']}")
        print(f"{''.ljust(width)}  file {r['file']} from {r['url']}")
    print(f"\ncache: {models_dir()} (set DAN_HOME to move it); fetch with: dan models download NAME")
    return 0


def _download(names: list[str], progress: bool) -> int:
    from dan.hub import resolve_checkpoint
    from dan.models.checkpoint import checkpoint_verifier

    status = 0
    for name in names:
        if not is_remote(name):
            print(
                f"dan models: error: {name}: not a released model name ({', '.join(RELEASED)}), "
                "https:// URL or hf:// path",
                file=sys.stderr,
            )
            status = 1
            continue
        try:
            path = resolve_checkpoint(name, verify=checkpoint_verifier(name), progress=progress)
        except DanError as err:
            print(f"dan models: error: {err}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: {path}")
    return status


def main(argv: list[str]) -> int:
    """Run ``dan models``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.action == "download":
        return _download(args.names, progress=not args.quiet)
    return _list()
