"""Closed vocabularies live in dan.vocab; every registry implements exactly its vocabulary's names."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import get_args, get_type_hints

import pytest

from dan import vocab
from dan.errors import DanError
from dan.preprocess import Preprocessing


def test_the_ground_floor_is_cheap_and_has_no_side_effect() -> None:
    """``import dan`` and its ground floor load no heavy library and leave the environment as it was
    (OpenCV's two settings are set by :mod:`dan.opencv`, just before cv2 loads)."""
    code = (
        "import os, sys\nbefore = dict(os.environ)\n"
        "import dan, dan.errors, dan.vocab, dan.paths\n"
        "print('HEAVY', [m for m in ('torch', 'numpy', 'cv2', 'PIL') if m in sys.modules])\n"
        "print('ENV', sorted(set(os.environ.items()) ^ set(before.items())))\n"
        "import dan.opencv\nprint('OPENCV', os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCV_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env).stdout
    assert "HEAVY []" in out and "ENV []" in out, out
    assert "OPENCV 50000000" in out, out


def test_data_formats_and_transforms() -> None:
    from dan.data.readers import FORMATS
    from dan.data.transforms import PIPELINES, TRANSFORMS, Transform

    assert tuple(FORMATS) == vocab.FORMAT_NAMES
    assert tuple(PIPELINES) == TRANSFORMS == vocab.TRANSFORMS
    for name in vocab.TRANSFORMS:
        assert Transform(name).name == name
    with pytest.raises(DanError, match="choose one of rafdb, affectnet, flip, eval, none"):
        Transform("strong")


def test_heads_backends_detectors_exports() -> None:
    from dan.auto.open import open_backend
    from dan.export import export_checkpoint
    from dan.inference import detectors
    from dan.models.dan import HEAD_TYPES
    from dan.training.module import DANModule

    assert tuple(HEAD_TYPES) == vocab.HEADS
    assert get_args(get_type_hints(DANModule.__init__)["head"]) == vocab.HEADS  # what --model.head accepts
    for name in vocab.BACKENDS:  # the opener takes every runtime it lists (and finds no file here)
        with pytest.raises(DanError, match="checkpoint not found"):
            open_backend("no-such-model.onnx", name)
    with pytest.raises(DanError, match="unknown backend 'tvm': choose one of auto, torch, onnx, openvino"):
        open_backend("no-such-model.onnx", "tvm")
    with pytest.raises(DanError, match=f"choose one of {', '.join(vocab.EXPORT_FORMATS)}"):
        export_checkpoint(None, "m.x", format="tflite")  # refused before the model is used
    assert detectors.DETECTORS == vocab.DETECTORS
    for name in vocab.DETECTORS:  # the factory makes every one it lists
        assert isinstance(detectors.create_detector(name), detectors.Detector)
    with pytest.raises(DanError, match="unknown detector"):
        detectors.create_detector("mtcnn")


def test_resize_filters_and_face_crops() -> None:
    from dan.preprocess import RESIZE_METHODS

    assert tuple(RESIZE_METHODS) == vocab.RESIZE_NAMES
    with pytest.raises(DanError, match="choose one of align, box"):
        Preprocessing.from_dict({"crop": "mask"})


@pytest.mark.parametrize(
    ("argv", "option", "names"),
    [
        (["data", "check", "--root", "x", "--format", "lfw"], "--format", vocab.FORMAT_NAMES),
        (
            ["data", "check", "--root", "x", "--format", "rafdb", "--rafdb-images", "crops"],
            "--rafdb-images",
            vocab.RAFDB_IMAGES,
        ),
        (["evaluate", "--checkpoint", "m", "--root", "x", "--format", "lfw"], "--format", vocab.FORMAT_NAMES),
        (
            ["evaluate", "--checkpoint", "m", "--root", "x", "--format", "rafdb", "--backend", "tvm"],
            "--backend",
            vocab.BACKENDS,
        ),
        (["predict", "--checkpoint", "m", "x.jpg", "--detector", "mtcnn"], "--detector", vocab.DETECTORS),
        (["export", "--checkpoint", "m", "--output", "m.x", "--format", "tflite"], "--format", vocab.EXPORT_FORMATS),
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
