"""Benchmark the demo pipeline (decode, detect, crop, model, draw, encode) and check memory stays flat.

Usage::

    python -m scripts.bench.demo [--checkpoint CKPT] [--frames 300] [--detect-every 1 2 3]
        [--threads 1 2] [--backends torch onnx] [--memory-frames 3000]

Without ``--checkpoint`` a DAN of the paper's size (ResNet-18, 4 heads, 224 px, 7 classes, random
weights: speed does not depend on the weights) is built. A 640x480 video with one face (the
astronaut of ``skimage.data``, moving) is generated, then the demo loop runs on it headless, writing
the annotated video and the CSV, for each setting. The ONNX backend is timed too when
``dan.runtime.onnx`` and ``dan.export`` are available. Stage times are per
frame; ``read`` is time spent waiting for decoded frames (decoding runs ahead in a thread) and
``write`` the time to hand frames to the encoder thread. The memory check streams
``--memory-frames`` generated frames through the same loop and prints the resident set size at the
start, middle and end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import dan
from dan.demo.loop import STAGES, run_demo
from dan.inference.predictor import Predictor
from dan.runtime.torch import TorchBackend
from scripts.common.frames import face_frames
from scripts.common.measure import machine_header, median_ms

HAAR = {"scale_factor": 1.2, "min_face": 48}  # what `dan demo` uses


def write_video(path: Path, n: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    for frame in face_frames(n):
        writer.write(cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))  # OpenCV writes BGR
    writer.release()
    return path


def io_costs(video: Path, work: Path) -> tuple[float, float]:
    """Milliseconds per frame to decode ``video`` and to encode its frames again as mp4v."""
    cap, frames = cv2.VideoCapture(str(video)), []
    t = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    decode = (time.perf_counter() - t) / max(len(frames), 1)
    cap.release()
    writer = cv2.VideoWriter(str(work / "enc.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (640, 480))
    t = time.perf_counter()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return 1000 * decode, 1000 * (time.perf_counter() - t) / max(len(frames), 1)


def report(name: str, stats) -> None:
    per = {k: 1000 * v / max(stats.frames, 1) for k, v in stats.stage_seconds.items()}
    stages = "  ".join(f"{k} {per[k]:5.1f}" for k in STAGES if k != "display")
    print(f"{name:34s} {stats.fps:6.1f} fps | ms/frame: {stages} | faces {stats.faces}/{stats.frames}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="model to time (default: paper-size DAN, random weights)")
    p.add_argument("--frames", type=int, default=300, help="length of the generated 640x480 video")
    p.add_argument("--detect-every", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--classify-every", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="model threads to try")
    p.add_argument("--backends", nargs="+", default=["torch", "onnx"])
    p.add_argument("--detect-size", type=int, default=480)
    p.add_argument("--memory-frames", type=int, default=3000, help="0 skips the memory check")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dan-bench-") as tmp:  # removed however the run ends
        return _run(args, Path(tmp))


def _run(args: argparse.Namespace, work: Path) -> int:
    if args.checkpoint:
        model = dan.load_model(args.checkpoint)
    else:
        model = dan.DAN(num_classes=7, num_heads=4).eval()
        model.labels = dan.LABEL_SETS["rafdb"]
    video = write_video(work / "in.mp4", args.frames)
    print(machine_header(libraries=("cv2", "onnxruntime")))
    print(f"video {video} ({args.frames} frames 640x480), model input {model.preprocessing.input_size} px")
    decode_ms, encode_ms = io_costs(video, work)
    print(f"decode alone {decode_ms:.1f} ms/frame, mp4v encode alone {encode_ms:.1f} ms/frame (threads in the loop)")
    backends = {}
    if "torch" in args.backends:
        backends["torch"] = lambda threads: TorchBackend(model, threads=threads)
    if "onnx" in args.backends:
        try:
            from dan.export import export_onnx
            from dan.runtime.onnx import OnnxBackend

            onnx_path = export_onnx(model, work / "model.onnx")
            backends["onnx"] = lambda threads: OnnxBackend(onnx_path, threads=threads)
        except Exception as err:  # noqa: BLE001 - the benchmark goes on without it
            print(f"onnx backend skipped: {err}")
    best = None
    for name, make in backends.items():
        for threads in args.threads:
            backend = make(threads)
            x = np.zeros((1, 3, model.preprocessing.input_size, model.preprocessing.input_size), np.float32)
            model_ms = median_ms(lambda: backend(x), runs=20, warmup=3)  # noqa: B023 (called at once)
            print(f"-- {name}, {threads} thread(s): model alone {model_ms:.1f} ms per face")
            predictor = Predictor(backend, detector="haar", detect_size=args.detect_size, detector_options=HAAR)
            for every in args.detect_every:
                for classify in args.classify_every:
                    stats = run_demo(
                        predictor,
                        str(video),
                        output=work / "out.mp4",
                        csv_path=work / "out.csv",
                        display=False,
                        detect_every=every,
                        classify_every=classify,
                        log=lambda m: None,
                    )
                    report(f"{name} threads={threads} detect/{every} classify/{classify}", stats)
                    if best is None or stats.fps > best[0]:
                        best = (stats.fps, name, threads, every, classify, backend)
    if best is None:
        return 1
    fps, name, threads, every, classify, backend = best
    print(f"fastest: {name}, {threads} thread(s), detect every {every}, classify every {classify}: {fps:.1f} fps")
    if args.memory_frames:
        source = face_frames(args.memory_frames)
        predictor = Predictor(backend, detector="haar", detect_size=args.detect_size, detector_options=HAAR)
        start = time.perf_counter()
        stats = run_demo(
            predictor,
            source,
            output=work / "long.avi",
            csv_path=work / "long.csv",
            display=False,
            detect_every=every,
            classify_every=classify,
            log=lambda m: None,
        )
        marks = "  ".join(f"frame {i}: {v:.0f} MiB" for i, v in sorted(source.marks.items()))
        print(f"memory over {stats.frames} frames ({time.perf_counter() - start:.0f} s, {stats.fps:.1f} fps): {marks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
