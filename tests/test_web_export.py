"""``dan export --web`` without a browser: onnxruntime-web's pinned files (fetched, checked, cached), the page
folder, and ``dan serve --web``'s static mount with the cross-origin isolation headers."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from dan.errors import DanError
from dan.web import ortweb


def _package(path: Path, files: dict[str, bytes]) -> str:
    """A tarball laid out as the npm package (``package/dist/...``); returns its npm integrity string."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


@pytest.fixture
def fake_ort(tmp_path, monkeypatch):
    """A stand-in onnxruntime-web tarball, pinned as if it were the real one, and a private DAN_HOME."""
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    tgz = tmp_path / "onnxruntime-web.tgz"
    monkeypatch.setattr(ortweb, "INTEGRITY", _package(tgz, {n: n.encode() * 3 for n in ortweb.FILES}))
    return tgz


def test_tarball_is_checked_extracted_and_cached(fake_ort, monkeypatch) -> None:
    folder = ortweb.ort_web_files(fake_ort)
    assert folder == ortweb.cache_dir() and folder.name == ortweb.VERSION
    assert sorted(p.name for p in folder.iterdir()) == sorted([*ortweb.FILES, "LICENSE", "SHA256SUMS"])
    assert (folder / "ort.wasm.min.mjs").read_bytes() == b"ort.wasm.min.mjs" * 3
    assert "MIT License" in (folder / "LICENSE").read_text()
    monkeypatch.setattr(ortweb, "_npm_pack", lambda work: pytest.fail("fetched although cached"))
    assert ortweb.ort_web_files() == folder  # verified from its SHA256SUMS, not fetched again
    (folder / "ort-wasm-simd-threaded.wasm").write_bytes(b"damaged")
    monkeypatch.setattr(ortweb, "_npm_pack", lambda work: fake_ort)
    assert (ortweb.ort_web_files() / "ort-wasm-simd-threaded.wasm").read_bytes() == b"ort-wasm-simd-threaded.wasm" * 3


def test_other_tarball_is_refused(fake_ort, tmp_path) -> None:
    other = tmp_path / "other.tgz"
    _package(other, {n: b"x" for n in ortweb.FILES})
    with pytest.raises(DanError, match=r"other\.tgz: not onnxruntime-web@1\.31\.1: its SHA-512 is sha512-"):
        ortweb.ort_web_files(other)
    assert not ortweb.cache_dir().exists()


def test_no_npm_says_what_to_fetch(fake_ort, monkeypatch) -> None:
    monkeypatch.setattr(ortweb.shutil, "which", lambda name: None)
    with pytest.raises(DanError) as err:
        ortweb.ort_web_files()
    message = str(err.value)
    assert "npm is not installed" in message and "npm pack onnxruntime-web@1.31.1" in message
    assert str(ortweb.cache_dir()) in message and "\n" not in message


@pytest.fixture
def page(fake_ort, tiny_model, tmp_path):
    """A page folder of the tiny model (the runtime's files stand-ins)."""
    from dan.export import export_onnx
    from dan.web import write_site

    onnx = export_onnx(tiny_model, tmp_path / "tiny.onnx")
    return write_site(tmp_path / "site", onnx, ortweb.ort_web_files(fake_ort), title="tiny")


def test_page_folder_holds_model_record_yunet_and_runtime(page) -> None:
    import onnx

    record = json.loads((page / "model.json").read_text())
    assert record["labels"][0] == "surprise" and record["preprocessing"]["input_size"] == 32
    assert record["detection"] == {"detect_size": 640, "score_threshold": 0.7, "nms_threshold": 0.3, "top_k": 5000}
    assert record["max_pixels"] == 50_000_000 and record["int8"] is False and record["ort_web"] == "1.31.1"
    dims = onnx.load(str(page / "yunet.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [1, 3, "height", "width"]
    assert (page / "ort" / "LICENSE").is_file() and (page / "worker.js").is_file()


def test_page_folder_refuses_a_foreign_folder(fake_ort, page, tmp_path) -> None:
    from dan.web import write_site

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "me.jpg").write_bytes(b"x")
    with pytest.raises(DanError, match="photos: not empty and not a page dan export --web wrote"):
        write_site(foreign, page / "model.onnx", ortweb.cache_dir())
    assert write_site(page, page / "model.onnx", ortweb.cache_dir()) == page  # an earlier page: replaced


def test_serve_mounts_the_page_cross_origin_isolated(page) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from dan.serve.web import with_web_page

    api = FastAPI()
    api.get("/health")(lambda: {"ok": True})
    client = TestClient(with_web_page(api, page))
    index = client.get("/web/")
    assert index.status_code == 200 and "no frame" not in index.text.lower() and "never leave" in index.text
    assert index.headers["cross-origin-opener-policy"] == "same-origin"
    assert index.headers["cross-origin-embedder-policy"] == "require-corp"
    assert client.get("/web/model.json").json()["labels"][0] == "surprise"
    assert client.get("/web", follow_redirects=False).headers["location"] == "/web/"
    assert (
        client.get("/health").json() == {"ok": True}
        and "cross-origin-opener-policy" not in client.get("/health").headers
    )
    with pytest.raises(DanError, match="not a page folder dan export --web wrote"):
        with_web_page(api, page / "ort")


def test_cli_writes_a_page_from_an_onnx_file(fake_ort, tiny_model, tmp_path, capsys) -> None:
    from dan.cli.export import main
    from dan.export import export_onnx

    onnx = export_onnx(tiny_model, tmp_path / "tiny.onnx")
    with pytest.raises(DanError, match="give one of --output FILE or --web DIR"):
        main(["--checkpoint", str(onnx), "--output", str(tmp_path / "a.onnx"), "--web", str(tmp_path / "page")])
    with pytest.raises(DanError, match="tiny.onnx: already an ONNX file: --int8 is for checkpoints"):
        main(["--checkpoint", str(onnx), "--web", str(tmp_path / "page"), "--int8", "--ort-web", str(fake_ort)])
    assert not (tmp_path / "page").exists()
    assert main(["--checkpoint", str(onnx), "--web", str(tmp_path / "page"), "--ort-web", str(fake_ort)]) == 0
    assert json.loads((tmp_path / "page" / "model.json").read_text())["title"] == "tiny"
    assert "python -m http.server -d" in capsys.readouterr().out
