"""Benchmark ``dan serve`` on loopback: still-image throughput and latency, live fps and round trip, memory.

Usage::

    python -m scripts.bench.serve [--checkpoint CKPT] [--threads 2] [--clients 1 4 16] [--seconds 10]
        [--live-seconds 10] [--requests 10000]

Without ``--checkpoint`` a DAN of the paper's size (ResNet-18, 4 heads, 224 px, 7 classes, random
weights: speed does not depend on the weights) is built and exported to ONNX with ``dan export``. The
server is a real ``dan serve`` subprocess (Haar detector). The image is the astronaut of
``skimage.data`` (one face) at 640 x 480, as JPEG, like a camera frame from the page.

- ``predict``: N clients, each a keep-alive connection POSTing the image as fast as replies come.
- ``live``: one WebSocket client, (a) one frame in flight (send, wait, send), (b) two in flight (what
  the page does), (c) sending at 60 fps whatever the replies (faster than the model: the server
  keeps only the newest frame, so the round trip stays short and frames are skipped).
- ``memory``: the server's resident set size before and while ``--requests`` POSTs go through.
- ``batching``: the model alone at batch 1 and 4, the most that batching requests could save.

The clients run in this process on the same machine, so they take CPU time from the server.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from scripts.common.measure import REPO, machine_header, rss_mib


def percentiles(ms: list[float]) -> str:
    if not ms:
        return "no replies"
    p50, p95 = np.percentile(ms, [50, 95])
    return f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"


def camera_jpeg() -> bytes:
    import skimage.data

    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    frame = cv2.resize(astronaut[:384], (640, 480), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def paper_model(folder: Path) -> Path:
    """A 224 px, 4-head, 7-class DAN exported to ONNX."""
    import torch

    import dan

    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=4)
    model.labels = dan.LABEL_SETS["rafdb"]
    ckpt = dan.save_model(model, folder / "dan224.pt")
    onnx = folder / "dan224.onnx"
    subprocess.run([sys.executable, "-m", "dan", "export", "--checkpoint", str(ckpt), "--output", str(onnx)],
                   check=True, capture_output=True)  # fmt: skip
    return onnx


def batch_gain(checkpoint: Path, threads: int) -> str:
    """Model time per face at batch 1 and 4: what batching concurrent requests could save at most."""
    from dan.runtime.loader import load_backend

    backend = load_backend(checkpoint, threads=threads)
    size = backend.preprocessing.input_size
    out = []
    for n in (1, 4):
        x = np.random.default_rng(0).standard_normal((n, 3, size, size)).astype(np.float32)
        backend(x)
        times = []
        for _ in range(max(5, 40 // n)):
            start = time.perf_counter()
            backend(x)
            times.append(time.perf_counter() - start)
        out.append(float(np.median(times)) * 1e3 / n)
    return f"model ms per face: batch 1 {out[0]:.1f}, batch 4 {out[1]:.1f} ({1 - out[1] / out[0]:+.0%} saved)"


def start_server(checkpoint: Path, threads: int, extra: list[str]) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "dan", "serve", "--checkpoint", str(checkpoint), "--port", "0"]
    cmd += ["--threads", str(threads), *extra]  # the default detector (YuNet), as a user runs it
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        found = re.search(r"open (http://\S+)", line)
        if found:
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()  # keep draining
            return proc, found.group(1)
        print(line, end="", file=sys.stderr)
    raise SystemExit(f"dan serve exited with status {proc.wait()}")


def predict_clients(url: str, jpeg: bytes, clients: int, seconds: float, limit: int | None = None) -> tuple:
    """``clients`` threads POSTing ``jpeg`` for ``seconds`` (or ``limit`` requests in all)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    latencies: list[float] = []
    failures = [0]
    count = [0]
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        while time.perf_counter() < stop:
            with lock:
                if limit is not None and count[0] >= limit:
                    break
                count[0] += 1
            start = time.perf_counter()
            conn.request("POST", "/v1/predict", body=jpeg, headers={"Content-Type": "image/jpeg"})
            reply = conn.getresponse()
            body = reply.read()
            ms = (time.perf_counter() - start) * 1e3
            with lock:
                if reply.status == 200 and json.loads(body)["faces"]:
                    latencies.append(ms)
                else:
                    failures[0] += 1
        conn.close()

    begin = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures[0], time.perf_counter() - begin


