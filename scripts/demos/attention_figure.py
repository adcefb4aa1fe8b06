"""A figure of faces and their heads' attention maps, one row per face (what docs/attention.png shows).

    python -m scripts.demos.attention_figure --checkpoint CKPT --out docs/attention.png face1.jpg face2.jpg ...

Each row: the face with the model's prediction, then one overlay per head of its spatial attention map
(``dan.inference.attention.save_attention_figure``, the same preparation as every other path).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from dan.fileio import atomic_write
from dan.inference.attention import save_attention_figure
from dan.runtime.torch import TorchBackend


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("faces", nargs="+", help="face images (each the whole face, as --detector none takes it)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True, help="the figure (.png)")
    p.add_argument("--tile", type=int, default=160, help="panel side in pixels")
    args = p.parse_args(argv)
    backend = TorchBackend(args.checkpoint)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for i, face in enumerate(args.faces):
            path = save_attention_figure(backend, face, Path(work) / f"{i}.png", tile=args.tile)
            rows.append(cv2.imread(str(path)))
    gap = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    figure = np.vstack([r for row in rows for r in (row, gap)][:-1])  # (rows * tile + gaps, width, 3)
    ok, png = cv2.imencode(".png", figure)
    atomic_write(args.out, png.tobytes(), "figure")
    size = backend.preprocessing.input_size
    maps = backend.outputs(np.zeros((1, 3, size, size), np.float32), attention=True).attention
    assert maps is not None  # a checkpoint's backend has the maps
    print(f"wrote {args.out}: {len(rows)} faces, {maps.shape[1]} heads, maps of {maps.shape[2]}x{maps.shape[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
