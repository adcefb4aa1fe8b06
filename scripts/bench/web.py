"""Benchmark the page of ``dan export --web`` in headless Chromium, beside native ONNX Runtime in the same run.

Usage::

    python -m scripts.bench.web [--sizes 224 112] [--threads 1 2] [--seconds 10] [--backbone resnet18]
        [--heads 4] [--ort-web onnxruntime-web-1.31.1.tgz] [--chromium /usr/bin/chromium]

For each input size a DAN of the paper's shape (ResNet-18, 4 heads, 7 classes, random weights: speed
does not depend on them) is written as a page twice, float32 and ``--int8``, with ``dan export --web``.
Each page is served on loopback with the COOP/COEP headers (cross-origin isolated: WASM threads) and
opened in a fresh headless Chromium (no cache) whose fake camera plays the astronaut of
``skimage.data`` at 640 x 480 (one face); per WASM thread count the table gives:

- ``first visit``: bytes transferred until the page is ready (page, model, YuNet, runtime);
- ``ready``: seconds from navigation to a started runtime (downloads and WASM compilation included);
- ``first face``: ms from starting the camera to the first labelled face (the first inference's warm-up
  included);
- ``ms / face``: the model's median time per face in the browser (batch of one), beside ``native``, the
  median of ONNX Runtime in Python on the same file and thread count;
- ``detect``: YuNet's median time per frame; ``fps``: labelled frames per second, live.

Run it alone on the machine: the browser, the page's worker and the server share its cores.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from scripts.common.measure import REPO, machine_header, markdown_table

CHROMIUM = os.environ.get("DAN_CHROMIUM", "/usr/bin/chromium")


def camera_video(path: Path) -> Path:
    """The astronaut's upper 512 x 384 at 640 x 480, four frames of YUV4MPEG2 (what the fake camera plays)."""
    import cv2
    import skimage.data

    frame = cv2.resize(cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)[:384], (640, 480))
    yuv = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()  # (H * 3 / 2, W): Y, U, V planes
    with open(path, "wb") as f:
        f.write(b"YUV4MPEG2 W640 H480 F30:1 Ip A1:1 C420jpeg\n")
        for _ in range(4):
            f.write(b"FRAME\n" + yuv)
    return path


def write_page(folder: Path, size: int, int8: bool, args: argparse.Namespace) -> Path:
    """A random paper-shape DAN at ``size`` px as a page folder (``dan export --web``, a subprocess)."""
    import torch

    import dan

    ckpt = folder / f"dan{size}.pt"
    if not ckpt.exists():
        torch.manual_seed(0)
        model = dan.DAN(num_classes=7, num_heads=args.heads, backbone=args.backbone).eval()
        model.labels, model.preprocessing = dan.LABEL_SETS["rafdb"], dan.Preprocessing(input_size=size)
        dan.save_model(model, ckpt)
    site = folder / f"site{size}{'-int8' if int8 else ''}"
    cmd = [sys.executable, "-m", "dan", "export", "--checkpoint", str(ckpt), "--web", str(site)]
    cmd += ["--int8"] * int8 + (["--ort-web", args.ort_web] if args.ort_web else [])
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return site


def native_ms(site: Path, threads: int) -> float:
    """Median ms of ONNX Runtime in Python on one prepared face (batch of one), ``threads`` intra-op threads."""
    from dan.runtime.onnx import OnnxBackend

    backend = OnnxBackend(site / "model.onnx", threads=threads)
    s = backend.preprocessing.input_size
    x = np.random.default_rng(0).standard_normal((1, 3, s, s)).astype(np.float32)
    for _ in range(5):
        backend(x)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        backend(x)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def serve(folder: Path) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def end_headers(self) -> None:
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            super().end_headers()

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def browser_run(playwright, site: Path, video: Path, threads: int, seconds: float) -> dict:
    """One fresh browser on the page: the figures of the table's row."""
    httpd = serve(site)
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream"]
    args += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
    try:
        page = browser.new_page()
        sent = [0]
        page.on("response", lambda r: sent.__setitem__(0, sent[0] + int(r.headers.get("content-length") or 0)))
        t0 = time.monotonic()
        page.goto(f"http://127.0.0.1:{httpd.server_port}/?threads={threads}&backend=wasm")
        while not page.evaluate("danState.ready || danState.error"):
            time.sleep(0.05)
        if page.evaluate("danState.error"):
            raise RuntimeError(page.evaluate("danState.error"))
        ready_s, first_visit = time.monotonic() - t0, sent[0]
        page.click("#camera")
        while page.evaluate("danState.firstLabelMs === null && !danState.error"):
            time.sleep(0.05)
        time.sleep(seconds)
        timings = page.evaluate("danState.timings")[3:]  # after the warm-up frames
        backend = page.evaluate("danState.backend")
        first = page.evaluate("danState.firstLabelMs")
    finally:
        browser.close()
        httpd.shutdown()
        httpd.server_close()
    with_face = [t for t in timings if t["faces"]]
    span = (timings[-1]["at"] - timings[0]["at"]) / 1000 if len(timings) > 1 else float("nan")
    return {
        "backend": backend,
        "first_visit_mb": first_visit / 1e6,
        "ready_s": ready_s,
        "first_face_ms": first,
        "ms_per_face": statistics.median(t["classify"] / t["faces"] for t in with_face) if with_face else float("nan"),
        "detect_ms": statistics.median(t["detect"] for t in timings) if timings else float("nan"),
        "fps": (len(timings) - 1) / span if len(timings) > 1 else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.bench.web", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 112])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--seconds", type=float, default=10.0, help="live seconds measured per row")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ort-web", help="the onnxruntime-web tarball (else dan export --web fetches it with npm once)")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    print(machine_header(libraries=["onnxruntime"]))
    rows = []
    with tempfile.TemporaryDirectory(prefix="dan-bench-web-") as tmp, sync_playwright() as playwright:
        folder = Path(tmp)
        video = camera_video(folder / "camera.y4m")
        for size in args.sizes:
            for int8 in (False, True):
                site = write_page(folder, size, int8, args)
                mb = (site / "model.onnx").stat().st_size / 1e6
                for threads in args.threads:
                    r = browser_run(playwright, site, video, threads, args.seconds)
                    rows.append([
                        f"{size} px {'int8' if int8 else 'float32'} ({mb:.1f} MB)", r["backend"],
                        f"{r['ms_per_face']:.1f}", f"{native_ms(site, threads):.1f}", f"{r['detect_ms']:.1f}",
                        f"{r['fps']:.1f}", f"{r['first_face_ms']:.0f}", f"{r['ready_s']:.1f}",
                        f"{r['first_visit_mb']:.1f}",
                    ])  # fmt: skip
                    print(" | ".join(rows[-1]), flush=True)
    headers = ["model", "browser backend", "ms / face", "native ms", "detect ms", "fps", "first face ms"]
    print(markdown_table(headers + ["ready s", "first visit MB"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
