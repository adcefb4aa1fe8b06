"""Shared test set-up: a private ``DAN_HOME``, one torch thread, the tiny models and the real photograph.

- ``DAN_HOME`` (the download cache, export cache and probe results) goes to a temporary folder for the
  whole session, never the user's ``~/.cache/dan``;
- ``one_torch_thread``: a module that runs a small model many times uses one thread (``pytestmark =
  pytest.mark.usefixtures("one_torch_thread")``): the tiny models gain nothing from two, and on a busy
  two-core machine the threads spin-wait;
- ``rafdb_model`` / ``rafdb_checkpoint``: a random 7-class, 2-head DAN on ResNet-18 at 96 px, RAF-DB
  labels (what the inference, demo and serve tests load), and its ``.pt`` file;
- ``tiny_model`` / ``tiny_checkpoint``: the same on timm's tiny test ResNet at 32 px (export, runtimes);
- ``va_model`` / ``va_checkpoint``: the tiny model's shape with the valence/arousal output (seed 2), and
  ``va_synth``: a generated set of 32 px faces (4 per class) with its ``EmoLabel/valence_arousal.txt``;
- ``astronaut`` (scikit-image's photograph, RGB, read-only), ``astronaut_face`` (its face box, about
  (177, 66, 95, 95)) and ``face_tile`` (its head, 160 px square, RGB, the face at about (44, 31, 63, 63));
- ``dan_serve``: runs the ``dan serve`` command line up to the point it would serve, and returns the
  uvicorn configuration it built (``config.app`` is the application);
- ``dan_evaluate``: runs ``dan evaluate`` (no loader processes, the report in a fresh folder) and returns
  its ``metrics.json``, the report folder and what it printed;
- :func:`settle_batchnorm` (a plain function, ``from conftest import settle_batchnorm``): random
  BatchNorm scales and shifts, then statistics from a batch, so a random model's activations stay O(1)
  and its logits differ from image to image.

The models are shared by every test of a session: a test that changes one deep-copies it first.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

RAFDB = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")


@pytest.fixture(autouse=True, scope="session")
def _private_dan_home(tmp_path_factory: pytest.TempPathFactory):
    """One ``DAN_HOME`` per test session (tests that need their own set it again with monkeypatch)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("DAN_HOME", str(tmp_path_factory.mktemp("dan_home")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one intra-op thread for the module's tests (the previous count is put back after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _dan(backbone: str, size: int):
    import torch

    import dan

    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=2, backbone=backbone).eval()
    model.labels, model.preprocessing = RAFDB, dan.Preprocessing(input_size=size)
    return model


@pytest.fixture(scope="session")
def rafdb_model():
    """A random (seed 0) 7-class, 2-head DAN on ResNet-18, 96 px input, RAF-DB labels, in eval mode."""
    return _dan("resnet18", 96)


@pytest.fixture(scope="session")
def rafdb_checkpoint(rafdb_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`rafdb_model` saved as a ``.pt`` file."""
    import dan

    return dan.save_model(rafdb_model, tmp_path_factory.mktemp("rafdb_model") / "model.pt")


@pytest.fixture(scope="session")
def tiny_model():
    """A random (seed 0) 7-class, 2-head DAN on timm's tiny test ResNet, 32 px input, RAF-DB labels."""
    return _dan("test_resnet", 32)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_model` saved as a ``.pt`` file."""
    import dan

    return dan.save_model(tiny_model, tmp_path_factory.mktemp("tiny_model") / "model.pt")


@pytest.fixture(scope="session")
def va_model():
    """A random (seed 2) 7-class, 2-head DAN with the valence/arousal output, tiny test ResNet, 32 px, RAF-DB labels."""
    import torch

    import dan

    torch.manual_seed(2)
    model = dan.DAN(num_classes=7, num_heads=2, backbone="test_resnet", va_head=True).eval()
    model.labels, model.preprocessing = RAFDB, dan.Preprocessing(input_size=32)
    return model


@pytest.fixture(scope="session")
def va_checkpoint(va_model, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`va_model` saved as a ``.pt`` file."""
    import dan

    return dan.save_model(va_model, tmp_path_factory.mktemp("va_model") / "va.pt")


@pytest.fixture(scope="session")
def va_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``dan synth`` faces, 32 px, 4 per class (21 train + 7 test), with their valence and arousal (read-only)."""
    from dan.data.synth import generate

    root = tmp_path_factory.mktemp("va_synth")
    generate(root, per_class=4, size=32, workers=0)
    return root


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photograph, uint8 RGB (512, 512, 3), read-only (copy it to draw on it)."""
    import skimage.data

    image = skimage.data.astronaut()
    image.setflags(write=False)
    return image


@pytest.fixture(scope="session")
def astronaut_face() -> tuple[int, int, int, int]:
    """The astronaut's face box ``(x, y, w, h)`` in :func:`astronaut` (what the detectors should find)."""
    return 177, 66, 95, 95


@pytest.fixture(scope="session")
def face_tile(astronaut: np.ndarray) -> np.ndarray:
    """The astronaut's head, 160 px square, RGB, read-only; the face is at about (44, 31, 63, 63) in it."""
    import cv2

    tile = cv2.resize(astronaut[20:260, 110:350], (160, 160), interpolation=cv2.INTER_AREA)
    tile.setflags(write=False)
    return tile


@pytest.fixture
def dan_serve(monkeypatch: pytest.MonkeyPatch) -> Callable:
    """``dan_serve(argv)``: run ``dan serve ARGV`` without serving; returns the uvicorn config it built."""
    import uvicorn

    from dan.cli.main import main

    configs: list = []

    def run(self, sockets=None) -> None:  # instead of serving: keep the configuration, free the socket
        configs.append(self.config)
        for sock in sockets or ():
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", run)

    def serve(argv: list[str]):
        assert main(["serve", "--port", "0", *argv]) == 0
        return configs[-1]

    return serve


def settle_batchnorm(model, size: int, seed: int = 0, images=None):
    """Random BatchNorm scales and shifts (seed ``seed``), then running statistics from one batch.

    Args:
        model: Any ``nn.Module`` taking (B, 3, size, size) images.
        size: Side of the random images the statistics come from.
        seed: Seed of the scales, shifts and images.
        images: The batch (B, 3, S, S) to take the statistics from instead of 8 random images.

    Returns:
        ``model``, in eval mode: its activations stay O(1) and its logits differ from image to image.
    """
    import torch
    from torch import nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # a cumulative average: the batch's statistics exactly
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
        model.train()
        model(torch.randn(8, 3, size, size, generator=g) if images is None else images)
    return model.eval()


@pytest.fixture
def dan_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture) -> Callable:
    """``dan_evaluate(checkpoint, format, root, *options)``: run ``dan evaluate``, its report in a fresh folder.

    Returns ``(metrics.json as a dict, the report folder, what it printed)``; ``code=`` the exit status
    expected (0 by default; for another, the metrics are None).
    """
    from dan.cli.main import main

    runs = itertools.count()

    def run(checkpoint, data_format: str, root, *options: str, code: int = 0):
        out = tmp_path / f"evaluate-{next(runs)}"
        argv = ["evaluate", "--checkpoint", str(checkpoint), "--format", data_format, "--root", str(root)]
        assert main([*argv, "--workers", "0", "--output", str(out), *options]) == code
        printed = capsys.readouterr().out
        metrics = json.loads((out / "metrics.json").read_text()) if code == 0 else None
        return metrics, out, printed

    return run
