"""Compose face images into a demo video: faces moving over a background, one after another.

Usage::

    python -m scripts.demos.demo_video data/synth/Image/aligned demo_in.mp4 [--seconds 10] [--fps 25]
        [--size 640x480] [--layout centre|pan] [--face-seconds 1.5] [--seed 0]

Layouts:

- ``centre`` (default): one face at a time, filling about 90 % of the frame height around the centre
  and drifting gently; every frame is one face, so ``dan demo --detector none`` (the frame's central
  square is the face) labels it. Use this for the synthetic data set, whose drawn faces OpenCV's
  Haar cascade finds only in about a third of the frames.
- ``pan``: faces a third of the frame high sliding across the background, left to right; for real
  face photos with ``--detector haar`` (or yunet).

The video is written with mp4v (``.mp4``) or MJPG (``.avi``) to a temporary file, read back to check
it plays, then renamed into place.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from dan.imaging import IMAGE_SUFFIXES, ImageReadError, list_images, read_image

CODECS = {".mp4": "mp4v", ".avi": "MJPG"}


def background(w: int, h: int, seed: int) -> np.ndarray:
    """A soft two-colour gradient with blurred noise, BGR uint8 (h, w, 3)."""
    rng = np.random.default_rng(seed)
    c0, c1 = rng.integers(40, 200, 3), rng.integers(40, 200, 3)
    t = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]  # (1, w, 1)
    img = c0 * (1 - t) + c1 * t + np.zeros((h, 1, 1), np.float32)  # (h, w, 3)
    noise = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), 6)
    return np.clip(img + noise[..., None], 0, 255).astype(np.uint8)


def load_faces(folder: Path, limit: int, seed: int, pattern: str = "*") -> list[np.ndarray]:
    """Up to ``limit`` readable images of ``folder`` matching ``pattern`` (a seeded pick, in sorted order), BGR."""
    paths = [p for p in list_images(folder) if p.match(pattern)]
    if not paths:
        raise SystemExit(f"make_demo_video: {folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    if len(paths) > limit:
        pick = np.random.default_rng(seed).choice(len(paths), limit, replace=False)
        paths = [paths[i] for i in sorted(pick)]
    faces = []
    for p in paths:
        try:
            faces.append(cv2.cvtColor(read_image(p), cv2.COLOR_RGB2BGR))
        except ImageReadError as err:
            print(f"make_demo_video: skipping {err}", file=sys.stderr)
    if not faces:
        raise SystemExit(f"make_demo_video: {folder}: no readable images")
    return faces


def paste(frame: np.ndarray, face: np.ndarray, x: int, y: int, side: int) -> None:
    """Paste ``face`` resized to ``side`` with its top-left at (x, y), clipped to the frame."""
    tile = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA if face.shape[0] > side else cv2.INTER_LINEAR)
    fh, fw = frame.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + side, fw), min(y + side, fh)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = tile[y0 - y : y1 - y, x0 - x : x1 - x]


def compose(
    faces: list[np.ndarray],
    n_frames: int,
    fps: float,
    size: tuple[int, int],
    layout: str,
    face_seconds: float,
    seed: int,
):
    """Yield ``n_frames`` BGR frames of the chosen layout."""
    w, h = size
    bg = background(w, h, seed)
    per_face = max(1, int(round(face_seconds * fps)))
    for i in range(n_frames):
        frame = bg.copy()
        face = faces[(i // per_face) % len(faces)]
        t = (i % per_face) / per_face  # 0..1 within this face's segment
        if layout == "centre":
            side = int(round(h * (0.86 + 0.04 * np.sin(2 * np.pi * t))))
            cx = w / 2 + 0.06 * w * np.sin(2 * np.pi * (t + i / (3 * per_face)))
            cy = h / 2 + 0.02 * h * np.cos(2 * np.pi * t)
        else:  # pan: slide from left to right, bobbing up and down
            side = h // 3
            cx = -side / 2 + t * (w + side)
            cy = h / 2 + 0.2 * h * np.sin(2 * np.pi * t)
        paste(frame, face, int(round(cx - side / 2)), int(round(cy - side / 2)), side)
        yield frame


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Compose face images moving over a background into a video.")
    p.add_argument("images", type=Path, help="folder of face images (e.g. data/synth/Image/aligned)")
    p.add_argument("output", type=Path, help="video to write (.mp4 or .avi)")
    p.add_argument("--seconds", type=float, default=10.0, help="length in seconds (default 10)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate (default 25)")
    p.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    p.add_argument("--layout", default="centre", choices=("centre", "pan"), help="see the module docstring")
    p.add_argument("--face-seconds", type=float, default=1.5, help="seconds each face is shown (default 1.5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pattern", default="*", help="file name pattern, e.g. 'test_*' for held-out faces only")
    args = p.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"make_demo_video: --size must look like 640x480, got {args.size!r}") from None
    suffix = args.output.suffix.lower()
    if suffix not in CODECS:
        raise SystemExit(f"make_demo_video: {args.output}: must end in .mp4 or .avi")
    if not args.images.is_dir():
        raise SystemExit(f"make_demo_video: {args.images}: not a folder")
    n_frames = max(1, int(round(args.seconds * args.fps)))
    faces = load_faces(
        args.images, limit=max(1, int(np.ceil(args.seconds / args.face_seconds))), seed=args.seed, pattern=args.pattern
    )
    tmp = args.output.with_name(f".{args.output.stem}.{os.getpid()}.tmp{suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*CODECS[suffix]), args.fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"make_demo_video: OpenCV cannot write {args.output}")
    try:
        for frame in compose(faces, n_frames, args.fps, (w, h), args.layout, args.face_seconds, args.seed):
            writer.write(frame)
        writer.release()
        cap = cv2.VideoCapture(str(tmp))
        readable = cap.isOpened() and cap.read()[0]
        cap.release()
        if not readable:
            raise SystemExit(f"make_demo_video: the written video {args.output} cannot be read back")
        os.replace(tmp, args.output)
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)
    print(
        f"wrote {args.output}: {n_frames} frames, {w}x{h}, {args.fps:g} fps, {len(faces)} face(s), layout {args.layout}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
