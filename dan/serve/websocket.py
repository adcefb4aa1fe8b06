"""The live WebSocket: camera frames in, tracked faces out, the newest frame always winning.

Protocol (``/v1/live``). The client sends each frame as one binary message::

    [4 bytes: header length N, big-endian][N bytes: JSON header][JPEG (or PNG, WebP) bytes]

with the header ``{"id": 17, "t": 123456.7, "attention": false}`` (``id`` and ``t`` are echoed back
untouched, so the client can match replies and compute the round trip). The server answers with JSON
text messages: ``{"type": "ready", "labels": [...], "attention": bool, "max_bytes": N}`` once on
connect; ``{"type": "result", "id", "t", "width", "height", "faces", "server_ms", "queue_ms", "dropped"}``
per processed frame (``server_ms``: time on the model thread; ``queue_ms``: time the frame waited
before the worker took it), each face ``{"track", "box": {x, y, w, h}, "label", "confidence",
"probabilities": {name: p}}`` (plus ``"attention"``: K lists of h lists of w floats in [0, 1] when
asked for, and ``"valence"``, ``"arousal"`` (smoothed, in [-1, 1]) for a model with that output);
``{"type": "error", "id", "message"}`` for a frame or message it cannot use. A text
message ``{"type": "ping", "t": ...}`` is answered ``{"type": "pong", "t": ...}``.

Two tasks per connection: the receiver reads messages as fast as they come and keeps only the
latest frame (a frame not yet started is overwritten and counted in ``dropped``); the worker waits for
one of the server's image slots (:meth:`dan.serve.runner.ModelRunner.slot`, shared by every connection
and upload), only then takes the newest frame, decodes it in the decode pool, runs it through the
shared model thread, and replies. However fast a client sends, each connection holds at most one
waiting frame and one in progress, frames that arrive while it waits are dropped before they are
decoded, and a slow model makes the client's frames skip rather than lag. The receiver only splits the
header off (the image bytes are copied out in the decode thread), so large frames cost the event loop
little. A malformed message gets an error reply and the connection goes on; a client that vanishes
ends only its own tasks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from dan.inference.attention import normalize_map
from dan.inference.live import LiveFace, LiveStep
from dan.serve.runner import ModelRunner
from dan.serve.uploads import ApiError, decode_upload

__all__ = ["FRAME_HELP", "ReceivedFrame", "LiveSession", "parse_frame"]

log = logging.getLogger("dan.serve")
FRAME_HELP = "send frames as binary messages: 4-byte big-endian header length, a JSON header, then the image"
MAX_HEADER = 4096


@dataclass
class ReceivedFrame:
    """One received frame, not decoded yet.

    Attributes:
        id: The client's frame id (echoed back).
        t: The client's timestamp (echoed back).
        attention: Whether the client wants attention maps for it.
        message: The whole message as received.
        start: Where the encoded image starts in ``message``.
        received: ``time.perf_counter()`` when it arrived (for the time it waited).
    """

    id: Any
    t: Any
    attention: bool
    message: bytes
    start: int
    received: float = 0.0

    @property
    def data(self) -> bytes:
        """The encoded image (a copy: take it off the event loop for a large frame)."""
        return self.message[self.start :]


class FrameError(ValueError):
    """A message that is not a usable frame; ``id`` is the frame id when the header was readable."""

    def __init__(self, message: str, id: Any = None) -> None:
        super().__init__(message)
        self.id = id


def _plain(value: Any) -> Any:
    """A JSON number or short string as it came, anything else None (it is echoed back)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    return value if not isinstance(value, str) else value[:64]


