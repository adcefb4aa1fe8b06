#!/usr/bin/env python
"""Benchmark the training input pipeline per worker: ours against the reference implementation's.

Both read the same RAF-DB-layout files in one process (what one DataLoader worker does) and turn
each into an augmented, normalised 224x224 float tensor:

- ours: :class:`dan.data.dataset.FERDataset` (OpenCV decode via ``dan.imaging``, the ``rafdb``
  albumentations pipeline);
- reference: PIL ``Image.open(...).convert("RGB")`` and the reference torchvision recipe (Resize 224,
  RandomHorizontalFlip, RandomApply([RandomRotation(20), RandomCrop(224, padding=32)], p=0.2),
  ToTensor, Normalize, RandomErasing(scale=(0.02, 0.25))).

Usage::

    .venv/bin/python scripts/benchmark_data.py                  # generates 600 synthetic 100 px faces
    .venv/bin/python scripts/benchmark_data.py --root DIR --images 2000

Prints images per second per worker for both, and the ratio. Not a test.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch


def _reference(paths: list[str], size: int):
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose(
        [
            transforms.Resize((size, size)),
            transforms.RandomHorizontalFlip(),
            transforms.RandomApply([transforms.RandomRotation(20), transforms.RandomCrop(size, padding=32)], p=0.2),
            transforms.ToTensor(),
            transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
            transforms.RandomErasing(scale=(0.02, 0.25)),
        ]
    )

    def run() -> None:
        for p in paths:
            tf(Image.open(p).convert("RGB"))

    return run


def _ours(dataset):
    def run() -> None:
        for i in range(len(dataset)):
            dataset[i]

    return run


def _rate(run, n: int, repeats: int) -> float:
    run()  # warm-up (file cache, lazy imports)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", help="RAF-DB-layout data set (default: generate a synthetic one)")
    parser.add_argument("--images", type=int, default=600, help="images per pass (default 600)")
    parser.add_argument("--size", type=int, default=224, help="model input size (default 224)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes; the best counts (default 3)")
    args = parser.parse_args()

    torch.set_num_threads(1)  # one DataLoader worker's view: no intra-op threads
    cv2.setNumThreads(0)
    from dan.data.dataset import build_dataset
    from dan.data.synth import generate
    from dan.system import describe_machine

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = str(Path(tmp) / "synth")
            generate(root, per_class=-(-args.images // 7), size=100, test_fraction=0.0, workers=1)
        dataset = build_dataset("rafdb", root, "train", image_size=args.size, augment="rafdb")
        dataset.data.samples = dataset.data.samples[: args.images]
        dataset.samples = dataset.samples[: args.images]
        dataset.targets = dataset.targets[: args.images]
        paths = [path for path, _ in dataset.samples]
        n = len(paths)
        ours = reference = 0.0
        for _ in range(2):  # interleave so both see the same machine load
            ours = max(ours, _rate(_ours(dataset), n, args.repeats))
            reference = max(reference, _rate(_reference(paths, args.size), n, args.repeats))
    print(describe_machine())
    print(f"images: {n} from {root if args.root else 'a generated synthetic set (100 px)'}, output {args.size} px")
    print(f"ours      (OpenCV + albumentations): {ours:8.1f} images/s per worker")
    print(f"reference (PIL + torchvision):       {reference:8.1f} images/s per worker")
    print(f"ratio: {ours / reference:.2f}x")


if __name__ == "__main__":
    main()
