"""Benchmark ``dan predict`` on a video beside ``dan demo --no-display`` on the same file, in one run.

Usage::

    python -m scripts.bench.video [--checkpoint CKPT] [--seconds 20] [--size 1280x720] [--faces 1 4]
        [--workers 1 2] [--every 1] [--old-commit 5d1b7aa] [--memory-minutes 0]

Each command runs as users run it (``python -m dan ...`` in a new process) and the figures are the
commands' own: ``dan predict``'s summary (frames and rows over its scoring seconds, model loading
excluded) and ``dan demo``'s frames per second. Per face count (a generated 720p mp4v video of the
astronaut's head, once or four times in a 2x2 grid, drifting), it times:

- ``dan demo --no-display`` of this tree, and of ``--old-commit`` (a ``git archive`` of that commit
  unpacked to a temporary folder: "today's" demo), both with ``--backend auto``;
- ``dan predict VIDEO --output rows.parquet`` with float32 (``--backend auto``: the fastest agreeing
  runtime) and int8 (``dan export --int8`` of the checkpoint, passed as ``--checkpoint``), for each
  ``--workers``.

With ``--memory-minutes M`` it also prints the peak resident memory of ``dan predict --every 25`` on a
1-minute and an M-minute 96x96 MJPG video (the memory figure of docs/benchmarks.md). Without
``--checkpoint`` a DAN of the paper's size (ResNet-18, 4 heads, 224 px, 7 classes, random weights:
speed does not depend on the weights) is saved first. The machine (``lscpu``'s model name and flags)
heads the output. Run it alone on the machine: the figures are wall-clock.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from dan.opencv import cv2
from scripts.common.measure import REPO, machine_header, markdown_table


def lscpu() -> list[str]:
    """``lscpu``'s model name and flags lines (or a note that it is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return ["lscpu: not available"]
    return [line.strip() for line in out.splitlines() if line.startswith(("Model name", "Flags"))]


