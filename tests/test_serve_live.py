"""``dan serve``'s live WebSocket in-process: tracked faces, the newest frame winning, and bad clients."""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

import dan
from dan.inference.predictor import Predictor
from dan.inference.tracking import iou
from dan.serve import create_app

RAFDB = dan.LABEL_SETS["rafdb"]
TOKEN = "live-token"
LIMIT = 300_000


class SlowPredictor(Predictor):
    """A predictor whose detector takes at least ``delay`` seconds: a model slower than the client."""

    delay = 0.0

    def detect(self, frame: np.ndarray) -> list:
        time.sleep(self.delay)
        return super().detect(frame)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor(rafdb_checkpoint):
    return SlowPredictor(rafdb_checkpoint, detector="haar")


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor, token=TOKEN, max_upload_bytes=LIMIT)) as c:
        yield c


@pytest.fixture(scope="module")
def jpeg(astronaut) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))[1].tobytes()


def frame_message(image: bytes, id: object = 1, t: object = 0.5, attention: bool = False) -> bytes:
    """One live frame as the page sends it: header length, JSON header, image."""
    header = json.dumps({"id": id, "t": t, "attention": attention}).encode()
    return struct.pack(">I", len(header)) + header + image


def _live(client: TestClient, **kw):
    return client.websocket_connect(f"/v1/live?token={TOKEN}", **kw)


def _next(ws, kind: str = "result") -> dict:
    while True:
        message = ws.receive_json()
        if message["type"] == kind:
            return message
        assert message["type"] in ("result", "error", "ready", "pong"), message


def test_live_frames_are_tracked_and_echo_id_and_time(astronaut_face, client, jpeg) -> None:
    with _live(client) as ws:
        ready = ws.receive_json()
        assert ready == {"type": "ready", "labels": list(RAFDB), "attention": True, "max_bytes": LIMIT}
        results = []
        for i in range(3):
            ws.send_bytes(frame_message(jpeg, id=i + 1, t=1000.25 + i))
            results.append(_next(ws))
    assert [(r["id"], r["t"]) for r in results] == [(1, 1000.25), (2, 1001.25), (3, 1002.25)]
    for r in results:
        assert (r["width"], r["height"]) == (512, 512) and r["server_ms"] > 0 and r["dropped"] == 0
        (face,) = r["faces"]
        assert face["track"] == 0  # the same face keeps its track id
        assert iou([face["box"][k] for k in "xywh"], astronaut_face) > 0.6
        assert face["label"] in RAFDB and list(face["probabilities"]) == list(RAFDB)
        assert face["confidence"] == max(face["probabilities"].values()) and "attention" not in face


def test_attention_maps_only_when_asked(client, jpeg) -> None:
    with _live(client) as ws:
        ws.send_bytes(frame_message(jpeg, id=7, attention=True))
        (face,) = _next(ws)["faces"]
        maps = np.array(face["attention"])
        assert maps.shape[0] == 2 and maps.ndim == 3  # (K, h, w)
        assert maps.min() >= 0 and maps.max() <= 1 and maps.max() == 1.0
        ws.send_bytes(frame_message(jpeg, id=8))
        assert "attention" not in _next(ws)["faces"][0]


def test_the_newest_frame_wins(client, predictor, jpeg) -> None:
    """A client sending 12 frames at once, to a model taking 150 ms each, gets the last one back, not a queue."""
    predictor.delay = 0.15
    try:
        with _live(client) as ws:
            ws.receive_json()
            for i in range(1, 13):
                ws.send_bytes(frame_message(jpeg, id=i))
            ws.send_text(json.dumps({"type": "ping", "t": 5}))
            assert _next(ws, "pong")["t"] == 5  # the receiver answers at once, whatever the model is doing
            ids, last = [], None
            while last is None or last["id"] != 12:
                last = _next(ws)
                ids.append(last["id"])
    finally:
        predictor.delay = 0.0
    assert ids == sorted(ids) and len(ids) <= 3, ids  # frame 1 (already started), maybe one more, then 12
    assert last["dropped"] >= 12 - len(ids)


