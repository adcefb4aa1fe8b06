#!/usr/bin/env python
"""``dan predict`` over a folder of photos, as users run it: an older commit's command against this one's.

Builds (once) a folder of ``--images`` distinct real photos (:mod:`scripts.common.photos`: scikit-image's
and matplotlib's sample photographs, cropped, scaled and re-encoded) and runs the command-line
``dan predict FOLDER --checkpoint MODEL --output CSV`` over it, in a process of its own, two ways:

- ``old``: the ``--old`` commit (default 5d1b7aa, before ``dan predict`` raced its runtimes), from a
  separate checkout (``git worktree add --detach``; made once under ``--old-tree``) on ``PYTHONPATH``;
- ``new``: this checkout's ``dan`` (``--backend auto``: the fastest runtime here that agrees with torch).

Both run from a scratch folder, not the repository root (``python -m`` puts the working folder first on
``sys.path``, which would import this checkout's ``dan`` for both), with the same ``DAN_HOME`` (export
cache and probe results: one untimed warm-up run of each first, so the one-time export and probe are
not in the figures), with the same default options. Rounds are interleaved (old, new, old, ...); each
figure is its best round. Faces/s is the faces in the CSV over the command's wall time (start-up and
model loading included, as a user waits for them). It checks that both CSVs hold the same rows: the
same images, faces, boxes and labels, the probabilities within ``--tolerance``. The model is the
paper's size (ResNet-18, K = 4, 224 px), randomly initialised (seed 0), unless ``--checkpoint`` names
one. Usage::

    python -m scripts.bench.predict [--images 200] [--rounds 3] [--threads N] [--checkpoint FILE]
        [--old 5d1b7aa] [--old-tree /tmp/dan-old]

Exit status 1 when the rows differ.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scripts.common.measure import REPO, machine_header, markdown_table
from scripts.common.photos import make_photo_folder

OLD = "5d1b7aa"
"""The commit before ``dan predict`` raced its runtimes (``--backend auto`` picked by the file's suffix)."""


def lscpu() -> list[str]:
    """lscpu's ``Model name`` and ``Flags`` lines (empty where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [line.strip() for line in out.splitlines() if line.startswith(("Model name:", "Flags:"))]


def old_checkout(commit: str, tree: Path) -> Path:
    """A checkout of ``commit`` at ``tree`` (``git worktree add --detach`` when it is not there yet)."""
    if not (tree / "dan" / "__init__.py").is_file():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True)
    return tree


def paper_checkpoint(path: Path, backbone: str, size: int) -> Path:
    """The paper-size DAN (ResNet-18, 4 heads, 7 RAF-DB classes, 224 px), random weights (seed 0), saved once."""
    if path.is_file():
        return path
    import torch

    import dan

    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=4, backbone=backbone).eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=size)
    return dan.save_model(model, path)


def run_predict(
    tree: Path, folder: Path, checkpoint: Path, out: Path, extra: list[str], env: dict
) -> tuple[float, str]:
    """Run ``dan predict`` of the checkout ``tree`` from ``out``'s folder: its wall time and its stderr."""
    argv = [sys.executable, "-m", "dan", "predict", str(folder), "--checkpoint", str(checkpoint), "--output", str(out)]
    start = time.perf_counter()
    done = subprocess.run(
        [*argv, *extra], cwd=out.parent, env={**env, "PYTHONPATH": str(tree)}, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"dan predict of {tree} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return seconds, done.stderr


def read_rows(path: Path) -> list[tuple]:
    """The CSV's rows: (path, face, box, label) and the probabilities as an array."""
    with open(path, newline="") as f:
        header, *body = list(csv.reader(f))
    first = header.index("confidence") + 1
    return [(tuple(r[:first - 1]), np.array(r[first:], np.float64)) for r in body]  # fmt: skip


def same_rows(a: list[tuple], b: list[tuple], tolerance: float) -> tuple[bool, float]:
    """Whether two CSVs' rows agree (probabilities within ``tolerance``), and the largest probability difference."""
    if len(a) != len(b) or any(x[0] != y[0] for x, y in zip(a, b)):
        return False, float("inf")
    worst = max((float(np.abs(x[1] - y[1]).max()) for x, y in zip(a, b) if len(x[1])), default=0.0)
    return worst <= tolerance, worst


def main(argv: list[str] | None = None) -> int:
    """Time both commands over the folder and print the table; 1 when their rows differ."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200, help="photos in the folder (default 200)")
    p.add_argument("--folder", default=str(REPO / "runs" / "bench_predict" / "photos"), help="where they go")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--threads", type=int, help="--threads for both commands (default: theirs)")
    p.add_argument("--checkpoint", help="a model file both commits read (default: the paper-size random model)")
    p.add_argument("--backbone", default="resnet18", help="the random model's backbone (default resnet18)")
    p.add_argument("--size", type=int, default=224, help="the random model's input size (default 224)")
    p.add_argument("--old", default=OLD, help=f"the commit to compare with (default {OLD})")
    p.add_argument("--old-tree", help="its checkout (default: a folder under the system's temporary folder)")
    p.add_argument(
        "--tolerance", type=float, default=1.5e-4, help="largest probability difference (the CSV has 4 decimals)"
    )
    args = p.parse_args(argv)
    folder = Path(args.folder).resolve()
    paths = make_photo_folder(folder, args.images)
    work = Path(tempfile.mkdtemp(prefix="benchmark_predict-"))
    old = old_checkout(args.old, Path(args.old_tree or Path(tempfile.gettempdir()) / f"dan-old-{args.old}").resolve())
    model = paper_checkpoint(work / f"paper-{args.backbone}-{args.size}.pt", args.backbone, args.size)
    checkpoint = Path(args.checkpoint).resolve() if args.checkpoint else model
    env = {**os.environ, "DAN_HOME": str(work / "home"), "CUDA_VISIBLE_DEVICES": ""}
    extra = ["--device", "cpu", *(["--threads", str(args.threads)] if args.threads else [])]
    trees = {"old": old, "new": REPO}
    print(machine_header(args.threads, ["cv2", "onnxruntime", "openvino"]))
    for line in lscpu():
        print(f"lscpu: {line}")
    print(f"model: {args.checkpoint or f'{args.backbone} DAN, {args.size} px, random weights (seed 0)'}; "
          f"{len(paths)} photos; old: {args.old} from {old}; new: {REPO}")  # fmt: skip
    for name, tree in trees.items():  # warm-up: the new command's one-time export and probe, both page caches
        seconds, err = run_predict(tree, folder, checkpoint, work / f"{name}.csv", extra, env)
        print(
            f"warm-up {name}: {seconds:.1f} s",
            *(ln for ln in err.splitlines() if ln.startswith("backend:")),
            flush=True,
        )
    best = dict.fromkeys(trees, float("inf"))
    for k in range(args.rounds):
        for name, tree in trees.items():
            seconds, _ = run_predict(tree, folder, checkpoint, work / f"{name}.csv", extra, env)
            best[name] = min(best[name], seconds)
            print(f"round {k + 1} {name}: {seconds:.2f} s", flush=True)
    rows = {name: read_rows(work / f"{name}.csv") for name in trees}
    faces = sum(1 for r in rows["old"] if len(r[1]))
    ok, worst = same_rows(rows["old"], rows["new"], args.tolerance)
    table = [[n, f"{best[n]:.2f}", f"{faces / best[n]:.2f}", f"{best['old'] / best[n]:.2f}x"] for n in trees]
    print()
    print(markdown_table(["dan predict", "s per folder", "faces/s", "speed-up"], table, right=(1, 2, 3)))
    print()
    same = "the same rows" if ok else "DIFFERENT rows"
    print(f"{faces} faces in {len(paths)} photos; {same} (largest probability difference {worst:.2g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
