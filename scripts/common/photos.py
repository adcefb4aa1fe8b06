"""A folder of distinct real photographs with faces, made from the sample images installed with the test tools.

The faces are scikit-image's astronaut (Eileen Collins) and cameraman, and matplotlib's Grace Hopper;
a few photos have two faces (a photo beside its mirror image) and a few none (scikit-image's coffee and
cat). Each file is one of them cropped, flipped, scaled (longest side 320 to 1400 pixels), its
brightness and contrast changed and saved as JPEG (quality 70 to 95) or PNG, all drawn from a seeded
generator: the same folder for the same arguments, every file different. What ``dan predict``'s
benchmark (``scripts/bench/predict.py``), the GPU check and the tests run on. Usage::

    python -m scripts.common.photos DIR [--count 200] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from dan.fileio import atomic_write

__all__ = ["make_photo_folder", "source_photos"]


def source_photos() -> dict[str, np.ndarray]:
    """The originals, uint8 RGB: faces (astronaut, camera, hopper, two: astronaut and its mirror) and none."""
    import matplotlib.cbook
    import skimage.data

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    astronaut = skimage.data.astronaut()
    return {
        "astronaut": astronaut,
        "camera": cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2RGB),
        "hopper": hopper,
        "two": np.hstack([astronaut, astronaut[:, ::-1]]),
        "coffee": skimage.data.coffee(),
        "cat": skimage.data.chelsea(),
    }


# how often each original is drawn: mostly faces, a few photos without any
_WEIGHTS = {"astronaut": 0.3, "camera": 0.15, "hopper": 0.3, "two": 0.15, "coffee": 0.05, "cat": 0.05}


def _variant(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A crop (80 to 100 % of each side, faces kept: the originals' faces are central), maybe mirrored,
    scaled to a longest side of 320 to 1400 pixels, with brightness and contrast changed."""
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.8, 1.0)), int(w * rng.uniform(0.8, 1.0))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    side = int(rng.integers(320, 1401))
    scale = side / max(out.shape[:2])
    size = (max(1, round(out.shape[1] * scale)), max(1, round(out.shape[0] * scale)))
    out = cv2.resize(np.ascontiguousarray(out), size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    gain, offset = rng.uniform(0.75, 1.25), rng.uniform(-25, 25)
    return np.clip(out.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def make_photo_folder(dest: str | Path, count: int = 200, seed: int = 0) -> list[Path]:
    """Write ``count`` distinct photos into ``dest`` (created) and return their paths, sorted.

    Files already there from the same arguments are kept (the folder is made once per benchmark).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sources = source_photos()
    names = list(_WEIGHTS)
    weights = np.array([_WEIGHTS[n] for n in names])
    paths = []
    for i in range(count):
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        image = _variant(sources[name], rng)
        png = rng.random() < 0.2
        quality = int(rng.integers(70, 96))
        path = dest / f"{i:04d}-{name}.{'png' if png else 'jpg'}"
        if not path.is_file():  # written whole or not at all: a kept file is a complete one
            params = [] if png else [cv2.IMWRITE_JPEG_QUALITY, quality]
            ok, data = cv2.imencode(path.suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
            assert ok, path
            atomic_write(path, data.tobytes(), "photo")
        paths.append(path)
    return sorted(paths)


def main(argv: list[str] | None = None) -> int:
    """Write the folder; print how many files."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dest", help="folder to write")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    print(f"{len(make_photo_folder(args.dest, args.count, args.seed))} photos in {args.dest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
