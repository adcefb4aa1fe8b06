#!/usr/bin/env python
"""Benchmark the training input pipeline per DataLoader worker: float32 faces (old) against uint8 (new).

- old (``data.device_transforms: false``): each worker runs the whole pipeline and ships normalised,
  erased float32 faces (3, S, S);
- new (the default): each worker decodes, resizes and augments on uint8 and draws the erasing
  rectangle; it ships uint8 faces (3, S, S) and a (4,) rectangle, and the model normalises and erases
  the batch on its device (:mod:`dan.data.batch`);
- resize (``data.device_resize: 100``): as new, but the worker augments the 100 px face as decoded and
  ships it at 100 px; the device resizes the batch to S first.

On generated 100 px faces (``dan synth``), with the RAF-DB recipe's augmentations, at each input size
(224 px: the paper's recipes; 48 px: the generated-faces recipe), it reports:

- bytes per face crossing the worker boundary (every tensor of a batch, per face);
- faces/s through one DataLoader worker process (what the main process receives, doing nothing else),
  old and new interleaved round by round, the best round of each;
- the worker's CPU time per face by stage, in this process on one thread (what one worker does):
  decode, resize, augment, normalise + erase (old only), collate (per face of a batch); and the
  augmentation run on the decoded face before any resize, what a worker would do if the final resize
  moved to the device;
- the main process's cost per batch on the CPU (``DeviceTransform``: resize, normalise, erase, on one
  thread, channels-last; what a GPU does in a fraction of a millisecond); the old path's is none.

Usage::

    python -m scripts.bench.data                         # 1,024 generated faces, batch 256, 3 rounds
    python -m scripts.bench.data --root DIR --images 2000 --sizes 224

Not a test. The machine's load changes the figures: it is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch
from torch.utils.data import DataLoader, default_collate

from dan.data.batch import DeviceTransform, collate
from dan.data.dataset import FERDataset, load_sample_image
from dan.data.options import ReadOptions
from dan.data.readers import read_split
from dan.data.sampler import EpochSampler
from dan.data.transforms import Transform
from dan.preprocess import Preprocessing, normalize, resize_face

PATHS = ("old", "new", "resize")


def _dataset(data, size: int, path: str, ship: int) -> FERDataset:
    transform = Transform("rafdb", Preprocessing(input_size=size), ship_size=ship if path == "resize" else None)
    return FERDataset(data, transform, device_transforms=path != "old")


def _batch_bytes(batch) -> int:
    tensors = batch.values() if isinstance(batch, dict) else batch
    return sum(t.untyped_storage().nbytes() for t in tensors)


def _loader(dataset: FERDataset, batch: int) -> DataLoader:
    sampler = EpochSampler(dataset.targets, seed=0)
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=sampler,
        num_workers=1,
        collate_fn=collate if dataset.device_transforms else None,
        persistent_workers=True,
        drop_last=True,
    )


def _pass(loader: DataLoader) -> tuple[float, int, int]:
    """One epoch through the loader: (seconds, faces, bytes of the batches received)."""
    faces = size = 0
    start = time.perf_counter()
    for batch in loader:
        n = len(batch["label"] if isinstance(batch, dict) else batch[1])
        faces += n
        size += _batch_bytes(batch)
    return time.perf_counter() - start, faces, size


def _stages(data, size: int, count: int) -> dict[str, float]:
    """Microseconds per face of each stage, one thread (what one worker does)."""
    pre = Preprocessing(input_size=size)
    transform = Transform("rafdb", pre, seed=0)
    assert transform._compose is not None
    names = ("decode", "resize", "augment", "normalise + erase", "augment before any resize")
    times = dict.fromkeys(names, 0.0)
    samples = data.samples[:count]
    for s in samples:
        t0 = time.perf_counter()
        image = load_sample_image(s)
        t1 = time.perf_counter()
        face = resize_face(image, size)
        t2 = time.perf_counter()
        face = transform._compose(image=face)["image"]
        t3 = time.perf_counter()
        x = torch.from_numpy(normalize(face, pre))
        x[:, : size // 3, : size // 3].zero_()  # an erasing rectangle of a typical size
        t4 = time.perf_counter()
        transform._compose(image=image)  # the same augmentations on the decoded face, before any resize
        t5 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[key] += dt
    return {k: 1e6 * v / len(samples) for k, v in times.items()}


def _collate_us(dataset: FERDataset, batch: int) -> float:
    """Microseconds per face to collate one batch (done in the worker)."""
    items = [dataset[(i % len(dataset), i)] for i in range(batch)]
    fn = collate if dataset.device_transforms else default_collate
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - start)
    return 1e6 * best / batch


def _main_ms(dataset: FERDataset, batch: int, size: int) -> float:
    """Milliseconds for the main process to finish one uint8 batch on the CPU (resize, normalise, erase).

    ``DeviceTransform`` runs on one thread on a CPU, whatever the process's thread count.
    """
    b = collate([dataset[(i % len(dataset), i)] for i in range(batch)])
    finish = DeviceTransform(Preprocessing(input_size=size))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        finish.batch(b, channels_last=True)  # as the recipes train
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", help="RAF-DB-layout data set (default: generate 100 px faces with dan synth)")
    p.add_argument("--images", type=int, default=1024, help="faces per pass (default 1024)")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 48], help="input sizes (default 224 48)")
    p.add_argument("--batch", type=int, default=256, help="batch size (the RAF-DB recipe: 256)")
    p.add_argument("--loader-batch", type=int, default=64, help="batch of the one-worker loader (default 64)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best counts (default 3)")
    p.add_argument("--ship", type=int, default=100, help="the resize path's shipped side (default 100, the faces')")
    args = p.parse_args(argv)
    from dan.data.synth import generate
    from dan.system import describe_machine

    cores = max(1, os.cpu_count() or 1)
    cv2.setNumThreads(0)
    print(describe_machine())
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = str(Path(tmp) / "synth")
            generate(root, per_class=-(-args.images // 7), size=100, test_fraction=0.0, workers=1)
        data = read_split("rafdb", root, "train", ReadOptions())
        data.samples = data.samples[: args.images]
        for size in args.sizes:
            torch.set_num_threads(cores)
            sets = {path: _dataset(data, size, path, args.ship) for path in PATHS}
            loaders = {path: _loader(sets[path], args.loader_batch) for path in PATHS}
            rate = dict.fromkeys(PATHS, 0.0)
            per_face = dict.fromkeys(PATHS, 0.0)
            for path in PATHS:
                _pass(loaders[path])  # start the worker, warm its caches
            for _ in range(args.rounds):  # interleaved: every path sees the same machine load
                for path in PATHS:
                    seconds, faces, size_bytes = _pass(loaders[path])
                    rate[path] = max(rate[path], faces / seconds)
                    per_face[path] = size_bytes / faces
            del loaders
            torch.set_num_threads(1)
            stages = _stages(data, size, min(300, len(data.samples)))
            collate_us = {path: _collate_us(sets[path], args.batch) for path in PATHS}
            main_ms = {path: _main_ms(sets[path], args.batch, size) for path in PATHS[1:]}
            rows.append((size, rate, per_face, stages, collate_us, main_ms))
    print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"\n{len(data.samples)} faces of 100 px, RAF-DB recipe augmentations, batch {args.batch}\n")
    print("| size | path | bytes/face | faces/s, 1 worker | worker CPU us/face | of which collate | main ms/batch |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for size, rate, per_face, stages, collate_us, main_ms in rows:
        augment = stages["decode"] + stages["resize"] + stages["augment"]
        cpu = {"old": augment + stages["normalise + erase"], "new": augment}
        cpu["resize"] = stages["decode"] + stages["augment before any resize"]
        for path in PATHS:
            main_cost = f"{main_ms[path]:.1f}" if path != "old" else "0"
            print(
                f"| {size} | {path} | {per_face[path]:,.0f} | {rate[path]:,.0f} | {cpu[path] + collate_us[path]:,.0f} "
                f"| {collate_us[path]:.0f} | {main_cost} |"
            )
    print("\nworker CPU us/face by stage (one thread):\n")
    print("| size | decode | resize | augment | normalise + erase (old) | augment before any resize (resize) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for size, _, _, stages, _, _ in rows:
        print(f"| {size} | " + " | ".join(f"{v:,.0f}" for v in stages.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
