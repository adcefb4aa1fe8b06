#!/usr/bin/env python
"""Inference rows of the GPU check: batched ``dan predict`` faces/s and ``dan evaluate`` images/s, torch and ONNX.

The training rows are :mod:`scripts.maint.gpu_check`; ``scripts/gpu_check.sh`` runs this after them (``INFER=0``
skips it, ``INFER=only`` runs only it). One model, the paper's size (ResNet-18, K = 4, 224 px, random
weights, seed 0; ``--model tiny``: timm's test ResNet at 32 px, for the CPU smoke test), saved as a
checkpoint and exported to ONNX, then per backend (``--backends``, default torch and onnx):

- ``predict-seq`` (torch only): the sequential path (``dan predict --workers 0``), for reference;
- ``predict wN``: the batched path (:func:`dan.inference.pipeline.predict_images`: N threads read, detect
  with YuNet and crop, the model runs batches of ``--batch-size`` faces), one row per ``--workers`` N;
- ``evaluate``: :func:`dan.evaluation.evaluate.evaluate_backend` on the test split of a ``dan synth``
  data set (faces drawn at the model's input size), ``--eval-workers`` DataLoader processes.

The photos are :mod:`scripts.common.photos`'s real photographs when scikit-image and matplotlib are
installed; without them, the synthetic faces, whole image (``--detector none``), and the row says so.
Each row says where the model ran (the backend's device line: for ONNX, whether ONNX Runtime's CUDA
provider was there; the CPU-only ``onnxruntime`` package runs on the CPU, and the row says why). A row
that fails (onnx or onnxscript missing for the export, say) is recorded with its error and the next
one runs. Usage::

    python -m scripts.maint.gpu_check_infer [--device cuda] [--model paper|tiny] [--images 200]
        [--eval-per-class 300] [--batch-size 64] [--workers 4 8] [--eval-workers 8]
        [--backends torch onnx] [--work runs/gpu_check/infer] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from scripts.common.measure import machine_header, markdown_table


def make_model(kind: str):
    """The paper-size DAN (``paper``: ResNet-18, 4 heads, 224 px) or a tiny one (``tiny``: 32 px), seed 0."""
    import dan

    torch.manual_seed(0)
    backbone, heads, size = ("resnet18", 4, 224) if kind == "paper" else ("test_resnet", 2, 32)
    model = dan.DAN(num_classes=7, num_heads=heads, backbone=backbone).eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=size)
    return model


def photo_inputs(work: Path, count: int, synth_root: Path) -> tuple[list[Path], str, str]:
    """``(paths, detector, what)``: real photos with YuNet, or (no scikit-image) synthetic faces, whole image."""
    try:
        from scripts.common.photos import make_photo_folder

        return make_photo_folder(work / "photos", count), "yunet", "real photos, YuNet"
    except ImportError as err:
        faces = sorted((synth_root / "Image" / "aligned").glob("*.jpg"))[:count]
        return faces, "none", f"synthetic faces, whole image ({err.name} missing)"


def timed(fn) -> tuple[float, object]:
    """Seconds ``fn()`` took (the device synchronised) and what it returned."""
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def backend_rows(args: argparse.Namespace, name: str, model_file: Path, photos, synth_root: Path) -> list[dict]:
    """Every row of one backend: sequential predict (torch), batched predict per worker count, evaluate."""
    from dan.data.dataset import build_dataset
    from dan.evaluation.evaluate import evaluate_backend
    from dan.inference.pipeline import predict_images
    from dan.inference.predictor import Predictor
    from dan.runtime.loader import load_backend

    backend = load_backend(model_file, name, device=args.device)
    where = backend.device_reason
    paths, detector, what = photos
    predictor = Predictor(backend, detector=detector)
    base = {"backend": name, "device": where}
    list(predict_images(predictor, paths[:4], args.batch_size, 1))  # warm-up: lazy init, cuDNN, allocators
    rows = []
    runs = [("predict-seq", 0)] if name == "torch" else []
    runs += [(f"predict w{w}", w) for w in args.workers]
    for row, workers in runs:
        seconds, results = timed(lambda w=workers: list(predict_images(predictor, paths, args.batch_size, w)))
        faces = sum(len(r.faces) for r in results)  # type: ignore[attr-defined]
        rows.append(
            {**base, "row": row, "what": f"{len(paths)} {what}, batch {args.batch_size}", "items": faces}
            | {"unit": "faces/s", "per_s": faces / seconds, "seconds": seconds}
        )
    dataset = build_dataset("rafdb", synth_root, "test", preprocessing=backend.preprocessing)
    size = backend.preprocessing.input_size
    backend(np.zeros((args.eval_batch_size, 3, size, size), np.float32))  # warm-up at the evaluation batch size
    seconds, _ = timed(lambda: evaluate_backend(backend, dataset, args.eval_batch_size, args.eval_workers))
    what = f"{len(dataset)} synthetic faces, batch {args.eval_batch_size}, {args.eval_workers} workers"
    rows.append({**base, "row": "evaluate", "what": what, "items": len(dataset)})
    rows[-1].update(unit="images/s", per_s=len(dataset) / seconds, seconds=seconds)
    return rows


def table(rows: list[dict]) -> str:
    """The rows as Markdown: backend, row, what, throughput, where the model ran."""
    body = [
        [r["backend"], r["row"], r.get("what", ""), f"failed: {r['error']}", ""]
        if "error" in r
        else [r["backend"], r["row"], r["what"], f"{r['per_s']:,.1f} {r['unit']}", r["device"]]
        for r in rows
    ]
    return markdown_table(["backend", "row", "what", "throughput", "device"], body, right=(3,))


def main(argv: list[str] | None = None) -> int:
    """Run the rows, print the table (and write the JSON file); 1 if a row failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, cpu or auto (default cuda)")
    p.add_argument("--model", default="paper", choices=("paper", "tiny"))
    p.add_argument("--images", type=int, default=200, help="photos for the predict rows (default 200)")
    p.add_argument("--eval-per-class", type=int, default=300, help="synthetic faces per class, a fifth scored")
    p.add_argument("--batch-size", type=int, default=64, help="faces per model run of batched predict")
    p.add_argument("--workers", type=int, nargs="+", help="preparing threads, a predict row each (default 4 8)")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--eval-workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader processes")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"], choices=("torch", "onnx"))
    p.add_argument("--work", default="runs/gpu_check/infer", help="folder for the model, photos and data")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    args.workers = args.workers or [4, 8]
    from dan.data.synth import generate
    from dan.models.checkpoint import save_model

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    model = make_model(args.model)
    size = model.preprocessing.input_size
    print(machine_header(None, ["cv2", "onnxruntime"]), flush=True)
    if torch.cuda.is_available():
        print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
    synth_root = work / f"synth-{size}px-{args.eval_per_class}"
    if not (synth_root / "dan-synth.json").is_file():
        generate(synth_root, per_class=args.eval_per_class, size=size, seed=0, workers=min(8, os.cpu_count() or 1))
    photos = photo_inputs(work, args.images, synth_root)
    files = {"torch": save_model(model, work / f"{args.model}.pt")}
    rows: list[dict] = []
    for name in args.backends:
        try:
            if name == "onnx":
                from dan.export.onnx import export_onnx

                files["onnx"] = export_onnx(model, work / f"{args.model}.onnx")
            rows += backend_rows(args, name, files[name], photos, synth_root)
        except Exception as err:  # a missing package, no GPU: the row says so, the next runs
            traceback.print_exc()
            rows.append({"backend": name, "row": "all", "error": f"{type(err).__name__}: {err}"[:300]})
        print(table(rows), flush=True)
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps({"torch": torch.__version__, "rows": rows}, indent=2))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
