"""``dan serve`` in a real browser: Debian's chromium, driven by Playwright, with a fake camera playing a photo.

The camera is chromium's fake capture device reading a .y4m file made here from scikit-image's
astronaut photograph. The server runs as a real ``dan serve`` subprocess with a token, and the page
must find the token in its own URL. Set ``DAN_UPDATE_DOCS=1`` to save the page to docs/serve.png.
Without chromium (or Playwright) the tests skip, unless ``DAN_REQUIRE_BROWSER=1`` (CI), when they fail.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import dan

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("DAN_CHROMIUM", "/usr/bin/chromium"))
RAFDB = dan.LABEL_SETS["rafdb"]
TOKEN = "test-token-1234"
PALETTE = [(0, 191, 255), (255, 105, 180), (0, 128, 0), (255, 215, 0), (0, 0, 255), (255, 0, 0), (200, 200, 200)]
W, H = 640, 480


def _browser_or_skip() -> None:
    problems = []
    if not CHROMIUM.is_file():
        problems.append(f"{CHROMIUM} not found (install it: bash scripts/install_browser.sh)")
    if importlib.util.find_spec("playwright") is None:
        problems.append("the playwright package is missing (pip install -e '.[dev]')")
    if problems:
        message = "; ".join(problems)
        if os.environ.get("DAN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"DAN_REQUIRE_BROWSER=1 but {message}", pytrace=False)
        pytest.skip(message)


def _camera_frame() -> np.ndarray:
    """The astronaut's upper 512 x 384 scaled to 640 x 480, BGR: one face at about (221, 82, 119, 119)."""
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    return cv2.resize(astronaut[:384], (W, H), interpolation=cv2.INTER_AREA)


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 15) -> Path:
    """Write BGR frames as an uncompressed YUV4MPEG2 (4:2:0) video, the format chromium's fake camera reads."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())  # (H * 3 / 2, W): Y, U, V planes
    return path


class ServeProcess:
    """``dan serve`` as a subprocess on a free port; ``url`` is what it prints once it accepts connections."""

    def __init__(self, args: list[str], timeout: float = 180.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dan", "serve", *args, "--port", "0"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise AssertionError(f"dan serve did not start in {timeout:.0f} s: {''.join(self.log)}") from None
            found = re.search(r"open (http://\S+)", line)
            if found:
                self.url = found.group(1)
                return
            if self.proc.poll() is not None and self.lines.empty():
                raise AssertionError(f"dan serve exited with status {self.proc.returncode}: {''.join(self.log)}")

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)

    def stop(self) -> int | None:
        """Ctrl-C: the server shuts down gracefully and exits with 130."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    _browser_or_skip()
    root = tmp_path_factory.mktemp("serve_browser")
    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=2)
    model.labels = RAFDB
    model.preprocessing = dan.Preprocessing(input_size=96)
    ckpt = dan.save_model(model, root / "model.pt")
    proc = ServeProcess(["--checkpoint", str(ckpt), "--detector", "haar", "--token", TOKEN, "--threads", "1"])
    yield proc, root
    assert proc.stop() == 130, "".join(proc.log)
    assert "Traceback" not in "".join(proc.log), "".join(proc.log)


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    proc, root = server
    video = write_y4m(root / "camera.y4m", [_camera_frame()] * 4)
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 640})
        page.errors = []
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(proc.url)
        yield page
        browser.close()