def test_garbage_messages_get_errors_and_the_connection_goes_on(client, jpeg) -> None:
    bomb_header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + bomb_header + struct.pack(">I", zlib.crc32(b"IHDR"))
    bad = [
        (b"\x00", "send frames as binary messages"),
        (struct.pack(">I", 10**6) + b"{}", "bad frame header length"),
        (struct.pack(">I", 4) + b"\xff\xfe{}" + jpeg, "frame header is not JSON"),
        (struct.pack(">I", 2) + b"[]" + jpeg, "not a JSON object"),
        (frame_message(b"", id=3), "frame has no image"),
        (frame_message(b"GIF89a\x0a\x00\x0a\x00 broken", id=4), "frame: not a decodable image"),
        (frame_message(b"not an image at all", id=5), "frame: not an image of a supported type"),
        (frame_message(jpeg[:3000], id=6), "frame: truncated image"),
        (frame_message(bomb, id=9), "frame: image is 30000x30000 pixels"),
        (frame_message(b"\xff\xd8\xff" + bytes(LIMIT), id=10), "larger than the limit of 300,000 bytes"),
    ]
    with _live(client) as ws:
        ws.receive_json()
        for message, expected in bad:
            ws.send_bytes(message)
            error = _next(ws, "error")
            assert expected in error["message"] and "\n" not in error["message"], (expected, error)
        ws.send_text("hello")
        assert "unknown text message" in _next(ws, "error")["message"]
        ws.send_text(json.dumps({"type": "frame", "image": "..."}))
        assert _next(ws, "error")["id"] is None
        ws.send_bytes(frame_message(jpeg, id={"nested": "object"}))  # ids that are not plain values come back null
        assert _next(ws)["id"] is None
        ws.send_bytes(frame_message(jpeg, id=11))
        result = _next(ws)
        assert result["id"] == 11 and len(result["faces"]) == 1


def test_clients_that_vanish_do_not_disturb_others(client, jpeg, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="dan.serve")
    with _live(client) as steady:
        steady.receive_json()
        for _ in range(3):  # each leaves with a frame in progress or waiting
            with _live(client) as leaving:
                leaving.receive_json()
                leaving.send_bytes(frame_message(jpeg, id=1))
                leaving.send_bytes(frame_message(jpeg, id=2))
        steady.send_bytes(frame_message(jpeg, id=42))
        assert _next(steady)["id"] == 42
    errors: list[str] = []

    def other_client(n: int) -> None:
        try:
            with _live(client) as ws:
                ws.receive_json()
                ws.send_bytes(frame_message(jpeg, id=n))
                assert _next(ws)["faces"][0]["track"] == 0  # each connection has its own tracker
        except Exception as err:  # reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=other_client, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert client.get("/health", params={"token": TOKEN}).json() == {"status": "ok"}
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_handshake_needs_the_token_and_this_origin(client) -> None:
    for url in ("/v1/live", "/v1/live?token=nope"):
        with pytest.raises(WebSocketDenialResponse) as info:
            with client.websocket_connect(url):
                pass
        assert info.value.status_code == 401 and "token" in info.value.json()["detail"]
    with pytest.raises(WebSocketDenialResponse) as info:
        with _live(client, headers={"origin": "http://evil.example"}):
            pass
    assert info.value.status_code == 403 and "another origin" in info.value.json()["detail"]
    with _live(client, headers={"origin": "http://testserver"}) as ws:  # the page's own origin
        assert ws.receive_json()["type"] == "ready"


def test_live_connections_are_capped(predictor) -> None:
    with TestClient(create_app(predictor, max_live=1)) as small:
        with small.websocket_connect("/v1/live") as first:
            assert first.receive_json()["type"] == "ready"
            with small.websocket_connect("/v1/live") as second:
                with pytest.raises(WebSocketDisconnect) as info:
                    second.receive_json()
                assert info.value.code == 1013 and "server busy" in info.value.reason
        with small.websocket_connect("/v1/live") as again:  # the first has left: room again
            assert again.receive_json()["type"] == "ready"


def test_dan_serve_smoothing_reaches_the_live_stream(astronaut, tmp_path, dan_serve) -> None:
    """``dan serve --smoothing S``: a face's second frame answers S x first + (1 - S) x second."""
    from dan.preprocess import prepare_face

    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=2, backbone="test_resnet")
    model.labels, model.preprocessing = RAFDB, dan.Preprocessing(input_size=48)
    images = [astronaut, np.ascontiguousarray(astronaut[::-1, ::-1]), skimage.data.coffee()[:, 100:500]]
    with torch.no_grad():  # BatchNorm statistics of these images, so each gets its own answer
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = 1.0
        model.train()
        model(torch.from_numpy(np.stack([prepare_face(img, model.preprocessing) for img in images])))
    ckpt = dan.save_model(model.eval(), tmp_path / "model.pt")
    frames = [cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes() for img in images[:2]]
    answers = {}
    for smoothing in (0.0, 0.9):
        argv = ["--checkpoint", str(ckpt), "--detector", "none", "--backend", "torch", "--smoothing", str(smoothing)]
        with TestClient(dan_serve(argv).app) as client, client.websocket_connect("/v1/live") as ws:
            answers[smoothing] = []
            for i, image in enumerate(frames):
                ws.send_bytes(frame_message(image, id=i))
                (face,) = _next(ws)["faces"]
                answers[smoothing].append(np.array([face["probabilities"][n] for n in RAFDB]))
    first, second = answers[0.0]
    assert np.abs(first - second).max() > 0.01  # the two frames get different answers
    np.testing.assert_allclose(answers[0.9][0], first, atol=2e-4)
    np.testing.assert_allclose(answers[0.9][1], 0.9 * first + 0.1 * second, atol=2e-4)
