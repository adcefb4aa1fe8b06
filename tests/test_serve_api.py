"""``dan serve``'s HTTP API in-process (FastAPI's TestClient): every route, every bad input, and the command line."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import subprocess
import sys
import threading
import zlib

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

import dan
from dan.cli.main import main
from dan.cli.serve import exposure_warning
from dan.inference.predictor import Predictor
from dan.inference.tracking import iou
from dan.serve import create_app
from dan.serve.uploads import ApiError, read_body

RAFDB = dan.LABEL_SETS["rafdb"]
TOKEN = "s3cret-token"
LIMIT = 1_000_000  # bytes; the astronaut's JPEG is about 60 KB, the two-face PNG about 800 KB


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor(rafdb_checkpoint):
    return Predictor(rafdb_checkpoint, detector="haar")


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, max_upload_bytes=LIMIT)) as c:
        yield c


@pytest.fixture(scope="module")
def guarded(predictor):
    with TestClient(create_app(predictor, token=TOKEN, max_upload_bytes=LIMIT)) as c:
        yield c


def _encode(rgb: np.ndarray, ext: str = ".jpg") -> bytes:
    return cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def _png_bomb(side: int = 30000) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side + 1) * 16, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _assert_serving(client: TestClient, astronaut: np.ndarray, **kw) -> None:
    reply = client.post("/v1/predict", files={"file": ("a.jpg", _encode(astronaut), "image/jpeg")}, **kw)
    assert reply.status_code == 200 and len(reply.json()["faces"]) == 1


def test_health_and_model(client, predictor) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    info = client.get("/v1/model").json()
    assert info["labels"] == list(RAFDB) and info["preprocessing"]["input_size"] == 96
    # --backend auto (the default) says which runtime won the race on this machine
    assert info["backend"] == predictor.backend.name and info["backend"] in ("torch", "onnx", "openvino")
    assert info["detector"] == "haar" and info["attention"] is True
    assert info["limits"] == {"max_upload_bytes": LIMIT, "max_pixels": 50_000_000}


def test_predict_multipart_and_raw_body_agree_with_the_predictor(astronaut_face, client, predictor, astronaut) -> None:
    jpeg = _encode(astronaut)
    multipart = client.post("/v1/predict", files={"file": ("astronaut.jpg", jpeg, "image/jpeg")})
    raw = client.post("/v1/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
    assert multipart.status_code == raw.status_code == 200
    assert multipart.json() == raw.json()
    data = multipart.json()
    assert (data["width"], data["height"]) == (512, 512)
    (face,) = data["faces"]
    assert set(face) == {"face", "box", "label", "confidence", "probabilities"}  # as dan predict --output json
    assert iou([face["box"][k] for k in "xywh"], astronaut_face) > 0.6
    assert list(face["probabilities"]) == list(RAFDB) and face["label"] in RAFDB
    (expected,) = predictor.predict(cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), 1), cv2.COLOR_BGR2RGB))
    assert face["label"] == expected.label and face["confidence"] == pytest.approx(expected.confidence, abs=1e-5)
    png = client.post("/v1/predict", content=_encode(np.hstack([astronaut, astronaut[:, ::-1]]), ".png"),
                      headers={"Content-Type": "image/png"})  # fmt: skip
    assert png.status_code == 200 and len(png.json()["faces"]) == 2 and png.json()["width"] == 1024
    wall = client.post("/v1/predict", content=_encode(np.full((60, 80, 3), 128, np.uint8)),
                       headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert wall.json() == {"width": 80, "height": 60, "faces": []}


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        (b"hello, not a picture", "image/jpeg", 415, "not an image of a supported type"),
        (b"P6\n3 3\n255\n" + b"\x00" * 27, "image/x-portable-pixmap", 415, "not an image of a supported type"),
        ("TRUNCATED", "image/jpeg", 422, "truncated image"),
        ("CORRUPT", "image/png", 422, "not a decodable image"),
        (b"", "image/jpeg", 422, "the image is empty"),
        (b"{}", "application/json", 415, "not 'application/json'"),
        ("BOMB", "image/png", 413, "image is 30000x30000 pixels (900 megapixels)"),
    ],
)
def test_bad_images_are_refused_with_one_line(client, astronaut, body, content_type, status, message) -> None:
    if body == "TRUNCATED":
        body = _encode(astronaut)[:5000]
    elif body == "CORRUPT":
        png = bytearray(_encode(astronaut[:64, :64], ".png"))
        png[40:-20] = b"\x55" * (len(png) - 60)  # the header and IEND survive, the pixels do not
        body = bytes(png)
    elif body == "BOMB":
        body = _png_bomb()
        assert len(body) < 60_000
    reply = client.post("/v1/predict", content=body, headers={"Content-Type": content_type})
    assert reply.status_code == status, reply.text
    assert message in reply.json()["detail"] and "\n" not in reply.json()["detail"]
    _assert_serving(client, astronaut)  # one bad request changes nothing for the next


def test_multipart_problems(client, astronaut) -> None:
    no_file = client.post("/v1/predict", data={"note": "x"}, files={"other": ("a.jpg", b"x", "image/jpeg")})
    assert no_file.status_code == 422 and "no file field named 'file'" in no_file.json()["detail"]
    broken = client.post("/v1/predict", content=b"--xx\r\nnonsense", headers={"Content-Type": "multipart/form-data"})
    assert broken.status_code == 422 and "multipart" in broken.json()["detail"]
    bomb = client.post("/v1/predict", files={"file": ("../../etc/passwd", _png_bomb(), "image/png")})
    assert bomb.status_code == 413 and bomb.json()["detail"].startswith("image: image is 30000x30000")
    _assert_serving(client, astronaut)


def test_bodies_over_the_limit_are_refused_while_reading(client, astronaut) -> None:
    big = b"\xff\xd8\xff" + b"\x00" * LIMIT
    declared = client.post("/v1/predict", content=big, headers={"Content-Type": "image/jpeg"})
    assert declared.status_code == 413 and f"limit of {LIMIT:,} bytes" in declared.json()["detail"]
    parts = iter([big[:500_000], big[500_000:]])  # no Content-Length: chunked transfer
    chunked = client.post("/v1/predict", content=parts, headers={"Content-Type": "image/jpeg"})
    assert chunked.status_code == 413 and "larger than the limit" in chunked.json()["detail"]
    files = {"file": ("big.jpg", big, "image/jpeg")}
    assert client.post("/v1/predict", files=files).status_code == 413
    _assert_serving(client, astronaut)


def test_read_body_stops_reading_at_the_limit() -> None:
    """A body without Content-Length is counted as it streams in; the server stops pulling at the limit."""
    pulled: list[int] = []

    async def receive() -> dict:
        pulled.append(1)
        return {"type": "http.request", "body": b"\x00" * 100_000, "more_body": len(pulled) < 100}

    request = Request({"type": "http", "method": "POST", "headers": [], "query_string": b""}, receive)
    with pytest.raises(ApiError) as info:
        asyncio.run(read_body(request, LIMIT))
    assert info.value.status == 413 and len(pulled) == LIMIT // 100_000 + 1  # 10 MB offered, 1.1 MB read


def test_token_is_required_everywhere(guarded, astronaut) -> None:
    for path in ("/health", "/v1/model", "/", "/openapi.json", "/docs"):
        reply = guarded.get(path)
        assert reply.status_code == 401 and "token" in reply.json()["detail"], path
        assert reply.headers["www-authenticate"] == "Bearer"
    assert guarded.get("/health", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert guarded.get("/health?token=wrong").status_code == 401
    assert guarded.get("/health", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"status": "ok"}
    assert guarded.get(f"/v1/model?token={TOKEN}").status_code == 200
    refused = guarded.post("/v1/predict", content=_encode(astronaut), headers={"Content-Type": "image/jpeg"})
    assert refused.status_code == 401
    _assert_serving(guarded, astronaut, headers={"Authorization": f"Bearer {TOKEN}"})
    _assert_serving(guarded, astronaut, params={"token": TOKEN})
    schema = guarded.get("/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert schema["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}


def test_page_is_self_contained(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<ul id="faces"' in html and "getUserMedia" in html and "/v1/live" in html
    assert "<script src" not in html and 'rel="stylesheet"' not in html  # script and style inlined
    assert not re.search(r"""(src|href)=["']?(https?:)?//|url\(|@import""", html)  # nothing from elsewhere: offline
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    assert page.headers["referrer-policy"] == "no-referrer"


