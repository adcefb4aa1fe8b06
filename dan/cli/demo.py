"""``dan demo``: a webcam, a video, an image or a folder of images, every face labelled.

Usage::

    dan demo --checkpoint model.pt --source 0                        # webcam, window (q / Esc quits)
    dan demo --checkpoint model.pt --source in.mp4 --output out.mp4 --csv faces.csv --no-display

Without a usable window (the headless OpenCV build, or no display) it says so in one line and runs
headless. Exit status: 0 when everything went through, 1 when something failed (a bad image, a
frame that did not decode, a video that ended early) while the rest was processed, 130 on Ctrl-C
(the outputs are still complete up to the last frame).
"""

from __future__ import annotations

import argparse
import os
import sys

from dan.cli.options import add_model_and_detector_options, predictor_from_args
from dan.errors import DanError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dan demo``."""
    p = argparse.ArgumentParser(prog="dan demo", description="Live facial expression demo: every face labelled.")
    add_model_and_detector_options(p, whole="frame", detect_size=480)
    p.add_argument("--source", default="0", help="camera index (0), video file, image file or folder of images")
    p.add_argument("--output", help="write the annotated video (.mp4: mp4v, .avi: MJPG)")
    p.add_argument("--csv", help="write one row per face per frame")
    p.add_argument("--no-display", action="store_true", help="never open a window")
    p.add_argument("--attention", action="store_true", help="draw each head's attention map (torch backend)")
    p.add_argument("--max-frames", type=int, help="stop after N frames")
    p.add_argument(
        "--detect-every", type=int, default=2, help="run the detector every N frames, track in between (default 2)"
    )
    p.add_argument(
        "--classify-every", type=int, default=1, help="run the model on tracked faces every N frames (default 1)"
    )
    p.add_argument(
        "--min-face",
        type=int,
        default=48,
        help="smallest face side in frame pixels (haar; default 48, smaller is slower)",
    )
    p.add_argument(
        "--smoothing",
        type=float,
        default=0.6,
        help="weight of the past in each face's probabilities, 0..1 (default 0.6)",
    )
    p.add_argument("--image-fps", type=float, default=1.0, help="frame rate of the output video for image sources")
    p.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) - 1),
        help="CPU threads for the model (default: all cores but one, left for decoding, detection and encoding)",
    )
    return p


def main(argv: list[str]) -> int:
    """Run ``dan demo``; returns 0, 1 (something failed, rest processed) or 130 (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    if not 0.0 <= args.smoothing < 1.0:
        raise DanError(f"--smoothing must be in [0, 1), got {args.smoothing}")
    if args.detect_every < 1 or args.classify_every < 1:
        raise DanError("--detect-every and --classify-every must be at least 1")
    from dan.demo.writer import check_output
    from dan.fileio import check_writable

    if args.output:  # before the model is loaded: a bad output path fails at once, not after every frame
        check_output(args.output)
    if args.csv:
        check_writable(args.csv, "CSV")
    from dan.demo.loop import run_demo
    from dan.demo.sources import open_source

    predictor = predictor_from_args(args, detector_options={"scale_factor": 1.2, "min_face": args.min_face})

    def log(message: str) -> None:
        print(f"dan demo: {message}", file=sys.stderr)

    try:
        source = open_source(args.source, image_fps=args.image_fps)
    except DanError as err:  # nothing to read: the run failed, but it is not a usage error
        log(f"error: {err}")
        return 1

    stats = run_demo(
        predictor,
        source,
        output=args.output,
        csv_path=args.csv,
        display=not args.no_display,
        detect_every=args.detect_every,
        classify_every=args.classify_every,
        attention=args.attention,
        max_frames=args.max_frames,
        smoothing=args.smoothing,
        log=log,
    )
    for message in stats.errors:
        log(message)
    summary = f"{stats.frames} frame(s), {stats.faces} face(s), {stats.fps:.1f} fps"
    if stats.video:
        n, w, h, fps = stats.video
        summary += f"; wrote {args.output} ({n} frames, {w}x{h}, {fps:g} fps)"
    if stats.csv_written:
        summary += f"; wrote {args.csv} ({stats.csv_rows} rows)"
    elif args.output or args.csv:
        summary += "; nothing written"
    if stats.frames == 0 and not stats.errors and not stats.interrupted:
        stats.errors.append(f"{args.source}: no frames")
        log(f"{args.source}: no frames")
    log(summary)
    if stats.interrupted:
        return 130
    return 1 if stats.errors else 0