def frame_message(jpeg: bytes, frame_id: int) -> bytes:
    header = json.dumps({"id": frame_id, "t": time.perf_counter() * 1e3}).encode()
    return struct.pack(">I", len(header)) + header + jpeg


def live_client(url: str, jpeg: bytes, seconds: float, in_flight: int | None, send_fps: float = 60.0) -> str:
    """One WebSocket client: ``in_flight`` frames unanswered at most, or None to send at ``send_fps`` regardless."""
    from websockets.sync.client import connect

    ws_url = url.replace("http://", "ws://").split("?")[0].rstrip("/") + "/v1/live"
    rtts: list[float] = []
    last = {"dropped": 0, "id": 0}
    with connect(ws_url, max_size=None) as ws:
        json.loads(ws.recv())  # ready
        sent, stop = 0, time.perf_counter() + seconds
        begin = time.perf_counter()

        def take(timeout: float | None) -> None:
            reply = json.loads(ws.recv(timeout=timeout))
            if reply["type"] == "result":
                rtts.append(time.perf_counter() * 1e3 - reply["t"])
                last.update(dropped=reply["dropped"], id=reply["id"])

        if in_flight is None:  # a sender faster than the model

            def sender() -> None:
                nonlocal sent
                while time.perf_counter() < stop:
                    sent += 1
                    ws.send(frame_message(jpeg, sent))
                    time.sleep(1 / send_fps)

            t = threading.Thread(target=sender)
            t.start()
            while time.perf_counter() < stop:
                try:
                    take(timeout=max(0.01, stop - time.perf_counter()))
                except TimeoutError:
                    break
            t.join()
        else:
            while time.perf_counter() < stop:
                while sent - last["id"] < in_flight:
                    sent += 1
                    ws.send(frame_message(jpeg, sent))
                take(timeout=30)
        elapsed = time.perf_counter() - begin
    rate = len(rtts) / elapsed
    return f"{rate:5.1f} results/s  round trip {percentiles(rtts)}  ({sent} sent, {last['dropped']} skipped)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="model file (default: a paper-size DAN exported to ONNX)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="model threads of the server")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrent POST clients")
    p.add_argument("--seconds", type=float, default=10.0, help="length of each POST measurement")
    p.add_argument("--live-seconds", type=float, default=10.0, help="length of each live measurement")
    p.add_argument("--requests", type=int, default=10_000, help="POSTs for the memory measurement")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(args.checkpoint) if args.checkpoint else paper_model(Path(tmp))
        print(machine_header(args.threads, libraries=("onnxruntime",)) + f" ({os.cpu_count()} cores)")
        print(f"server model threads: {args.threads}; model: {checkpoint.name}")
        print(f"batching: {batch_gain(checkpoint, args.threads)}")
        jpeg = camera_jpeg()
        proc, url = start_server(checkpoint, args.threads, [])
        try:
            predict_clients(url, jpeg, 1, 2.0)  # warm up
            for n in args.clients:
                ms, failed, elapsed = predict_clients(url, jpeg, n, args.seconds)
                print(f"predict, {n:2d} client(s): {len(ms) / elapsed:6.1f} req/s  {percentiles(ms)}"
                      + (f"  {failed} failed" if failed else ""))  # fmt: skip
            for name, in_flight in (("1 in flight", 1), ("2 in flight", 2), ("60 fps sender", None)):
                print(f"live, {name}: {live_client(url, jpeg, args.live_seconds, in_flight)}")
            before = rss_mib(proc.pid)
            samples = [before]
            step = max(1, args.requests // 5)
            done = 0
            while done < args.requests:
                ms, failed, _ = predict_clients(url, jpeg, 4, 1e9, limit=min(step, args.requests - done))
                done += len(ms) + failed
                samples.append(rss_mib(proc.pid))
            trail = " / ".join(f"{m:.0f}" for m in samples)
            print(f"memory over {done:,} requests: RSS {trail} MiB; growth {samples[-1] - before:+.1f} MiB")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
        print(f"load average after: {load}")


if __name__ == "__main__":
    main()
