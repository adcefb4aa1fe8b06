"""Every refusal of ``dan fit`` comes before the run folder (no ``runs/<name>/version_N`` left, no version number
used up), the machine's accelerators are checked in one line, and ``--trainer.default_root_dir`` decides where
a run goes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from dan.cli.main import main
from dan.training.module import MIN_VA_FACES

import fakedata as fd

CONF = Path(__file__).parent / "conf" / "tiny.yaml"
SMALL = ["--model.backbone", "test_resnet", "--data.image_size", "32", "--trainer.max_epochs", "1"]


def _fit(data: Path, *extra: str) -> int:
    return main(["fit", "-c", str(CONF), "--data.root", str(data), *SMALL, *extra])


@pytest.fixture(scope="module")
def rafdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rafdb")
    fd.make_rafdb(root, train_per_class=3, test_per_class=1)
    return root


def _one_error(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--model.init_from", "missing.pt"], "missing.pt: no such file"),
        (["--model.backbone_weights", "nope.pth"], "nope.pth: backbone weights file not found"),
        (["--data.val_split", "val"], "data.val_split='val'"),
    ],
    ids=["init_from", "backbone", "data"],
)
def test_refusals_leave_no_run_folder(extra, says, rafdb: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert _fit(rafdb, *extra) == 1
    assert says in _one_error(capsys)
    assert not (tmp_path / "runs").exists()


def test_va_head_counts_the_known_rows_before_the_run_folder(rafdb: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """An empty valence_arousal.txt trained on main: an untrained output that dan predict then printed."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(rafdb, data)
    va = data / "EmoLabel" / "valence_arousal.txt"
    va.write_text("")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert _fit(data, "--model.va_head", "true") == 1
    err = _one_error(capsys)
    assert "knows the valence and arousal of 0 of its 14 faces" in err and f"at least {MIN_VA_FACES}" in err
    va.write_text("".join(f"train_{k:05d}.jpg 0.5 -0.5\n" for k in range(1, MIN_VA_FACES)))  # one too few
    assert _fit(data, "--model.va_head", "true") == 1
    known = re.search(r"valence and arousal of (\d+) of its 14 faces", _one_error(capsys))  # 7 are held out
    assert known and 0 < int(known.group(1)) < MIN_VA_FACES
    assert list(work.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("accelerator", ["gpu", "cuda", "tpu"])
def test_an_accelerator_the_machine_lacks_is_one_line(
    accelerator: str, rafdb: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _fit(rafdb, "--trainer.accelerator", accelerator) == 1
    err = _one_error(capsys)
    assert err.startswith(f"dan fit: error: trainer.accelerator={accelerator}: this machine has") and "CPU cores" in err
    assert not (tmp_path / "runs").exists()


def test_default_root_dir_decides_where_the_run_goes(rafdb: Path, tmp_path: Path, monkeypatch) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    monkeypatch.chdir(here)
    assert _fit(rafdb, "--trainer.default_root_dir", str(there), "--trainer.limit_train_batches", "1") == 0
    run = there / "runs" / "tiny" / "version_0"
    assert (run / "config.yaml").is_file() and (run / "checkpoints" / "last.ckpt").is_file()
    assert list(here.iterdir()) == []