def parse_frame(message: bytes, max_bytes: int) -> ReceivedFrame:
    """Split a binary frame message into its header and image bytes.

    Raises:
        FrameError: Too large, too short, or a header that is not a JSON object.
    """
    if len(message) > max_bytes:
        raise FrameError(f"frame of {len(message):,} bytes is larger than the limit of {max_bytes:,} bytes")
    if len(message) < 4:
        raise FrameError(FRAME_HELP)
    (n,) = struct.unpack_from(">I", message, 0)
    if n > MAX_HEADER or 4 + n > len(message):
        raise FrameError(f"bad frame header length {n}: {FRAME_HELP}")
    try:
        header = json.loads(message[4 : 4 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FrameError(f"frame header is not JSON: {FRAME_HELP}") from None
    if not isinstance(header, dict):
        raise FrameError(f"frame header is not a JSON object: {FRAME_HELP}")
    frame_id = _plain(header.get("id"))
    if len(message) == 4 + n:
        raise FrameError("frame has no image after its header", frame_id)
    attention = bool(header.get("attention", False))
    return ReceivedFrame(frame_id, _plain(header.get("t")), attention, message, 4 + n, time.perf_counter())


def _decode_frame(frame: ReceivedFrame, max_pixels: int | None) -> np.ndarray:
    """The frame's image as RGB (H, W, 3), in the decode pool (the copy of its bytes too)."""
    return decode_upload(frame.data, max_pixels, "frame")


def _face_json(face: LiveFace, labels: tuple[str, ...]) -> dict:
    k = int(face.probabilities.argmax())
    x, y, w, h = face.box
    out = {
        "track": face.track,
        "box": {"x": x, "y": y, "w": w, "h": h},
        "label": labels[k],
        "confidence": round(float(face.probabilities[k]), 4),
        "probabilities": {name: round(float(p), 4) for name, p in zip(labels, face.probabilities)},
    }
    if face.attention is not None:
        heads = np.stack([normalize_map(m) for m in face.attention])  # (K, h, w), each head in [0, 1]
        out["attention"] = heads.round(3).tolist()  # (K, h, w) nested lists
    if face.va is not None:  # a model with the valence/arousal output
        out["valence"], out["arousal"] = (round(float(v), 4) for v in face.va)
    return out


class LiveSession:
    """One WebSocket connection: a receiver task, a worker task, a tracker.

    Args:
        websocket: The accepted connection.
        runner: The shared model thread.
        max_bytes: Largest frame message.
        max_pixels: Largest frame, width x height.
        smoothing: Weight of the past in each track's probabilities (see :class:`LiveStep`).
    """

    def __init__(
        self, websocket: WebSocket, runner: ModelRunner, max_bytes: int, max_pixels: int | None, smoothing: float = 0.6
    ) -> None:
        self.ws = websocket
        self.runner = runner
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.step = LiveStep(runner.predictor, smoothing=smoothing)  # this connection's tracks
        self.labels = runner.predictor.labels
        self.pending: ReceivedFrame | None = None
        self.wake = asyncio.Event()
        self.dropped = 0
        self.processed = 0
        self.closed = False
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict) -> None:
        """Send one JSON message; a connection that is gone only marks the session closed."""
        if self.closed:
            return
        async with self._send_lock:
            try:
                await self.ws.send_text(json.dumps(message, separators=(",", ":")))
            except Exception:  # disconnected, closed, or the transport failed: this client is done
                self.closed = True
                self.wake.set()

    async def run(self) -> None:
        """Serve the connection until the client leaves."""
        ready = {"type": "ready", "labels": list(self.labels), "attention": self.runner.attention}
        await self.send({**ready, "max_bytes": self.max_bytes})
        worker = asyncio.create_task(self._work())
        try:
            await self._receive()
        finally:
            self.closed = True
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _receive(self) -> None:
        while not self.closed:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                try:
                    frame = parse_frame(message["bytes"], self.max_bytes)
                except FrameError as err:
                    await self.send({"type": "error", "id": err.id, "message": str(err)})
                    continue
                if self.pending is not None:
                    self.dropped += 1  # the client sends faster than the model runs: skip the older frame
                self.pending = frame
                self.wake.set()
            elif message.get("text") is not None:
                await self._text(message["text"])

    async def _text(self, text: str) -> None:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data.get("type") == "ping":
            await self.send({"type": "pong", "t": _plain(data.get("t")), "server_time": time.time()})
        else:
            await self.send({"type": "error", "id": None, "message": f"unknown text message: {FRAME_HELP}"})

    async def _work(self) -> None:
        while not self.closed:
            await self.wake.wait()
            self.wake.clear()
            if self.pending is None or self.closed:
                continue
            async with self.runner.slot():  # frames arriving while we wait replace the pending one
                frame, self.pending = self.pending, None
                if frame is None or self.closed:
                    continue
                reply = await self._reply(frame)
            await self.send(reply)  # the slot is free before a slow client reads the reply

    async def _reply(self, frame: ReceivedFrame) -> dict:
        """The result message of one frame, or the error message to send instead."""
        try:
            return await self._process(frame)
        except ApiError as err:
            return {"type": "error", "id": frame.id, "message": str(err)}
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must not end the server or other connections: log it, tell the client
            log.exception("live frame %r failed", frame.id)
            return {"type": "error", "id": frame.id, "message": "internal error processing the frame"}

    async def _process(self, frame: ReceivedFrame) -> dict:
        waited_ms = (time.perf_counter() - frame.received) * 1e3
        image = await self.runner.decode(_decode_frame, frame, self.max_pixels)
        faces, model_ms = await self.runner.live(image, self.step, frame.attention)
        self.processed += 1
        return {
            "type": "result",
            "id": frame.id,
            "t": frame.t,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "faces": [_face_json(f, self.labels) for f in faces],
            "server_ms": round(model_ms, 2),
            "queue_ms": round(waited_ms, 2),
            "dropped": self.dropped,
        }