def write_video(path: Path, faces: int, seconds: float, size: tuple[int, int], fps: float = 30.0) -> Path:
    """An mp4v video: the astronaut's head ``faces`` times (1, or a 2x2 grid of 4) over a blurred background."""
    import skimage.data

    w, h = size
    side = min(w, h) // (2 if faces > 1 else 1) * 2 // 3
    tile = cv2.cvtColor(cv2.resize(skimage.data.astronaut()[20:260, 110:350], (side, side)), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), (0, 0), 8)
    cells = [(0, 0)] if faces == 1 else [(i % 2, i // 2) for i in range(faces)]
    cw, ch = (w, h) if faces == 1 else (w // 2, h // 2)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for i in range(int(seconds * fps)):
        frame = bg.copy()
        for cx, cy in cells:
            x = cx * cw + int((cw - side) * (0.5 + 0.4 * np.sin(i / 40 + cx)))
            y = cy * ch + int((ch - side) * (0.5 + 0.3 * np.cos(i / 55 + cy)))
            frame[y : y + side, x : x + side] = tile
        writer.write(frame)
    writer.release()
    return path


def run_dan(args: list[str], root: Path = REPO) -> str:
    """Run ``python -m dan ARGS`` with ``root``'s ``dan``; returns its stderr and stdout."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-m", "dan", *args], cwd=root, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"dan {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stderr + done.stdout


def demo_fps(video: Path, ckpt: Path, root: Path = REPO) -> tuple[float, float]:
    """``dan demo --no-display``'s frames/s and faces/s on ``video`` (its own summary line)."""
    text = run_dan(["demo", "--source", str(video), "--checkpoint", str(ckpt), "--no-display"], root)
    m = re.search(r"(\d+) frame\(s\), (\d+) face\(s\), ([\d.]+) fps", text)
    if m is None:
        raise SystemExit(f"no summary from dan demo:\n{text[-2000:]}")
    frames, faces, fps = int(m.group(1)), int(m.group(2)), float(m.group(3))
    return fps, fps * faces / max(frames, 1)


def predict_fps(video: Path, ckpt: Path, work: Path, *options: str) -> tuple[float, float]:
    """``dan predict``'s frames/s and faces/s on ``video`` (its summary: frames and rows over its seconds)."""
    out = work / "rows.parquet"
    out.unlink(missing_ok=True)
    text = run_dan(["predict", str(video), "--checkpoint", str(ckpt), "--output", str(out), "--quiet", *options])
    m = re.search(r"(\d+) frame\(s\), (\d+) row\(s\) in ([\d.]+) s", text)
    if m is None:
        raise SystemExit(f"no summary from dan predict:\n{text[-2000:]}")
    seconds = max(float(m.group(3)), 1e-9)
    return int(m.group(1)) / seconds, int(m.group(2)) / seconds


def paper_model(work: Path) -> Path:
    """A random DAN of the paper's size saved as a checkpoint."""
    import torch

    import dan

    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=4, backbone="resnet18").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=224)
    return dan.save_model(model, work / "paper.pt")


def old_tree(commit: str, work: Path) -> Path:
    """``commit`` of this repository unpacked (``git archive``) under ``work``."""
    dest = work / f"dan-{commit}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def memory(ckpt: Path, work: Path, minutes: float) -> list[list[object]]:
    """Peak resident MiB of ``dan predict --every 25`` on a 1-minute and a ``minutes``-minute 96x96 MJPG video."""
    rows: list[list[object]] = []
    frame = np.full((96, 96, 3), 120, np.uint8)
    code = "import resource,sys\nfrom dan.cli.main import main\nmain(sys.argv[1:])\n"
    code += "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    for length in (1.0, minutes):
        path = work / f"mem{length:g}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 96))
        for i in range(int(length * 60 * 25)):
            frame[0, 0] = i % 256
            writer.write(frame)
        writer.release()
        argv = ["predict", str(path), "--checkpoint", str(ckpt), "--detector", "none", "--every", "25", "--quiet"]
        argv += ["--output", str(work / f"mem{length:g}.parquet")]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-c", code, *argv], env=env, capture_output=True, text=True, check=True)
        rows.append([f"{length:g} min", f"{int(done.stdout.split('peak')[1]) / 1024:.0f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns 0."""
    p = argparse.ArgumentParser(prog="python -m scripts.bench.video", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, help="default: a random DAN of the paper's size")
    p.add_argument("--seconds", type=float, default=20.0, help="video length (default 20)")
    p.add_argument("--size", default="1280x720", help="frame size WxH (default 1280x720)")
    p.add_argument("--faces", type=int, nargs="+", default=[1, 4], choices=[1, 4])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="dan predict --workers to time")
    p.add_argument("--every", type=int, default=1, help="dan predict --every (default 1: every frame, as the demo)")
    p.add_argument("--old-commit", default="5d1b7aa", help="also time this commit's dan demo ('' to skip)")
    p.add_argument("--memory-minutes", type=float, default=0.0, help="also measure memory on a video this long")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    print(machine_header(libraries=["onnxruntime", "cv2"]))
    print("\n".join(lscpu()))
    with tempfile.TemporaryDirectory(prefix="dan-bench-video-") as tmp:
        work = Path(tmp)
        ckpt = args.checkpoint or paper_model(work)
        int8 = work / "model.int8.onnx"
        run_dan(["export", "--checkpoint", str(ckpt), "--int8", "--output", str(int8)])
        old = old_tree(args.old_commit, work) if args.old_commit else None
        rows: list[list[object]] = []
        for faces in args.faces:
            video = write_video(work / f"faces{faces}.mp4", faces, args.seconds, (w, h))
            runs = [("dan demo --no-display (this tree)", lambda v=video: demo_fps(v, ckpt))]
            if old is not None:
                runs.append((f"dan demo --no-display ({args.old_commit})", lambda v=video: demo_fps(v, ckpt, old)))
            for workers in args.workers:
                for name, model in (("float32", ckpt), ("int8", int8)):
                    options = ("--workers", str(workers), "--every", str(args.every))
                    label = f"dan predict {name} --workers {workers}"
                    runs.append((label, lambda v=video, m=model, o=options: predict_fps(v, m, work, *o)))
            for label, fn in runs:
                fps, face_rate = fn()
                rows.append([faces, label, f"{fps:.1f}", f"{face_rate:.1f}"])
                print(f"{faces} face(s), {label}: {fps:.1f} frames/s, {face_rate:.1f} faces/s", flush=True)
        print()
        print(markdown_table(["faces", "command", "frames/s", "faces/s"], rows, right=(0, 2, 3)))
        if args.memory_minutes > 0:
            print()
            print(markdown_table(["video", "peak RSS (MiB)"], memory(ckpt, work, args.memory_minutes), right=(1,)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