def test_openapi_describes_the_routes(client) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    assert {"/v1/predict", "/v1/model", "/health"} <= set(paths)
    predict = paths["/v1/predict"]["post"]
    assert predict["summary"] == "Label every face of an image"
    assert {"multipart/form-data", "image/*"} <= set(predict["requestBody"]["content"])
    assert {"200", "401", "413", "415", "422"} <= set(predict["responses"])
    assert {"PredictResponse", "Face", "Box", "ModelInfo", "ErrorResponse"} <= set(schema["components"]["schemas"])
    assert paths["/v1/model"]["get"]["summary"] and paths["/health"]["get"]["summary"]
    assert client.get("/docs").status_code == 404  # Swagger UI would load its script from a CDN


def test_concurrent_requests_share_one_model(client, astronaut) -> None:
    jpeg = _encode(astronaut)
    results: list[int] = []

    def worker() -> None:
        for _ in range(2):
            reply = client.post("/v1/predict", content=jpeg, headers={"Content-Type": "image/jpeg"})
            results.append(len(reply.json()["faces"]) if reply.status_code == 200 else -reply.status_code)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == [1] * 8


def test_cli_usage_errors(rafdb_checkpoint, capsys) -> None:
    """Each is one line on stderr and a failing exit status, before any server starts."""
    assert main(["serve", "--checkpoint", str(rafdb_checkpoint), "--port", "70000"]) != 0
    assert "--port must be at most 65535" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(rafdb_checkpoint), "--max-upload-mb", "0"]) != 0
    assert "--max-upload-mb must be above 0" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(rafdb_checkpoint), "--token", "short"]) != 0
    assert "--token must be at least 8 printable ASCII characters" in capsys.readouterr().err
    assert main(["serve", "--checkpoint", str(rafdb_checkpoint.parent / "nope.pt"), "--port", "0"]) != 0
    assert "nope.pt: checkpoint not found" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(rafdb_checkpoint), "--port", str(port)]) != 0
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err and err.count("\n") == 1


