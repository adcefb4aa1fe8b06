"""Small things a newcomer meets first: fast help, the right option named, one clean line per problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dan
from dan.cli.main import COMMANDS, main
from dan.errors import one_line

import fakedata as fd


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"validate", "test"}))
def test_help_imports_nothing_heavy(command: str) -> None:
    code = (
        "import sys\n"
        "from dan.cli.main import main\n"
        f"args = {['data', 'check', '--help'] if command == 'data' else [command, '--help']!r}\n"
        "try:\n    main(args)\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'albumentations', 'timm') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out, out[-500:]  # help needs no deep-learning library: it prints in well under a second


def test_messages_are_cut_between_sentences() -> None:
    long = "First sentence here. " * 20
    cut = one_line(long, 100)
    assert cut.endswith(". [...]") and len(cut) <= 110
    words = one_line("word " * 100, 50)
    assert words.endswith("word [...]")
    assert one_line("a\n  b") == "a b"


def test_evaluate_names_its_own_option(tmp_path: Path, capsys) -> None:
    fd.make_folder(tmp_path / "tree", classes=("happy", "sad"), splits=("train",))
    torch.manual_seed(0)
    model = dan.DAN(2, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = ("happiness", "sadness"), dan.Preprocessing(input_size=32)
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    args = ["evaluate", "--checkpoint", str(ckpt), "--format", "folder", "--root", str(tmp_path / "tree")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "name a split with --split" in err and "val_split" not in err


def test_missing_camera_is_one_line_without_opencv_noise(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=32)
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    cmd = [sys.executable, "-m", "dan", "demo", "--checkpoint", str(ckpt), "--source", "9", "--no-display"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "camera 9: no camera at this index" in done.stderr and "[ WARN" not in done.stderr, done.stderr


def test_a_model_of_generated_faces_says_so_once(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = dan.DAN(7, 1, backbone="test_resnet").eval()
    model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=32)
    model.trained_on = {"format": "rafdb", "synthetic": True}
    ckpt = dan.save_model(model, tmp_path / "m.pt")
    photo = fd.write_image(tmp_path / "p.png", fd._solid(1))
    assert main(["predict", str(photo), str(photo), "--checkpoint", str(ckpt), "--detector", "none"]) == 0
    err = capsys.readouterr().err
    assert err.count("trained on generated faces") == 1 and "--checkpoint rafdb" in err
    model.trained_on = {"format": "rafdb", "synthetic": False}
    real = dan.save_model(model, tmp_path / "real.pt")
    assert main(["predict", str(photo), "--checkpoint", str(real), "--detector", "none"]) == 0
    assert "generated faces" not in capsys.readouterr().err
