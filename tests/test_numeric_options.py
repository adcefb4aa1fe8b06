"""Every numeric option of every command is checked while the command line is parsed: one line, exit 1,
before a model loads (the model named here does not exist, so a check after loading would say so instead)
and before any folder appears."""

from __future__ import annotations

from pathlib import Path

import pytest

from dan.cli.main import main
from dan.cli.options import Number
from dan.errors import DanError

MODEL = "no-such-model.pt"
DATA = ["--checkpoint", MODEL, "--format", "rafdb", "--root", "no-such-root"]

CASES = [
    (["evaluate", *DATA], "--batch-size", "0"),
    (["evaluate", *DATA], "--batch-size", "-1"),
    (["evaluate", *DATA], "--workers", "-1"),
    (["evaluate", *DATA], "--num-classes", "9"),
    (["calibrate", *DATA], "--batch-size", "0"),
    (["calibrate", *DATA], "--workers", "-1"),
    (["calibrate", *DATA], "--val-fraction", "1.5"),
    (["calibrate", *DATA], "--val-fraction", "nan"),
    (["export", "--checkpoint", MODEL], "--tolerance", "-1"),
    (["export", "--checkpoint", MODEL], "--min-agreement", "2"),
    (["export", "--checkpoint", MODEL], "--opset", "0"),
    (["demo", "--checkpoint", MODEL, "--no-display"], "--detect-every", "0"),
    (["demo", "--checkpoint", MODEL, "--no-display"], "--max-frames", "-5"),
    (["demo", "--checkpoint", MODEL, "--no-display"], "--threads", "0"),
    (["demo", "--checkpoint", MODEL, "--no-display"], "--image-fps", "inf"),
    (["demo", "--checkpoint", MODEL, "--no-display"], "--margin", "-0.5"),
    (["demo", "--checkpoint", MODEL, "--no-display"], "--detect-size", "0"),
    (["serve", "--checkpoint", MODEL], "--port", "70000"),
    (["serve", "--checkpoint", MODEL], "--max-upload-mb", "0"),
    (["serve", "--checkpoint", MODEL], "--smoothing", "1"),
    (["serve", "--checkpoint", MODEL], "--threads", "-2"),
    (["predict", "x.jpg", "--checkpoint", MODEL], "--batch-size", "0"),
    (["predict", "x.jpg", "--checkpoint", MODEL], "--workers", "-1"),
    (["data", "check", "--format", "rafdb", "--root", "no-such-root"], "--workers", "-1"),
    (["data", "check", "--format", "rafdb", "--root", "no-such-root"], "--num-classes", "3"),
    (["synth"], "--per-class", "0"),
    (["synth"], "--size", "8"),
    (["synth"], "--test-fraction", "1"),
    (["synth"], "--workers", "-1"),
    (["info"], "--num-heads", "0"),
]


@pytest.mark.parametrize(("argv", "option", "value"), CASES, ids=[f"{c[0][0]}{c[1]}={c[2]}" for c in CASES])
def test_bad_number_is_one_line_before_anything(argv, option, value, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    argv = list(argv)
    if argv[0] == "synth":
        argv.append(str(out))
    elif argv[0] in ("evaluate", "calibrate"):
        argv += ["--output", str(out)]
    elif argv[0] == "export":
        argv += ["--output", str(out / "m.onnx")]
    assert main([*argv, option, value]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dan {argv[0]}: error: {option} must be"), err
    assert list(tmp_path.iterdir()) == []  # no output folder, no runs/ folder


def test_number_type() -> None:
    batch = Number("--batch-size", int, minimum=1)
    assert batch("3") == 3 and isinstance(batch("3"), int)
    for bad, says in (("0", "at least 1"), ("2.5", "a whole number"), ("x", "a whole number")):
        with pytest.raises(DanError, match=f"--batch-size must be {says}"):
            batch(bad)
    fraction = Number("--f", float, above=0, below=1)
    assert fraction("0.25") == 0.25
    for bad in ("0", "1", "nan", "inf", "-inf"):
        with pytest.raises(DanError, match="--f must be"):
            fraction(bad)
