"""Dataset decoding (grey, RGBA, 16-bit, EXIF, truncated files) and the transform pipelines."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from dan.data.dataset import FERDataset, build_dataset
from dan.data.folder import read_folder
from dan.data.transforms import TRANSFORMS, Transform
from dan.errors import DanError
from dan.imaging import ImageReadError
from dan.preprocess import Preprocessing

import fakedata as fd


def _one_class_tree(tmp_path: Path) -> Path:
    (tmp_path / "train" / "happy").mkdir(parents=True)
    return tmp_path / "train" / "happy"


def test_items_are_float_images_and_int64_labels(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path)
    ds = build_dataset("rafdb", tmp_path, "train", image_size=40, augment="rafdb")
    image, label = ds[3]
    assert image.shape == (3, 40, 40) and image.dtype == torch.float32
    assert label.dtype == torch.int64 and label.ndim == 0 and int(label) == ds.samples[3][1] == 1
    assert ds.label_names[0] == "surprise" and len(ds.samples) == len(ds) == 14
    assert isinstance(ds.samples[0], tuple) and ds.samples[0][0].endswith("train_00001_aligned.jpg")
    plain = build_dataset("rafdb", tmp_path, "test", image_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    image = plain[0][0]
    assert image.min() >= 0 and image.max() <= 1
    assert torch.allclose(image[:, 8, 8], torch.tensor(fd.color_of(0)) / 255, atol=0.02)


def test_odd_image_kinds_load_as_rgb(tmp_path: Path) -> None:
    folder = _one_class_tree(tmp_path)
    cv2.imwrite(str(folder / "grey.png"), np.full((20, 30), 200, np.uint8))
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 2], rgba[..., 3] = 255, 255  # BGRA: red, opaque
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    deep = np.zeros((20, 30, 3), np.uint16)
    deep[..., 0] = 65535  # BGR 16-bit: blue at full scale
    cv2.imwrite(str(folder / "deep.png"), deep)
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(stored).save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)

    ds = FERDataset(read_folder(tmp_path, "train"))
    images = {Path(p).stem: ds.load(i) for i, (p, _) in enumerate(ds.samples)}
    assert images["grey"].shape == (20, 30, 3) and (images["grey"] == 200).all()
    assert tuple(images["rgba"][5, 5]) == (255, 0, 0)
    assert images["deep"].dtype == np.uint8 and tuple(images["deep"][5, 5]) == (0, 0, 255)
    rot = images["rotated"].astype(int)
    assert rot.shape == (40, 20, 3)  # portrait after applying the EXIF orientation
    assert rot[5, 10, 0] > 200 and rot[5, 10, 2] < 60  # red is now on top
    assert rot[34, 10, 2] > 200 and rot[34, 10, 0] < 60  # blue at the bottom
    for i in range(len(ds)):
        assert ds[i][0].shape == (3, 224, 224)


def test_truncated_image_raises_with_path_or_is_skipped_and_counted(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path, train_per_class=1, test_per_class=1)
    bad = fd.truncate(tmp_path / "Image" / "aligned" / "train_00003_aligned.jpg")
    strict = build_dataset("rafdb", tmp_path, "train", image_size=32)
    with pytest.raises(ImageReadError, match=str(bad)):
        strict[2]
    (tmp_path / "Image" / "aligned" / "train_00005_aligned.jpg").unlink()
    with pytest.raises(ImageReadError, match="train_00005_aligned.jpg: cannot read"):
        strict[4]
    lenient = build_dataset("rafdb", tmp_path, "train", image_size=32, skip_bad_files=True)
    seen = [int(lenient[i][1]) for i in range(len(lenient))]
    assert lenient.bad_files == 2 and len(seen) == 7
    assert seen[0] == 0 and seen[2] != 2  # a substitute came instead of the broken one
    lenient[2]
    assert lenient.bad_files == 2  # known bad files are not decoded (or counted) again
    loader = torch.utils.data.DataLoader(lenient, batch_size=7)
    images, labels = next(iter(loader))
    assert images.shape == (7, 3, 32, 32) and labels.dtype == torch.int64


def test_transform_pipelines(tmp_path: Path) -> None:
    pre, p48 = Preprocessing(), Preprocessing(input_size=48)
    mean_colour = np.full((50, 70, 3), np.round(np.array(pre.mean) * 255), np.uint8)
    for name in TRANSFORMS:
        out = Transform(name, p48, seed=1)(mean_colour)
        assert out.shape == (3, 48, 48) and out.dtype == torch.float32 and out.is_contiguous()
    ev = Transform("eval", p48)(mean_colour)
    assert ev.abs().max() < 0.02  # normalised with the ImageNet mean/std
    unit = Preprocessing(input_size=16, mean=(0, 0, 0), std=(1, 1, 1))
    custom = Transform("eval", unit)(np.full((8, 8, 3), 255, np.uint8))
    assert torch.allclose(custom, torch.ones(3, 16, 16))

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)
    a = torch.stack([Transform("rafdb", p48, seed=5)(img) for _ in range(2)])
    assert torch.equal(a[0], a[1])  # same seed, same augmentation
    t = Transform("rafdb", p48, seed=5)
    outs = torch.stack([t(img) for _ in range(40)])
    erased = [(o == 0).all(0).float().mean().item() > 0.015 for o in outs]
    assert 5 < sum(erased) < 35  # random erasing at p=0.5
    flipped = [torch.allclose(o, ev_img.flip(-1)) for o, ev_img in zip(outs, [Transform("eval", p48)(img)] * 40)]
    assert sum(flipped) > 3  # some outputs are exactly the mirrored eval image
    aff = Transform("affectnet", p48, seed=3)
    changed = sum(not torch.equal(aff(img), aff(img)) for _ in range(10))
    assert changed >= 8
    with pytest.raises(DanError, match="unknown augmentation"):
        Transform("heavy")


def test_flip_pipeline_only_mirrors() -> None:
    img = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    plain = Transform("eval", Preprocessing(input_size=32))(img)
    outs = [Transform("flip", Preprocessing(input_size=32), seed=s)(img) for s in range(12)]
    mirrored = sum(torch.allclose(o, plain.flip(-1)) for o in outs)
    same = sum(torch.allclose(o, plain) for o in outs)
    assert mirrored + same == 12 and 0 < mirrored < 12


def test_rafdb_crop_shift_scales_with_image_size() -> None:
    from dan.data.transforms import PIPELINES

    for size, expected in ((224, 32), (112, 16), (48, 7)):
        steps, _ = PIPELINES["rafdb"](size)
        affine = next(s for s in steps if type(s).__name__ == "Affine")
        assert max(abs(v) for v in affine.translate_px["x"]) == expected
