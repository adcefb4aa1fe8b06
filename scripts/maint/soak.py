"""Soak test of the demo loop: many frames, resident memory and per-frame latency sampled all along.

    python -m scripts.maint.soak --frames 50000 [--checkpoint CKPT] [--csv]

A generated 640x480 stream (the astronaut's head moving over a background; no decoding) goes through
the real demo loop (YuNet detection, alignment, the model, tracking, drawing, and with ``--csv`` the
CSV writer), headless. Every ``--every`` frames the script records the resident set size and the
frames' latencies. It prints RSS at the start (after a warm-up tenth), the middle and the end, the
growth, and the p50 / p95 frame latency of the first and the last tenth; exit status 1 when memory
grows by more than ``--max-growth-mb`` or the last tenth's p95 is more than ``--max-p95-ratio`` (1.5) times
the first's.
Without ``--checkpoint`` a small random DAN (ResNet-18, 48 px, like the quickstart's) is used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import dan
from dan.demo.loop import run_demo
from dan.demo.sources import FrameSource
from dan.inference.predictor import Predictor
from dan.runtime.loader import load_backend
from dan.runtime.torch import TorchBackend
from scripts.common.frames import face_frames
from scripts.common.measure import machine_header, rss_mib


class _Probe(FrameSource):
    """Wraps the source's iterator: a timestamp per frame and the RSS every ``every`` frames."""

    def __init__(self, source, every: int) -> None:
        self.source, self.every = source, every
        self.name, self.fps, self.size, self.live, self.stills = (
            source.name,
            source.fps,
            source.size,
            source.live,
            source.stills,
        )
        self.times: list[float] = []
        self.rss: list[tuple[int, float]] = []

    def __getattr__(self, name):
        return getattr(self.source, name)

    def __iter__(self):
        for frame in self.source:
            self.times.append(time.perf_counter())
            if frame.index % self.every == 0:
                self.rss.append((frame.index, rss_mib()))
            yield frame


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=50_000)
    p.add_argument("--checkpoint", help="model file (default: a random 48 px DAN)")
    p.add_argument("--every", type=int, default=500, help="sample memory every N frames")
    p.add_argument("--csv", action="store_true", help="also write the per-face CSV")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    p.add_argument("--max-p95-ratio", type=float, default=1.5, help="last tenth's p95 over the first's")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(machine_header(args.threads))
    if args.checkpoint:
        backend = load_backend(args.checkpoint, threads=args.threads)
    else:
        torch.manual_seed(0)
        model = dan.DAN(7, 4).eval()
        model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=48)
        backend = TorchBackend(model)
    predictor = Predictor(backend)  # YuNet, aligned faces: the defaults
    source = _Probe(face_frames(args.frames), args.every)
    with tempfile.TemporaryDirectory(prefix="dan-soak-") as work:
        csv = Path(work) / "faces.csv" if args.csv else None
        stats = run_demo(predictor, source, csv_path=csv, display=False, prefetch=False, log=lambda m: None)
    lat = np.diff(np.asarray(source.times)) * 1000  # ms between frames = the loop's time per frame
    tenth = max(len(lat) // 10, 1)
    first, last = lat[tenth : 2 * tenth], lat[-tenth:]  # the first tenth after a tenth of warm-up
    warm = [r for i, r in source.rss if i >= tenth] or [r for _, r in source.rss]
    growth = warm[-1] - warm[0]
    mid = warm[len(warm) // 2]
    print(f"{stats.frames} frames in {stats.seconds:.0f} s ({stats.fps:.1f} fps), {stats.faces} faces")
    print(
        f"RSS after warm-up / middle / end: {warm[0]:.0f} / {mid:.0f} / {warm[-1]:.0f} MiB (growth {growth:+.1f} MiB;"
        f" max {max(warm):.0f})"
    )
    p50a, p95a = np.percentile(first, 50), np.percentile(first, 95)
    p50b, p95b = np.percentile(last, 50), np.percentile(last, 95)
    print(
        f"frame latency first tenth p50 {p50a:.1f} ms p95 {p95a:.1f} ms; last tenth p50 {p50b:.1f} ms p95 {p95b:.1f} ms"
    )
    print(
        f"median RSS step per {args.every} frames: {statistics.median(np.diff(warm)) if len(warm) > 1 else 0:+.2f} MiB"
    )
    ok = growth <= args.max_growth_mb and p95b <= args.max_p95_ratio * p95a
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
