"""Closed vocabularies live in dan.common; every registry implements exactly its vocabulary's names."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args, get_type_hints

import pytest

from dan import common
from dan.common import DanError


def test_importing_common_stays_cheap() -> None:
    code = "import sys, dan.common\nprint('HEAVY', [m for m in ('torch', 'numpy', 'cv2', 'PIL') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY []" in out, out


def test_data_formats_and_transforms() -> None:
    from dan.data.readers import FORMATS
    from dan.data.transforms import PIPELINES, TRANSFORMS, build_transform

    assert tuple(FORMATS) == common.FORMAT_NAMES
    assert tuple(PIPELINES) == TRANSFORMS == common.TRANSFORMS
    for name in common.TRANSFORMS:
        assert build_transform(name).name == name
    with pytest.raises(DanError, match="choose one of rafdb, affectnet, flip, eval, none"):
        build_transform("strong")


def test_heads_backends_detectors_exports() -> None:
    from dan.auto.open import open_backend
    from dan.export import FORMATS as EXPORT_FORMATS
    from dan.inference import detectors
    from dan.models.dan import HEAD_TYPES
    from dan.training.module import DANModule

    assert tuple(HEAD_TYPES) == common.HEADS
    assert get_args(get_type_hints(DANModule.__init__)["head"]) == common.HEADS  # what --model.head accepts
    for name in common.BACKENDS:  # the opener takes every runtime it lists (and finds no file here)
        with pytest.raises(DanError, match="checkpoint not found"):
            open_backend("no-such-model.onnx", name)
    with pytest.raises(DanError, match="unknown backend 'tvm': choose one of auto, torch, onnx, openvino"):
        open_backend("no-such-model.onnx", "tvm")
    assert EXPORT_FORMATS == common.EXPORT_FORMATS
    assert detectors.DETECTORS == common.DETECTORS
    for name in common.DETECTORS:  # the factory makes every one it lists
        assert isinstance(detectors.create_detector(name), detectors.Detector)
    with pytest.raises(DanError, match="unknown detector"):
        detectors.create_detector("mtcnn")


def test_resize_filters_and_face_crops() -> None:
    from dan.preprocess import RESIZE_METHODS

    assert tuple(RESIZE_METHODS) == common.RESIZE_NAMES
    with pytest.raises(DanError, match="choose one of align, box"):
        common.Preprocessing.from_dict({"crop": "mask"})


@pytest.mark.parametrize(
    ("argv", "option", "names"),
    [
        (["data", "check", "--root", "x", "--format", "lfw"], "--format", common.FORMAT_NAMES),
        (
            ["data", "check", "--root", "x", "--format", "rafdb", "--rafdb-images", "crops"],
            "--rafdb-images",
            common.RAFDB_IMAGES,
        ),
        (["evaluate", "--checkpoint", "m", "--root", "x", "--format", "lfw"], "--format", common.FORMAT_NAMES),
        (
            ["evaluate", "--checkpoint", "m", "--root", "x", "--format", "rafdb", "--backend", "tvm"],
            "--backend",
            common.BACKENDS,
        ),
        (["predict", "--checkpoint", "m", "x.jpg", "--detector", "mtcnn"], "--detector", common.DETECTORS),
        (["export", "--checkpoint", "m", "--output", "m.x", "--format", "tflite"], "--format", common.EXPORT_FORMATS),
    ],
)
def test_the_command_line_offers_the_vocabularies(argv: list[str], option: str, names: tuple, capsys) -> None:
    from dan.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    offered = err.split(f"argument {option}: invalid choice: ", 1)[1].split("(choose from ", 1)[1].split(")", 1)[0]
    assert tuple(x.strip(" '") for x in offered.split(",")) == names
