"""Load and fault benchmark of ``dan serve``: does the server stay responsive while clients misbehave?

Usage::

    python -m scripts.bench.serve_faults [--checkpoint CKPT] [--threads 2] [--connections 4]
        [--frames 30] [--uploads 64] [--slow-clients 8] [--slow-seconds 35] [--frame-mib 9.9]
        [--phases flood stuffed uploads slow]

Four phases against a real ``dan serve`` subprocess (default detector, YuNet), each measured while a
prober, in a process of its own, asks ``GET /health`` every 100 ms on a new connection and opens a new
``/v1/live`` WebSocket (handshake and ``ready`` message) every 500 ms:

- ``flood``: ``--connections`` WebSockets each send ``--frames`` live frames of ``--frame-mib`` MiB as
  fast as the socket takes them (a 6000 x 6000 JPEG, 36 megapixels, padded with trailing bytes to the
  size), then read the replies;
- ``stuffed``: the same with a hostile frame: a 640 x 480 JPEG whose scan is ``--frame-mib`` MiB of
  stuffed ``FF 00`` pairs (the truncation check walks them in Python, seconds per frame);
- ``uploads``: ``--uploads`` concurrent ``POST /v1/predict`` of the same image;
- ``slow``: ``--slow-clients`` clients that each declare a 64 KiB body and send it 16 bytes per 100 ms
  for up to ``--slow-seconds`` (the server's limit for a body to arrive is 30 s).

Each phase prints the prober's /health and handshake latency (p50, p99, max), its errors and timeouts,
the phase's own errors, and the server's resident memory (RSS) before and after. Without
``--checkpoint`` the model is a paper-size DAN exported to ONNX (see ``benchmark_serve.py``). The
clients run on the same machine as the server and take CPU time from it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import select
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from scripts.bench.serve import paper_model, start_server
from scripts.common.measure import machine_header, rss_mib


def big_jpeg(mib: float) -> bytes:
    """A 6000 x 6000 photo-like JPEG (the astronaut, upscaled, with noise) padded to ``mib`` MiB."""
    import skimage.data

    face = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    big = cv2.resize(face, (6000, 6000), interpolation=cv2.INTER_CUBIC)
    noisy = np.clip(big.astype(np.int16) + np.random.default_rng(0).normal(0, 6, big.shape).astype(np.int16), 0, 255)
    target = int(mib * 2**20) - 64  # room for the frame header
    for quality in (93, 85, 75, 60):
        data = cv2.imencode(".jpg", noisy.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
        if len(data) <= target:
            return data + bytes(target - len(data))  # bytes after a complete JPEG are accepted
    raise SystemExit(f"--frame-mib {mib}: too small for a 6000 x 6000 JPEG")


def stuffed_jpeg(mib: float) -> bytes:
    """A 640 x 480 JPEG header, a scan of stuffed ``FF 00`` pairs, an end marker: ``mib`` MiB in all."""
    small = cv2.imencode(".jpg", np.zeros((480, 640, 3), np.uint8))[1].tobytes()
    sos = small.index(b"\xff\xda")
    head = small[: sos + 2 + int.from_bytes(small[sos + 2 : sos + 4], "big")]
    return head + b"\xff\x00" * ((int(mib * 2**20) - 64 - len(head)) // 2) + b"\xff\xd9"


def frame_message(image: bytes, frame_id: int) -> bytes:
    header = json.dumps({"id": frame_id, "t": time.perf_counter() * 1e3}).encode()
    return struct.pack(">I", len(header)) + header + image


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://").split("?")[0].rstrip("/") + "/v1/live"


def _probe(url: str, timeout: float, stop: Any, out: Any) -> None:
    """The prober's process: ``GET /health`` every 100 ms, a new live WebSocket every 500 ms, until ``stop``."""
    from websockets.sync.client import connect

    host, port = urlsplit(url).hostname, urlsplit(url).port
    found: dict[str, list] = {"health": [], "handshake": [], "errors": []}

    def health() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
                conn.request("GET", "/health")
                reply = conn.getresponse()
                reply.read()
                conn.close()
                if reply.status != 200:
                    found["errors"].append(f"/health {reply.status}")
                found["health"].append((time.perf_counter() - start) * 1e3)
            except OSError as err:
                found["errors"].append(f"/health {type(err).__name__}")
            stop.wait(max(0.0, 0.1 - (time.perf_counter() - start)))

    def handshake() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                with connect(ws_url(url), open_timeout=timeout, max_size=None, compression=None) as ws:
                    if json.loads(ws.recv(timeout=timeout))["type"] != "ready":
                        found["errors"].append("handshake: no ready message")
                found["handshake"].append((time.perf_counter() - start) * 1e3)
            except Exception as err:  # a timeout, a refusal: counted, the probe goes on
                found["errors"].append(f"handshake {type(err).__name__}")
            stop.wait(max(0.0, 0.5 - (time.perf_counter() - start)))

    threads = [threading.Thread(target=health), threading.Thread(target=handshake)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.send(found)


class Prober:
    """Probes the server from a process of its own (so the load's clients do not slow the probes down)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_probe, args=(url, timeout, self._stop, send), daemon=True)
        self.found: dict[str, list] = {"health": [], "handshake": [], "errors": []}

    def __enter__(self) -> Prober:
        self._proc.start()
        time.sleep(1.0)  # the process imports websockets; then the load starts
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.found = self._recv.recv()
        self._proc.join(timeout=60)

    def summary(self) -> str:
        """Latency of both probes (p50, p99, max, count) and the probe errors."""

        def stats(ms: list[float]) -> str:
            if not ms:
                return "no replies"
            p50, p99 = np.percentile(ms, [50, 99])
            return f"p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {max(ms):7.1f} ms ({len(ms)})"

        errors = self.found["errors"]
        line = f"; errors: {len(errors)} ({', '.join(sorted(set(errors)))})" if errors else ""
        return f"  /health    {stats(self.found['health'])}\n  handshake  {stats(self.found['handshake'])}{line}"


class PeakRss:
    """Samples a process's resident memory every 100 ms; ``peak`` is the largest, in MiB."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def flood(url: str, image: bytes, connections: int, frames: int) -> str:
    """``connections`` WebSockets sending ``frames`` frames each at full speed; then their replies."""
    from websockets.sync.client import connect

    results, errors, lock = [0], [], threading.Lock()

    def client(n: int) -> None:
        try:
            with connect(ws_url(url), max_size=None, open_timeout=60) as ws:
                json.loads(ws.recv(timeout=60))
                for i in range(1, frames + 1):
                    ws.send(frame_message(image, i))
                last = 0
                while last != frames:
                    reply = json.loads(ws.recv(timeout=60))
                    if reply["type"] == "result":
                        last = reply["id"]
                        with lock:
                            results[0] += 1
                    elif reply["type"] == "error":
                        errors.append(reply["message"][:60])
        except Exception as err:  # reported in the summary line
            errors.append(f"{type(err).__name__}: {str(err)[:60]}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"{connections * frames} frames sent, {results[0]} results" + (f", errors: {errors[:4]}" if errors else "")


def uploads(url: str, image: bytes, count: int) -> str:
    """``count`` concurrent ``POST /v1/predict``."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    statuses: list[int | str] = []

    def client() -> None:
        try:
            conn = http.client.HTTPConnection(host, port, timeout=300)
            conn.request("POST", "/v1/predict", body=image, headers={"Content-Type": "image/jpeg"})
            reply = conn.getresponse()
            reply.read()
            statuses.append(reply.status)
            conn.close()
        except OSError as err:
            statuses.append(type(err).__name__)

    threads = [threading.Thread(target=client) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {s: statuses.count(s) for s in sorted(set(statuses), key=str)}
    return f"{count} uploads: " + ", ".join(f"{n} x {s}" for s, n in counts.items())


def slow_clients(url: str, count: int, seconds: float) -> str:
    """``count`` clients trickling a 64 KiB body at 16 bytes per 100 ms for ``seconds``."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    outcome: list[str] = []

    def client() -> None:
        with socket.create_connection((host, port), timeout=seconds + 30) as s:
            head = "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 65536\r\n\r\n"
            s.sendall(head.encode())
            stop = time.perf_counter() + seconds
            try:
                while time.perf_counter() < stop:
                    if select.select([s], [], [], 0)[0]:  # the server answered (or closed) before the body ended
                        status = s.recv(4096).split(b"\r\n", 1)[0].decode("latin-1").split(" ")[1:2]
                        outcome.append(f"answered {status[0]}" if status else "closed by the server")
                        return
                    s.sendall(b"\xff" * 16)
                    time.sleep(0.1)
                outcome.append(f"still sending after {seconds:g} s")
            except OSError:
                outcome.append("cut off by the server")

    threads = [threading.Thread(target=client) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return f"{count} slow clients: " + ", ".join(f"{outcome.count(o)} {o}" for o in sorted(set(outcome)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="model file (default: a paper-size DAN exported to ONNX)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="model threads of the server")
    p.add_argument("--connections", type=int, default=4, help="flooding WebSockets")
    p.add_argument("--frames", type=int, default=30, help="frames each flooding WebSocket sends")
    p.add_argument("--frame-mib", type=float, default=9.9, help="size of each frame and upload, MiB")
    p.add_argument("--uploads", type=int, default=64, help="concurrent POST /v1/predict")
    p.add_argument("--slow-clients", type=int, default=8, help="clients sending their body 16 bytes per 100 ms")
    p.add_argument("--slow-seconds", type=float, default=35.0, help="how long the slow clients trickle at most")
    phases = ["flood", "stuffed", "uploads", "slow"]
    p.add_argument("--phases", nargs="+", default=phases, choices=phases, help="what to run (default: all)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else paper_model(Path(tmp))
        print(machine_header(args.threads) + f" ({os.cpu_count()} cores); model {checkpoint.name}")
        image = big_jpeg(args.frame_mib)
        print(f"frame: 6000 x 6000 JPEG, {len(image) / 2**20:.1f} MiB")
        proc, url = start_server(checkpoint, args.threads, ["--max-upload-mb", str(max(10.0, args.frame_mib + 0.1))])
        try:
            with Prober(url) as idle:
                time.sleep(3)
            print(f"idle: RSS {rss_mib(proc.pid):.0f} MiB\n{idle.summary()}")
            for phase in args.phases:
                before = rss_mib(proc.pid)
                start = time.perf_counter()
                with PeakRss(proc.pid) as peak, Prober(url) as probe:
                    if phase == "flood":
                        line = flood(url, image, args.connections, args.frames)
                    elif phase == "stuffed":
                        line = flood(url, stuffed_jpeg(args.frame_mib), args.connections, args.frames)
                    elif phase == "uploads":
                        line = uploads(url, image, args.uploads)
                    else:
                        line = slow_clients(url, args.slow_clients, args.slow_seconds)
                took = time.perf_counter() - start
                after = rss_mib(proc.pid)
                print(f"{phase}: {line} in {took:.1f} s; RSS {before:.0f} -> {after:.0f} MiB (peak {peak.peak:.0f})")
                print(probe.summary())
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
