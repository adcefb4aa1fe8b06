"""``dan models``: list the released models and the state of their cached files; ``dan models download NAME...``.

The released backbone ``msceleb`` (the MS-Celeb-1M ResNet-18 the paper starts from) is listed and
downloaded here too; it is what ``model.backbone_weights: msceleb`` (the paper's configs) uses, never a
``--checkpoint``.

Any ``--checkpoint`` option also takes a released name (``rafdb``, ``affectnet7``, ``affectnet8``), an
https:// URL or an ``hf://owner/repo/path[@revision]`` path: the file is fetched once into the cache
(``$DAN_HOME/models``, default ``~/.cache/dan/models``) and read from there afterwards, with no network.
Every use checks the cached file's SHA-256 against the catalogue's pin or, for a release not pinned
yet, the hash recorded at its first download (``<file>.sha256``). The list says for each: verified,
MISMATCH (damaged or replaced: ``dan models download NAME --force`` fetches it again), unpinned (found
in the cache, not used yet), or not cached.
"""

from __future__ import annotations

import argparse
import sys

from dan.errors import DanError
from dan.hub import BACKBONES, RELEASED, is_remote, list_backbones, list_released
from dan.paths import models_dir

__all__ = ["main"]


def _print_file(r: dict, pad: str) -> None:
    """A listed file's source, hash and cached copy (with how to fetch it again when it does not match)."""
    print(f"{pad}  file {r['file']} from {r['url']}")
    print(f"{pad}  sha256 {r['sha256'] or 'not in the catalogue yet (recorded at the first download)'}")
    if r["cached"]:
        fix = "; fetch it again: dan models download " + r["name"] + " --force" if r["state"] == "MISMATCH" else ""
        print(f"{pad}  cached {r['cached']}{fix}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dan models", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="action", metavar="{list,download}")
    sub.add_parser("list", help="list the released models (the default)")
    d = sub.add_parser("download", help="fetch released models (or URLs, hf:// paths) into the cache")
    names = ", ".join([*RELEASED, *BACKBONES])
    d.add_argument("names", nargs="+", metavar="NAME", help=f"{names}, an https:// URL or hf:// path")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--force", action="store_true", help="delete the cached file first and fetch it again")
    return p


def _percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _list() -> int:
    rows = list_released()
    width = max(len(r["name"]) for r in rows)
    print(f"{'name'.ljust(width)}  classes  accuracy  balanced  cache")
    for r in rows:
        acc, bacc = _percent(r["accuracy"]), _percent(r["balanced_accuracy"])
        print(f"{r['name'].ljust(width)}  {r['num_classes']:>7}  {acc:>8}  {bacc:>8}  {r['state']}")
        pad = "".ljust(width)
        print(f"{pad}  {r['description']}; labels {r['labels']}")
        _print_file(r, pad)
    print("\nbackbone weights (model.backbone_weights: NAME in a training config; not a --checkpoint):")
    for r in list_backbones():
        width = max(width, len(r["name"]))
        pad = "".ljust(width)
        print(f"{r['name'].ljust(width)}  {r['architecture']:>7}  {r['state']}")
        print(f"{pad}  {r['description']}")
        _print_file(r, pad)
    print(f"\ncache: {models_dir()} (set DAN_HOME to move it); fetch with: dan models download NAME")
    return 0


def _download(names: list[str], progress: bool, force: bool) -> int:
    from dan.hub import remove_cached, resolve_checkpoint
    from dan.models.backbone import resolve_backbone_weights
    from dan.runtime.download_check import download_check

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
            if force:
                remove_cached(name)
            if name in BACKBONES:
                path = resolve_backbone_weights(name, progress=progress)
            else:
                path = resolve_checkpoint(name, verify=download_check(name), progress=progress)
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
        return _download(args.names, progress=not args.quiet, force=args.force)
    return _list()
