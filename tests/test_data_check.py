"""``dan data check``: clean data sets pass (exit 0), every kind of problem is listed (exit 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dan.cli.main import main
from dan.data.check import check_dataset

import fakedata as fd


@pytest.mark.parametrize(
    ("fmt", "build", "extra"),
    [
        ("rafdb", fd.make_rafdb, []),
        ("affectnet", fd.make_affectnet_csv, ["--num-classes", "7"]),
        ("fer2013", fd.make_fer2013, []),
        ("folder", fd.make_folder, []),
        ("sfew", fd.make_sfew, []),
        ("ferplus", fd.make_ferplus, []),
        ("expw", fd.make_expw, []),
        ("ckplus", fd.make_ckplus, []),
    ],
)
def test_clean_data_sets_pass(tmp_path: Path, capsys, fmt, build, extra) -> None:
    build(tmp_path)
    assert main(["data", "check", "--format", fmt, "--root", str(tmp_path), *extra]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "total" in out


def test_counts_table(tmp_path: Path) -> None:
    fd.make_rafdb(tmp_path, train_per_class=2, test_per_class=1)
    report = check_dataset("rafdb", tmp_path)
    assert report.ok and report.counts["train"]["fear"] == 2 and report.counts["test"]["neutral"] == 1
    row = next(line for line in report.table().splitlines() if line.startswith("happiness"))
    assert row.split() == ["happiness", "2", "1", "3"]


def test_every_problem_is_listed_with_file_and_line(tmp_path: Path, capsys) -> None:
    fd.make_rafdb(tmp_path, train_per_class=1, test_per_class=1)
    images = tmp_path / "Image" / "aligned"
    fd.truncate(images / "train_00002_aligned.jpg")
    (images / "train_00003_aligned.jpg").unlink()
    (images / "test_0001_aligned.jpg").write_bytes(b"not an image at all")
    list_file = tmp_path / "EmoLabel" / "list_patition_label.txt"
    lines = list_file.read_text().splitlines()
    lines[5] = "train_00006.jpg 0"
    lines.append(lines[0])
    list_file.write_text("\n".join(lines) + "\n")

    assert main(["data", "check", "--format", "rafdb", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{list_file}:2: {images / 'train_00002_aligned.jpg'}: truncated image" in out
    assert f"{list_file}:3: {images / 'train_00003_aligned.jpg'}: cannot read" in out
    assert f"{list_file}:8: {images / 'test_0001_aligned.jpg'}: not a decodable image" in out
    assert f"{list_file}:6: label '0' outside 1..7" in out
    assert f"{list_file}:15: duplicate entry train_00001.jpg (first on line 1)" in out
    # the bad label took anger's only training image: a model would never see the class
    assert f"{tmp_path}: class 'anger' has no images in split train (only in test)" in out
    assert "6 problem(s)" in out


def test_missing_things_are_problems(tmp_path: Path, capsys) -> None:
    assert main(["data", "check", "--format", "rafdb", "--root", str(tmp_path / "nope")]) == 1
    out = capsys.readouterr().out
    assert "nope: data set root not found" in out and "1 problem(s)" in out  # said once, not once per split
    fd.make_affectnet_csv(tmp_path / "aff", per_class=1)
    (tmp_path / "aff" / "Manually_Annotated_file_lists" / "validation.csv").unlink()
    report = check_dataset("affectnet", tmp_path / "aff")
    assert not report.ok and report.counts["train"]["contempt"] == 1
    assert "validation.csv: AffectNet list file not found" in str(report.problems[0])
    fd.make_affectnet_csv(tmp_path / "aff2", per_class=1)
    img = next((tmp_path / "aff2" / "Manually_Annotated_Images").rglob("training_003.png"))
    img.write_bytes(fd.truncate(img).read_bytes())
    report = check_dataset("affectnet", tmp_path / "aff2")
    assert [str(p).split(": ")[1] for p in report.problems] == [f"{img}"]


def test_check_prints_valence_arousal_coverage_per_split(tmp_path: Path, capsys) -> None:
    """main said "no problems found" and nothing else with two thirds of the valence/arousal rows missing."""
    from dan.cli.main import main

    fd.make_rafdb(tmp_path, train_per_class=3, test_per_class=1)
    names = [f"train_{k:05d}.jpg" for k in range(1, 8)] + ["test_0001.jpg"]
    (tmp_path / "EmoLabel" / "valence_arousal.txt").write_text("".join(f"{n} 0.5 -0.5\n" for n in names))
    assert main(["data", "check", "--format", "rafdb", "--root", str(tmp_path), "--no-decode"]) == 0
    assert "valence/arousal known: train 7 of 21, test 1 of 7" in capsys.readouterr().out
    (tmp_path / "EmoLabel" / "valence_arousal.txt").unlink()
    assert main(["data", "check", "--format", "rafdb", "--root", str(tmp_path), "--no-decode"]) == 0
    assert "valence/arousal" not in capsys.readouterr().out  # a data set without them: no line