def _wait(page, condition: str, timeout: float = 30) -> None:
    """Poll a JavaScript condition (``wait_for_function`` would eval a string, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({condition})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g} s: {condition}; status: {page.inner_text('#status')}")
        time.sleep(0.1)


def _rgb(png: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(int)


def test_page_labels_the_camera_face_live(page) -> None:
    _wait(page, "document.querySelector('#faces li[data-label]') !== null", 60)
    item = page.locator("#faces li").first
    assert item.get_attribute("data-label") in RAFDB
    assert re.fullmatch(r"#0: [a-z]+ \d+%", item.inner_text()), item.inner_text()
    _wait(page, "state.fps !== null && state.latency !== null", 30)
    stats = page.locator("#stats").inner_text()
    assert re.search(r"[\d.]+ results/s · round trip \d+ ms", stats), stats
    model_line = page.locator("#model").inner_text()  # --backend auto: the fastest runtime here
    assert re.match(r"7 classes · (torch|onnx|openvino) · haar detector", model_line), model_line
    assert page.errors == [], page.errors  # no script error and no Content-Security-Policy violation


def test_canvas_shows_the_box_over_the_video(page) -> None:
    _wait(page, "state.result && state.result.faces.length > 0", 60)
    face = page.evaluate("state.result.faces[0]")
    stage = page.locator("#stage")
    shown = stage.screenshot()
    page.evaluate("document.getElementById('overlay').style.visibility = 'hidden'")
    raw = stage.screenshot()  # the same still frame without the drawing
    page.evaluate("document.getElementById('overlay').style.visibility = ''")
    a, b = _rgb(shown), _rgb(raw)
    color = np.array(PALETTE[RAFDB.index(face["label"])])
    drawn = (np.abs(a - color).sum(-1) < 40) & (np.abs(b - color).sum(-1) >= 40)  # (h, w)
    assert drawn.sum() > 200, f"no {face['label']} box drawn"
    s = a.shape[1] / W  # screenshot pixels per frame pixel (the frame is sent at its full 640 px)
    x, y, w, h = (face["box"][k] * s for k in "xywh")
    x0, y0, x1, y1 = int(x), int(y), int(x + w), int(y + h)
    sides = {  # each side of the box: in every row (column) along it, a drawn pixel within 5 px of it
        "left": drawn[y0:y1, max(0, x0 - 5) : x0 + 6].any(1),
        "right": drawn[y0:y1, x1 - 5 : x1 + 6].any(1),
        "top": drawn[max(0, y0 - 5) : y0 + 6, x0:x1].any(0),
        "bottom": drawn[y1 - 5 : y1 + 6, x0:x1].any(0),
    }
    for side, hits in sides.items():
        assert hits.mean() > 0.9, f"the box's {side} side is not where the server found the face"
    assert abs(x / s - 221) < 25 and abs(w / s - 119) < 30  # the astronaut's face


def test_attention_toggle_draws_head_maps(page) -> None:
    page.check("#attention")
    _wait(page, "state.result && state.result.faces.length && state.result.faces[0].attention", 30)
    maps = page.evaluate("state.result.faces[0].attention")
    if os.environ.get("DAN_UPDATE_DOCS") == "1":  # the README's picture: live labels and the heads' maps
        time.sleep(1.0)
        shot = _rgb(page.screenshot())[..., ::-1].astype(np.uint8)  # BGR for OpenCV
        small = cv2.resize(shot, (880, round(shot.shape[0] * 880 / shot.shape[1])), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(REPO / "docs" / "serve.png"), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert len(maps) == 2 and all(0.0 <= v <= 1.0 for head in maps for row in head for v in row)
    page.uncheck("#attention")
    _wait(page, "state.result.faces.length && !state.result.faces[0].attention", 30)


def test_upload_labels_a_photo(page, server, tmp_path) -> None:
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR))
    page.set_input_files("#upload", str(photo))
    _wait(page, "document.getElementById('status').textContent.includes('astronaut.jpg:')")
    assert page.locator("#status").inner_text() == "astronaut.jpg: 1 face"
    assert page.locator("#photo").is_visible() and not page.locator("#video").is_visible()
    assert re.fullmatch(r"face 1: [a-z]+ \d+%", page.locator("#faces li").first.inner_text())
    page.click("#back")
    assert page.locator("#video").is_visible()
    _wait(
        page, "document.querySelector('#faces li') && document.querySelector('#faces li').textContent.startsWith('#')"
    )
    assert page.errors == [], page.errors
