"""Valence and arousal: generated, read, batched, learned (CCC loss), scored and exported."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dan.data.datamodule import FERDataModule
from dan.data.readers import read_split
from dan.data.synth import generate, render_image, render_item
from dan.data.synth_face import CIRCUMPLEX

import fakedata as fd

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def va_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated set of 32 px faces, 4 per class (21 train + 7 test), with its valence/arousal file."""
    root = tmp_path_factory.mktemp("va_synth")
    generate(root, per_class=4, size=32, workers=0)
    return root


# ----------------------------------------------------------------------------------------------- generated


def test_synth_writes_va_deterministically_from_expression_and_intensity(tmp_path: Path, va_synth: Path) -> None:
    other = tmp_path / "two_workers"
    generate(other, per_class=4, size=32, workers=2)
    va_file = "EmoLabel/valence_arousal.txt"
    assert (other / va_file).read_bytes() == (va_synth / va_file).read_bytes()  # whatever the number of workers
    lines = (va_synth / va_file).read_text().splitlines()
    listed = (va_synth / "EmoLabel/list_patition_label.txt").read_text().splitlines()
    assert [line.split()[0] for line in lines] == [line.split()[0] for line in listed]
    for line, entry in zip(lines, listed, strict=True):
        v, a = map(float, line.split()[1:])
        label = int(entry.split()[1]) - 1
        cv, ca = CIRCUMPLEX[label]
        assert -1 <= v <= 1 and -1 <= a <= 1
        # the centre times an intensity in [0.45, 1], plus noise of sd 0.05: within 0.25 of the scaled segment
        assert abs(v - cv * 0.725) <= abs(cv) * 0.275 + 0.25 and abs(a - ca * 0.725) <= abs(ca) * 0.275 + 0.25
    image, va = render_item(0, 3, 2, 32)
    assert np.array_equal(image, render_image(0, 3, 2, 32)) and va == render_item(0, 3, 2, 32)[1]  # same pixels
    manifest = (va_synth / "dan-synth.json").stat().st_mtime_ns
    assert manifest >= (va_synth / va_file).stat().st_mtime_ns  # the manifest is written last


def test_rafdb_reader_reads_the_va_file_and_flags_bad_lines(tmp_path: Path, va_synth: Path) -> None:
    train = read_split("rafdb", va_synth, "train")
    va = train.va
    assert va is not None and va.shape == (21, 2) and va.dtype == np.float32 and np.isfinite(va).all()
    first = (va_synth / "EmoLabel/valence_arousal.txt").read_text().splitlines()[0].split()
    assert train.samples[0].va == (float(first[1]), float(first[2]))
    fd.make_rafdb(tmp_path, train_per_class=1, test_per_class=1)
    plain = read_split("rafdb", tmp_path, "train")
    assert plain.va is None and not plain.has_va  # no side file: no valence/arousal
    (tmp_path / "EmoLabel/valence_arousal.txt").write_text("train_00001.jpg 0.5 -0.25\n")
    some = read_split("rafdb", tmp_path, "train").va
    assert some is not None and some[0].tolist() == [0.5, -0.25] and np.isnan(some[1:]).all()  # others unknown
    (tmp_path / "EmoLabel/valence_arousal.txt").write_text("train_00001.jpg 0.5\ntrain_00002.jpg 1.5 0\n")
    from dan.common import DanError

    with pytest.raises(DanError, match=r"valence_arousal.txt:1: expected 'NAME VALENCE AROUSAL'.*and 1 more"):
        read_split("rafdb", tmp_path, "train")


def _affectnet_csv(root: Path, rows: list[tuple[int, str, str]]) -> None:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True, exist_ok=True)
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks"]
    header += ["expression", "valence", "arousal"]
    for split in ("training", "validation"):
        with open(lists / f"{split}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            for i, (expression, v, a) in enumerate(rows):
                rel = f"1/{split}_{i}.png"
                fd.write_image(root / "Manually_Annotated_Images" / rel, np.zeros((16, 16, 3), np.uint8))
                writer.writerow([rel, 0, 0, 16, 16, "", expression, v, a])


def test_affectnet_reader_keeps_va_and_marks_unknown_as_nan(tmp_path: Path) -> None:
    _affectnet_csv(tmp_path, [(1, "0.75", "-0.5"), (2, "-2", "0.25"), (3, "-2", "-2"), (9, "0.1", "0.1")])
    data = read_split("affectnet", tmp_path, "train")
    assert len(data) == 3  # expression 9 (uncertain) is dropped, as before
    assert data.samples[0].va == (0.75, -0.5) and data.samples[2].va is None
    va = data.va
    assert va is not None and np.isnan(va[1, 0]) and va[1, 1] == 0.25 and np.isnan(va[2]).all()
    dm = FERDataModule(format="affectnet", root=str(tmp_path), image_size=16, num_workers=0)
    assert dm.has_va
    _affectnet_csv(tmp_path, [(1, "0.75", "1.5")])
    from dan.common import DanError

    with pytest.raises(DanError, match=r"training.csv:2: valence or arousal: 1.5 outside -1..1"):
        read_split("affectnet", tmp_path, "train")
    npy = tmp_path / "npy"
    fd.make_affectnet_npy(npy)
    assert read_split("affectnet", npy, "train").va is None  # no _val/_aro files
    np.save(npy / "train_set/annotations/0_val.npy", np.array("0.5"))
    np.save(npy / "train_set/annotations/0_aro.npy", np.array("-2"))
    read = read_split("affectnet", npy, "train")
    assert read.samples[0].va is not None and read.samples[0].va[0] == 0.5 and math.isnan(read.samples[0].va[1])
    fd.make_affectnet_folders(tmp_path / "folders")
    assert not FERDataModule(format="affectnet", root=str(tmp_path / "folders")).has_va


def test_batches_carry_va_only_for_a_data_set_that_can_have_it(tmp_path: Path, va_synth: Path) -> None:
    dm = FERDataModule(format="rafdb", root=str(va_synth), image_size=32, batch_size=8, num_workers=0, seed=0)
    assert dm.has_va
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["va"].shape == (8, 2) and batch["va"].dtype == torch.float32 and torch.isfinite(batch["va"]).all()
    val = next(iter(dm.val_dataloader()))
    assert val["va"].shape == (len(val["label"]), 2)
    assert torch.equal(val["va"], torch.from_numpy(dm.val_dataset.va[: len(val["label"])]))
    old = FERDataModule(format="rafdb", root=str(va_synth), image_size=32, batch_size=8, num_workers=0)
    old.device_transforms = False  # the all-CPU pipeline: (image, label) pairs, as before
    old.setup("fit")
    images, labels = next(iter(old.train_dataloader()))
    assert images.shape == (8, 3, 32, 32) and labels.shape == (8,)
    fd.make_rafdb(tmp_path, train_per_class=3, test_per_class=1)
    plain = FERDataModule(format="rafdb", root=str(tmp_path), image_size=32, batch_size=8, num_workers=0)
    plain.setup("fit")
    assert not plain.has_va and "va" not in next(iter(plain.train_dataloader()))
