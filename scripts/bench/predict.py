#!/usr/bin/env python
"""``dan predict`` over a folder of photos: the sequential path against the batched one, faces per second.

Builds (once) a folder of ``--images`` distinct real photos (:mod:`scripts.common.photos`: scikit-image's
and matplotlib's sample photographs, cropped, scaled and re-encoded) and runs the whole folder through
:func:`dan.inference.pipeline.predict_images` both ways, on one model and detector:

- ``sequential`` (``--workers 0``, the path ``dan predict`` had before): read, detect (YuNet), crop
  and the model on that image's faces, one image at a time;
- ``batched``: ``--workers`` threads read, detect and crop while the model runs batches of
  ``--batch-size`` faces (several ``--workers`` counts: a ``batched wN`` row each, to pick the default).

The two paths run in interleaved rounds (sequential, batched, sequential, ...); each path's figure
is its best round (a shared machine's load hits both alike). It prints faces/s for both, the ratio,
and checks that both give the same rows: the same images, faces, boxes and labels, the probabilities
within ``--tolerance``. The model is the paper's size (ResNet-18, K = 4, 224 px), randomly initialised
(seed 0) unless ``--checkpoint`` names one (default: the quickstart's, when present). Usage::

    python -m scripts.bench.predict [--images 200] [--rounds 2] [--batch-size 32] [--workers N ...]
        [--threads N] [--backend torch|onnx] [--device cpu] [--checkpoint FILE]

Exit status 1 when the rows differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dan.inference.pipeline import DEFAULT_BATCH_SIZE, ImageResult, default_workers, predict_images
from dan.inference.predictor import Predictor
from scripts.common.measure import REPO, machine_header, markdown_table
from scripts.common.photos import make_photo_folder

QUICKSTART = REPO / "runs" / "quickstart" / "checkpoints" / "best.ckpt"


def paper_model():
    """The paper-size DAN (ResNet-18, 4 heads, 7 RAF-DB classes, 224 px), random weights (seed 0)."""
    import dan

    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=4, backbone="resnet18").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=224)
    return model


def make_backend(checkpoint: str | None, backend: str, device: str, threads: int | None, work: Path):
    """The model behind ``backend`` (torch, or onnx: an export of the same weights) on ``device``."""
    from dan.runtime.torch import TorchBackend

    source = checkpoint or (str(QUICKSTART) if QUICKSTART.is_file() else None)
    model = paper_model() if source is None else None
    torch_backend = TorchBackend(model if model is not None else source, device=device, threads=threads)
    name = source or "paper-size DAN, random weights (seed 0)"
    if backend == "torch":
        return torch_backend, name
    from dan.export.onnx import export_onnx
    from dan.runtime.onnx import OnnxBackend

    path = export_onnx(torch_backend.source, work / "model.onnx")
    return OnnxBackend(path, labels=torch_backend.labels, threads=threads, device=device), name


def rows(results: list[ImageResult]) -> list[tuple]:
    """One row per face (path, face, box, label, probabilities) and per unreadable image, as the CSV holds them."""
    out: list[tuple] = []
    for r in results:
        if r.error is not None:
            out.append((str(r.path), "error", r.error))
        out += [(str(r.path), f.index, f.box, f.label, np.asarray(f.probabilities)) for f in r.faces]
    return out


def same_rows(a: list[tuple], b: list[tuple], tolerance: float) -> tuple[bool, float]:
    """Whether two row lists agree (probabilities within ``tolerance``), and the largest probability difference."""
    if len(a) != len(b):
        return False, float("inf")
    worst = 0.0
    for x, y in zip(a, b):
        if x[1] == "error" or y[1] == "error":
            if x != y:
                return False, float("inf")
            continue
        if x[:-1] != y[:-1]:  # path, face index, box, label
            return False, float("inf")
        worst = max(worst, float(np.abs(x[-1] - y[-1]).max()))
    return worst <= tolerance, worst


def main(argv: list[str] | None = None) -> int:
    """Time both paths over the folder and print the table; 1 when their rows differ."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=200, help="photos in the folder (default 200)")
    p.add_argument("--folder", default=str(REPO / "runs" / "benchmark_predict" / "photos"), help="where they go")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    p.add_argument(
        "--workers", type=int, nargs="+", help=f"preparing threads, a row each (default {default_workers()})"
    )
    p.add_argument("--threads", type=int, help="model threads (default: torch's)")
    p.add_argument("--backend", default="torch", choices=("torch", "onnx"))
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, auto (default cpu)")
    p.add_argument("--checkpoint", help="a model file (default: the quickstart's if present, else random weights)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted probability difference")
    args = p.parse_args(argv)
    counts = args.workers or [default_workers()]
    folder = Path(args.folder)
    paths = make_photo_folder(folder, args.images)
    backend, name = make_backend(args.checkpoint, args.backend, args.device, args.threads, folder.parent)
    predictor = Predictor(backend, detector="yunet")
    threads = torch.get_num_threads()
    print(machine_header(threads, ["cv2", "onnxruntime"]))
    print(f"model: {name} on {getattr(backend, 'device_reason', args.device)}, {args.backend}; {len(paths)} photos")
    counted = "/".join(map(str, counts))
    print(f"batched: batch {args.batch_size}, {counted} preparing thread(s); model threads {threads}")
    runs = {"sequential": lambda: list(predict_images(predictor, paths, workers=0))}
    for w in counts:
        row = "batched" if len(counts) == 1 else f"batched w{w}"
        runs[row] = lambda w=w: list(predict_images(predictor, paths, args.batch_size, w))
    for _ in predict_images(predictor, paths[:4], args.batch_size, counts[0]):  # warm-up: lazy init, allocators
        pass
    best = {k: float("inf") for k in runs}
    results: dict[str, list[ImageResult]] = {}
    for _ in range(args.rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            results[key] = run()
            best[key] = min(best[key], time.perf_counter() - start)
    faces = sum(len(r.faces) for r in results["sequential"])
    reference = rows(results["sequential"])
    checks = [same_rows(reference, rows(results[k]), args.tolerance) for k in runs if k != "sequential"]
    ok, worst = all(c[0] for c in checks), max(c[1] for c in checks)
    table = [
        [key, f"{best[key]:.2f}", f"{faces / best[key]:.2f}", f"{best['sequential'] / best[key]:.2f}x"] for key in runs
    ]
    print()
    print(markdown_table(["path", "s per folder", "faces/s", "speed-up"], table, right=(1, 2, 3)))
    print()
    same = "the same rows" if ok else "DIFFERENT rows"
    print(f"{faces} faces in {len(paths)} photos; {same} (largest probability difference {worst:.2g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
