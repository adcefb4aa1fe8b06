"""Print the SHA-256 of each released model and backbone, for the catalogue (``sha256=`` in ``dan/hub/catalogue.py``).

Usage::

    python -m scripts.maint.pin_releases                 # downloads each release into a fresh folder (online)
    python -m scripts.maint.pin_releases --cache         # hashes the files already in $DAN_HOME/models instead

Each file is downloaded the way ``dan`` downloads it (Google Drive through gdown) and verified (every key
and shape of the reference layout, or of torchvision's model for a backbone) before it is hashed; a
release that already has a pin is checked against it. Paste the printed lines into the
``ReleasedModel(...)`` / ``ReleasedBackbone(...)`` entries of ``dan/hub/catalogue.py``. Pin
only files fetched from the original release (not a copy of unknown origin): once pinned, every user's
download and every load from the cache is checked against the hash.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from dan import hub
from dan.errors import DanError
from dan.hub import records as hubcache
from dan.models.backbone import check_torchvision_layout, resolve_backbone_weights
from dan.models.loading import checkpoint_verifier
from dan.paths import models_dir


def pin_lines(names: list[str], from_cache: bool, progress: bool) -> tuple[list[str], int]:
    """One ``name: sha256="...",  # size`` line per release, and the number that failed."""
    lines, failed = [], 0
    for name in names:
        m = hub.RELEASED.get(name) or hub.BACKBONES[name]
        verify = checkpoint_verifier(name) if name in hub.RELEASED else check_torchvision_layout
        try:
            if from_cache:
                path = models_dir() / m.filename
                if not path.is_file():
                    raise DanError(f"{path}: not in the cache")
                verify(path)
            elif name in hub.BACKBONES:
                path = resolve_backbone_weights(name, progress=progress)
            else:
                path = hub.resolve_checkpoint(name, verify=verify, progress=progress)
            digest = hubcache.sha256_file(path)
        except DanError as err:
            print(f"pin_releases: {name}: {err}", file=sys.stderr)
            failed += 1
            continue
        known = "" if m.sha256 is None else ("; matches the catalogue" if m.sha256 == digest else "; CATALOGUE DIFFERS")
        lines.append(f'{name}: sha256="{digest}",  # {path.stat().st_size:,} bytes, {m.filename}{known}')
    return lines, failed


def main(argv: list[str] | None = None) -> int:
    """Print the pins; returns 1 if any release could not be fetched or verified."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    every = [*hub.RELEASED, *hub.BACKBONES]
    p.add_argument("names", nargs="*", default=every, help="releases (default: all)")
    p.add_argument("--cache", action="store_true", help="hash the files in $DAN_HOME/models, do not download")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in every]
    if unknown:
        p.error(f"not a released model or backbone: {', '.join(unknown)} (choose from {', '.join(every)})")
    if args.cache:
        lines, failed = pin_lines(args.names, True, not args.quiet)
    else:
        with tempfile.TemporaryDirectory(prefix="dan-pins-") as home:
            before = os.environ.get("DAN_HOME")
            os.environ["DAN_HOME"] = str(Path(home))  # a fresh download, never a cached copy
            try:
                lines, failed = pin_lines(args.names, False, not args.quiet)
            finally:
                if before is None:
                    os.environ.pop("DAN_HOME", None)
                else:
                    os.environ["DAN_HOME"] = before
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
