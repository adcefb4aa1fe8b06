"""``dan serve`` under load: /health stays fast while large frames are decoded, decoding is bounded, a slow
body is cut off, and nothing is loaded from a CDN. A tiny model and small frames keep it to seconds."""

from __future__ import annotations

import asyncio
import json
import struct
import threading
import time

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

import dan
from dan.inference.predictor import Predictor
from dan.serve import create_app, uploads, websocket
from dan.serve.uploads import ApiError, read_body

RAFDB = dan.LABEL_SETS["rafdb"]
LIMIT = 4_000_000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def predictor(rafdb_checkpoint):
    return Predictor(rafdb_checkpoint, detector="haar")


def stuffed_jpeg(size: int) -> bytes:
    """A 640 x 480 JPEG whose scan is ``size`` bytes of stuffed ``FF 00`` pairs: cheap to send, and the
    truncation check walks every pair in Python (about 0.3 s per MB), holding the GIL."""
    small = cv2.imencode(".jpg", np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    sos = small.index(b"\xff\xda")
    head = small[: sos + 2 + int.from_bytes(small[sos + 2 : sos + 4], "big")]
    return head + b"\xff\x00" * ((size - len(head)) // 2) + b"\xff\xd9"


def frame_message(image: bytes, frame_id: int) -> bytes:
    header = json.dumps({"id": frame_id, "t": 0}).encode()
    return struct.pack(">I", len(header)) + header + image


class Counting:
    """Wraps ``decode_upload``: counts the calls and the most running at once.

    ``hold`` seconds are added to each decode (in the decode thread, as a slow decode would take), so that a
    flood lasts long enough to probe ``/health`` during it whatever the machine's speed.
    """

    def __init__(self, hold: float = 0.0) -> None:
        self.calls = self.running = self.most = 0
        self.hold = hold
        self.lock = threading.Lock()

    def __call__(self, *args, **kw):
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.hold)
            return uploads.decode_upload(*args, **kw)
        finally:
            with self.lock:
                self.running -= 1


def test_health_answers_while_large_frames_are_decoded(predictor, monkeypatch) -> None:
    counting = Counting(hold=0.3)
    monkeypatch.setattr(websocket, "decode_upload", counting)
    frame = stuffed_jpeg(1_500_000)
    connections, frames = 3, 3
    latencies: list[float] = []
    results: list[dict] = []
    with TestClient(create_app(predictor, max_upload_bytes=LIMIT, decode_threads=1)) as client:

        def flood(n: int) -> None:
            with client.websocket_connect("/v1/live") as ws:
                ws.receive_json()
                for i in range(1, frames + 1):
                    ws.send_bytes(frame_message(frame, i))
                while True:
                    reply = ws.receive_json()
                    if reply["type"] == "result" and reply["id"] == frames:
                        results.append(reply)
                        return

        threads = [threading.Thread(target=flood, args=(n,)) for n in range(connections)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            start = time.perf_counter()
            assert client.get("/health").json() == {"status": "ok"}
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)
        for t in threads:
            t.join()
    assert len(results) == connections and len(latencies) >= 5
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
    assert counting.most == 1  # decode_threads at a time, whatever the number of connections
    assert counting.calls < connections * frames  # frames that arrived while waiting were dropped undecoded
    assert sum(r["dropped"] for r in results) == connections * frames - counting.calls


def test_uploads_decode_one_at_a_time_and_hold_few_bodies(predictor, monkeypatch) -> None:
    import dan.serve.app as app_module

    counting = Counting()
    monkeypatch.setattr(app_module, "decode_upload", counting)
    held, lock = [0, 0], threading.Lock()  # bodies read and not answered yet: now, most
    read, predict = app_module.image_from_request, predictor.predict

    async def reading(*args, **kw) -> bytes:
        data = await read(*args, **kw)
        with lock:
            held[0] += 1
            held[1] = max(held)
        return data

    def predicting(image):
        try:
            return predict(image)
        finally:
            with lock:
                held[0] -= 1

    monkeypatch.setattr(app_module, "image_from_request", reading)
    monkeypatch.setattr(predictor, "predict", predicting)
    frame = stuffed_jpeg(300_000)
    statuses: list[int] = []
    with TestClient(create_app(predictor, max_upload_bytes=LIMIT, max_uploads=2, decode_threads=1)) as client:

        def upload() -> None:
            reply = client.post("/v1/predict", content=frame, headers={"Content-Type": "image/jpeg"})
            statuses.append(reply.status_code)

        threads = [threading.Thread(target=upload) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert statuses == [200] * 6 and counting.calls == 6 and counting.most == 1
    assert held[1] <= 2


def test_a_slow_body_is_cut_off() -> None:
    async def receive() -> dict:
        await asyncio.sleep(0.05)
        return {"type": "http.request", "body": b"\xff" * 16, "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": [], "query_string": b""}, receive)
    start = time.perf_counter()
    with pytest.raises(ApiError) as info:
        asyncio.run(read_body(request, LIMIT, timeout=0.3))
    assert info.value.status == 408 and "0.3 s" in str(info.value)
    assert time.perf_counter() - start < 2


def test_no_page_loads_a_script_from_elsewhere(predictor) -> None:
    with TestClient(create_app(predictor)) as client:
        docs = client.get("/docs")
        assert docs.status_code == 404 or "<script src=" not in docs.text
        assert client.get("/redoc").status_code == 404
        assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_dan_serve_turns_websocket_compression_off(tiny_checkpoint, dan_serve) -> None:
    """Frames are JPEGs: permessage-deflate would only spend CPU (the event loop's too) on both ends."""
    config = dan_serve(["--checkpoint", str(tiny_checkpoint), "--detector", "haar", "--backend", "torch"])
    assert (config.ws_per_message_deflate, config.ws_max_size) == (False, 10 * 1024 * 1024 + 8192)
