"""The package people install: the wheel built from this tree, installed in a fresh virtual environment,
runs ``dan --help`` and ``dan predict`` on a photograph from outside the repository, with every file of
the package (the shipped YuNet, the served page, the licences) inside it."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from dan.vocab import LABEL_SETS

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "dan_fer"  # the wheel's name for the distribution dan-fer ("dan" on PyPI is another project)

pytestmark = pytest.mark.slow


def _package_files() -> list[str]:
    """Every file of the package the wheel must carry (sources and assets), relative to the repository."""
    files = []
    for path in sorted((ROOT / "dan").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files.append(path.relative_to(ROOT).as_posix())
    return files


def _build_wheel(tmp_path: Path) -> Path:
    """The wheel of a copy of the tree (the build leaves its egg-info and build folders in the copy)."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "dan", source / "dan", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE", "THIRD_PARTY_NOTICES.md"):
        shutil.copy2(ROOT / name, source / name)
    out = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out)]
    done = subprocess.run([*command, str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def _fresh_venv(tmp_path: Path) -> Path:
    """A new virtual environment that sees this one's installed libraries (torch...) but not its ``dan``.

    It has no pip and no packages of its own; a ``.pth`` line appends this environment's site-packages
    to its path (the folder only: the editable install's hooks in it are not run), after its own.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(own, "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_the_wheel_installs_and_predicts_outside_the_repository(tmp_path: Path, tiny_checkpoint, astronaut) -> None:
    import cv2

    wheel = _build_wheel(tmp_path)
    assert wheel.name.startswith(f"{DISTRIBUTION}-")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in _package_files() if f not in names]
    assert missing == [], f"files of the package not in the wheel: {missing}"
    assert "dan/inference/assets/face_detection_yunet_2023mar.onnx" in names and "dan/serve/static/app.js" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "Name: dan-fer" in zipfile.ZipFile(wheel).read(metadata).decode()

    venv = _fresh_venv(tmp_path)
    python, dan = venv / "bin" / "python", venv / "bin" / "dan"
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    work = tmp_path / "elsewhere"  # not the repository: its dan/ is not on the path
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"DAN_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}

    def run(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run(str(python), "-c", "import dan; print(dan.__file__)")
    assert where.returncode == 0 and where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    helped = run(str(dan), "--help")
    assert helped.returncode == 0 and "predict" in helped.stdout, helped.stderr
    photo = work / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    argv = [str(dan), "predict", "--checkpoint", str(tiny_checkpoint), str(photo), "--output", "faces.csv"]
    predicted = run(*argv, "--backend", "torch")  # the shipped YuNet finds the face
    assert predicted.returncode == 0, predicted.stdout + predicted.stderr
    with open(work / "faces.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["label"] in LABEL_SETS["rafdb"], rows