def test_cli_warns_when_reachable_from_other_machines() -> None:
    assert exposure_warning("127.0.0.1", "localhost", None) is None
    assert exposure_warning("::1", "::1", None) is None
    open_server = exposure_warning("0.0.0.0", "0.0.0.0", None)
    assert open_server == (
        "dan serve: warning: listening on 0.0.0.0, not this machine only: other machines can reach it and use "
        "the model (set --token)"
    )
    assert "only requests with the token are served" in exposure_warning("192.0.2.7", "192.0.2.7", "t")


def test_cli_help_is_instant_and_imports_nothing_heavy() -> None:
    heavy = "('torch', 'fastapi', 'cv2', 'uvicorn')"
    code = f"import sys, dan.cli.serve; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "dan", "serve", "--help"], capture_output=True, text=True).stdout
    assert "--token" in help_text and "--max-pixels" in help_text and "--checkpoint" in help_text


def test_serve_package_imports_only_inference() -> None:
    code = (
        "import sys, dan.serve; print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('lightning', 'pytorch_lightning', 'albumentations') or m.startswith(('dan.training', 'dan.data'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_an_onnx_export_serves_the_same_answers(rafdb_checkpoint, client, astronaut, tmp_path) -> None:
    onnx = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(rafdb_checkpoint), "--output", str(onnx)]) == 0
    with TestClient(create_app(Predictor(onnx, detector="haar"))) as exported:
        info = exported.get("/v1/model").json()
        assert info["backend"] == "onnx" and info["labels"] == list(RAFDB)
        files = {"file": ("a.jpg", _encode(astronaut), "image/jpeg")}
        (face,) = exported.post("/v1/predict", files=files).json()["faces"]
        (want,) = client.post("/v1/predict", files=files).json()["faces"]
        assert face["box"] == want["box"] and face["label"] == want["label"]
        assert face["probabilities"] == pytest.approx(want["probabilities"], abs=1e-4)
        with exported.websocket_connect("/v1/live") as ws:
            ws.receive_json()
            header = b'{"id": 1, "attention": true}'
            ws.send_bytes(struct.pack(">I", len(header)) + header + _encode(astronaut))
            (live,) = ws.receive_json()["faces"]
            assert len(live["attention"]) == 2  # the export carries the heads' maps
