"""``dan synth``: deterministic RAF-DB-layout output with a preview, accepted by ``dan data check``."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np

from dan.cli.main import main
from dan.data.readers import read_split
from dan.data.synth import MANIFEST, read_manifest
from dan.imaging import read_image
from dan.synthface import draw_face


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_synth_is_deterministic_and_writes_the_rafdb_layout(tmp_path: Path, capsys) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["synth", str(a), "--per-class", "3", "--size", "64", "--workers", "2"]) == 0
    assert "wrote 14 train + 7 test images" in capsys.readouterr().out
    assert main(["synth", str(b), "--per-class", "3", "--size", "64", "--workers", "0"]) == 0
    files = _files(a)
    assert files == _files(b)  # same seed: same bytes, whatever the number of workers
    assert len(files) == 21 + 4  # images, list file, valence/arousal file, preview, manifest
    assert main(["synth", str(c), "--per-class", "3", "--size", "64", "--seed", "1", "--workers", "0"]) == 0
    assert _files(c)["EmoLabel/list_patition_label.txt"] != files["EmoLabel/list_patition_label.txt"] or any(
        _files(c)[k] != v for k, v in files.items() if k.endswith(".jpg")
    )

    lines = (a / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    assert Counter(line.split()[1] for line in lines) == {str(k): 3 for k in range(1, 8)}
    train = read_split("rafdb", a, "train")
    assert len(train) == 14 and set(train.class_counts().values()) == {2}
    image = read_image(a / "Image" / "aligned" / "test_00001_aligned.jpg")
    assert image.shape == (64, 64, 3) and image.std() > 10
    preview = read_image(a / "preview.jpg")
    assert preview.shape[0] == 7 * 64 and preview.shape[1] > 6 * 64
    assert main(["synth", str(tmp_path / "bad"), "--per-class", "0"]) == 1  # a DanError: one line, exit 1
    assert "per_class >= 1" in capsys.readouterr().err


def test_synth_marks_a_complete_data_set_and_does_not_draw_it_twice(tmp_path: Path, capsys) -> None:
    root = tmp_path / "d"
    assert main(["synth", str(root), "--per-class", "5", "--size", "32", "--workers", "0"]) == 0
    manifest = read_manifest(root)
    assert manifest is not None and (manifest["train"], manifest["test"], manifest["size"]) == (28, 7, 32)
    stamp = (root / "preview.jpg").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["synth", str(root), "--per-class", "5", "--size", "32", "--workers", "0"]) == 0
    assert "already holds this data set" in capsys.readouterr().out
    assert (root / "preview.jpg").stat().st_mtime_ns == stamp  # nothing drawn again
    assert main(["synth", str(root), "--per-class", "6", "--size", "32", "--workers", "0"]) == 0  # other settings
    assert read_manifest(root)["train"] == 35
    (root / MANIFEST).unlink()  # an interrupted run writes its manifest last: no manifest, drawn again
    assert main(["synth", str(root), "--per-class", "6", "--size", "32", "--workers", "0"]) == 0
    assert "wrote 35 train" in capsys.readouterr().out and read_manifest(root) is not None
    assert read_manifest(tmp_path) is None


def test_synth_output_passes_check_and_a_corrupted_copy_fails(tmp_path: Path, capsys) -> None:
    out = tmp_path / "syn"
    assert main(["synth", str(out), "--per-class", "6", "--size", "64", "--workers", "0"]) == 0
    assert main(["data", "check", "--format", "rafdb", "--root", str(out)]) == 0
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    victim = broken / "Image" / "aligned" / "train_00004_aligned.jpg"
    victim.write_bytes(victim.read_bytes()[:300])
    capsys.readouterr()
    assert main(["data", "check", "--format", "rafdb", "--root", str(broken)]) == 1
    assert f"{victim}: truncated image" in capsys.readouterr().out


def test_expressions_differ_where_real_ones_do() -> None:
    # Same identity and pose (same seed), different expression: the mouth and eye regions change.
    faces = [draw_face(label, np.random.default_rng(42), 100).astype(int) for label in range(7)]
    neutral = faces[6]
    mouth, eyes = (slice(62, 88), slice(25, 75)), (slice(30, 55), slice(15, 85))
    for label in (0, 3, 4):  # surprise, happiness, sadness move the mouth
        assert np.abs(faces[label][mouth] - neutral[mouth]).mean() > 3, label
    for label in (0, 1, 5):  # surprise, fear, anger move brows and eyes
        assert np.abs(faces[label][eyes] - neutral[eyes]).mean() > 3, label
    assert all(f.shape == (100, 100, 3) for f in faces)
