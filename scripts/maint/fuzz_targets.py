"""Fuzz targets: every parser of untrusted bytes, fed mutated files; only ``DanError`` may escape.

Each target takes bytes and runs one entry point a user (or a client of ``dan serve``) can reach
with a file of their choosing:

- ``image``: :func:`dan.imaging.decode_image` (and the header-only size reader);
- ``checkpoint``: :func:`dan.models.loading.load_model` on the bytes as ``.pt``, ``.ckpt``,
  ``.safetensors``, a reference ``.pth``, ``.onnx`` and ``.pt2``;
- ``rafdb``, ``affectnet``, ``fer2013``: the data set readers on a list / CSV file of those bytes;
- ``serve``: ``POST /v1/predict`` of the served API (multipart and raw), which must answer with a
  status code below 500 and keep serving.

The seed corpus (small valid and broken files) is ``tests/fuzz_corpus/<target>/``. ``python -m
scripts.maint.fuzz`` runs the targets with Hypothesis for a number of minutes; ``tests/test_fuzz.py`` runs each
for a few seconds in every test run. A target that raises anything but :class:`dan.errors.DanError` (or, for
``serve``, answers 5xx), or that takes longer than the deadline, is a bug: Hypothesis shrinks the
input and reports it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from dan.errors import DanError

__all__ = ["CORPUS", "TARGETS", "mutations", "seeds"]

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "fuzz_corpus"


def _file(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix, prefix="dan-fuzz-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


@contextlib.contextmanager
def _as_file(data: bytes, suffix: str):
    path = _file(data, suffix)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def fuzz_image(data: bytes) -> None:
    from dan.imaging import decode_image, image_size

    image_size(data)
    try:
        image = decode_image(data, "fuzz", max_pixels=4_000_000)
    except DanError:
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"


def fuzz_checkpoint(data: bytes) -> None:
    from dan.models.loading import load_model

    for suffix in (".pt", ".ckpt", ".safetensors", ".pth", ".onnx", ".pt2"):
        with _as_file(data, suffix) as path:
            try:
                if suffix in (".onnx", ".pt2"):
                    from dan.runtime.loader import load_backend

                    load_backend(path)
                else:
                    load_model(path)
            except DanError:
                pass


def _reader(write: Callable[[Path, bytes], str], read: Callable[[Path, str], object]) -> Callable[[bytes], None]:
    def target(data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="dan-fuzz-") as tmp:
            root = Path(tmp)
            split = write(root, data)
            for strict in (True, False):
                try:
                    read(root, split, strict)
                except DanError:
                    pass

    return target


def _rafdb_write(root: Path, data: bytes) -> str:
    (root / "EmoLabel").mkdir()
    (root / "Image" / "aligned").mkdir(parents=True)
    (root / "EmoLabel" / "list_patition_label.txt").write_bytes(data)
    return "train"


def _affectnet_write(root: Path, data: bytes) -> str:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir()
    (root / "Manually_Annotated_Images").mkdir()
    (lists / "training.csv").write_bytes(data)
    (lists / "validation.csv").write_bytes(data)
    return "train"


def _fer_write(root: Path, data: bytes) -> str:
    (root / "fer2013.csv").write_bytes(data)
    return "Training"


def _rafdb_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.rafdb import read_rafdb

    return read_rafdb(root, split, strict=strict)


def _affectnet_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.affectnet import read_affectnet

    return read_affectnet(root, split, 8, strict)


def _fer_read(root: Path, split: str, strict: bool) -> object:
    from dan.data.fer2013 import read_fer2013

    return read_fer2013(root, split, strict)


_CLIENT = None


def fuzz_serve(data: bytes) -> None:
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = _serve_client()
    for kwargs in (
        {"content": data, "headers": {"content-type": "image/png"}},
        {"files": {"file": ("x.jpg", data, "image/jpeg")}},
        {"content": data, "headers": {"content-type": "multipart/form-data; boundary=" + data[:40].hex()}},
    ):
        response = _CLIENT.post("/v1/predict", **kwargs)
        assert response.status_code < 500, (response.status_code, response.text[:200])
    assert _CLIENT.get("/health").status_code == 200


def _serve_client():
    import torch
    from fastapi.testclient import TestClient

    import dan
    from dan.inference.predictor import Predictor
    from dan.serve.app import create_app

    torch.manual_seed(0)
    model = dan.DAN(7, 2, backbone="test_resnet").eval()
    model.labels = dan.LABEL_SETS["rafdb"]
    model.preprocessing = dan.Preprocessing(input_size=32)
    predictor = Predictor(dan.runtime.TorchBackend(model), detector="none")
    return TestClient(create_app(predictor, max_upload_bytes=2_000_000, max_pixels=4_000_000))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "image": fuzz_image,
    "checkpoint": fuzz_checkpoint,
    "rafdb": _reader(_rafdb_write, _rafdb_read),
    "affectnet": _reader(_affectnet_write, _affectnet_read),
    "fer2013": _reader(_fer_write, _fer_read),
    "serve": fuzz_serve,
}
_SEEDS = {"serve": "image"}  # targets that share another's seed files


def seeds(target: str) -> list[bytes]:
    """The seed files of a target (``tests/fuzz_corpus/<target>/*``)."""
    folder = CORPUS / _SEEDS.get(target, target)
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()] if folder.is_dir() else []


def mutations(target: str):
    """A Hypothesis strategy of inputs for ``target``: seed files with bytes flipped, cut, repeated, spliced."""
    from hypothesis import strategies as st

    corpus = seeds(target) or [b""]

    @st.composite
    def mutate(draw) -> bytes:
        data = bytearray(draw(st.sampled_from(corpus)))
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(("flip", "cut", "insert", "repeat", "splice")))
            pos = draw(st.integers(0, max(len(data) - 1, 0)))
            if kind == "flip" and data:
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif kind == "cut":
                data = data[:pos]
            elif kind == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            elif kind == "repeat" and data:
                end = min(len(data), pos + draw(st.integers(1, 64)))
                data[pos:pos] = data[pos:end] * draw(st.integers(1, 8))
            elif kind == "splice":
                other = draw(st.sampled_from(corpus))
                data[pos:] = other[draw(st.integers(0, max(len(other) - 1, 0))) :]
        return bytes(data)

    return st.one_of(mutate(), st.binary(max_size=256))
