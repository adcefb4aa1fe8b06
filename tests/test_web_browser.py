"""The page of ``dan export --web`` in a real browser (Debian's chromium, Playwright), against ``dan predict``.

The page runs the exported model and YuNet with onnxruntime-web in a Web Worker; these tests feed it
photos (scikit-image's astronaut at two scales, and a group of generated faces) and a fake camera
playing generated faces, and compare every face with :class:`dan.Predictor` on the same pixels through
the same ONNX file: the same faces (boxes within 2 px), the same top-1, probabilities within 0.002
(float32). The figures are printed. The page is served with COOP/COEP headers (cross-origin isolated,
WASM threads), as docs/web.md says to host it; one test serves it without them.

onnxruntime-web is fetched once per session with npm into the session's ``DAN_HOME`` (or taken from
``DAN_TEST_ORT_WEB``, a tarball of the pinned version). Without chromium, Playwright or the runtime the
tests skip, unless ``DAN_REQUIRE_BROWSER=1`` (CI), when they fail.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch

import dan
from dan.errors import DanError
from tests.test_serve_browser import CHROMIUM, _browser_or_skip, write_y4m

RAFDB = dan.LABEL_SETS["rafdb"]
W, H = 640, 480


def _require(message: str) -> None:
    if os.environ.get("DAN_REQUIRE_BROWSER") == "1":
        pytest.fail(f"DAN_REQUIRE_BROWSER=1 but {message}", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ort_dir():
    """onnxruntime-web's verified files (npm once per session, or the tarball in ``DAN_TEST_ORT_WEB``)."""
    _browser_or_skip()
    from dan.web import ort_web_files

    try:
        return ort_web_files(os.environ.get("DAN_TEST_ORT_WEB") or None)
    except DanError as err:
        _require(f"onnxruntime-web could not be had: {err}")


def _model(size: int) -> dan.DAN:
    torch.manual_seed(0)
    model = dan.DAN(num_classes=7, num_heads=2, backbone="test_resnet").eval()
    model.labels, model.preprocessing = RAFDB, dan.Preprocessing(input_size=size)
    return model


@pytest.fixture(scope="module")
def site(ort_dir, tmp_path_factory):
    """``dan export --web`` of a tiny model (test_resnet, 64 px), float32."""
    from dan.cli.export import main

    root = tmp_path_factory.mktemp("web")
    ckpt = dan.save_model(_model(64), root / "tiny.pt")
    assert main(["--checkpoint", str(ckpt), "--web", str(root / "site")]) == 0
    return root / "site"


class StaticServer:
    """The folder over HTTP on a free loopback port, with (or without) the COOP/COEP headers."""

    def __init__(self, folder: Path, isolated: bool = True) -> None:
        class Handler(http.server.SimpleHTTPRequestHandler):
            def end_headers(self) -> None:
                if isolated:
                    self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                    self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                super().end_headers()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=folder))
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _faces_video(path: Path) -> Path:
    """Eight 640 x 480 frames, each with two generated faces (200 and 300 px: the larger is reduced to align it)."""
    from dan.synthface import draw_face

    rng = np.random.default_rng(0)
    frames = []
    for i in range(8):
        frame = np.full((H, W, 3), 70 + 10 * i, np.uint8)
        frame[60:260, 20:220] = draw_face(i % 7, rng, 200)
        frame[150:450, 300:600] = draw_face((i + 3) % 7, rng, 300)
        frames.append(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return write_y4m(path, frames, fps=5)


@pytest.fixture(scope="module")
def browser(site, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    video = _faces_video(tmp_path_factory.mktemp("camera") / "faces.y4m")
    args = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(site):
    srv = StaticServer(site)
    yield srv
    srv.close()


def _open(browser, url: str, timeout: float = 120):
    page = browser.new_page(viewport={"width": 1100, "height": 700})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url)
    _wait(page, "danState.ready || danState.error", timeout)
    return page


def _wait(page, condition: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({condition})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout:g} s: {condition}; status: {page.inner_text('#status')}")
        time.sleep(0.1)


def _photos(root: Path) -> list[Path]:
    """The astronaut (512 px), the astronaut at 900 px (detected scaled down), a group of generated faces."""
    from dan.synthface import draw_face

    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    group = np.full((360, 760, 3), 120, np.uint8)
    rng = np.random.default_rng(1)
    for i, (x, size) in enumerate([(10, 160), (190, 220), (430, 320)]):
        group[20 : 20 + size, x : x + size] = draw_face(i * 2, rng, size)
    out = []
    for name, image in [
        ("astronaut.png", astronaut),
        ("astronaut900.png", cv2.resize(astronaut, (900, 900), interpolation=cv2.INTER_CUBIC)),
        ("group.png", cv2.cvtColor(group, cv2.COLOR_RGB2BGR)),
    ]:
        cv2.imwrite(str(root / name), image)
        out.append(root / name)
    return out


class Agreement:
    """Face-by-face agreement of the page with dan's Predictor."""

    def __init__(self) -> None:
        self.faces = self.same_top1 = 0
        self.max_box = self.max_prob = 0.0

    def add(self, page_faces: list[dict], reference: list, where: str) -> None:
        assert len(page_faces) == len(reference), (
            f"{where}: the page found {len(page_faces)} faces, dan {len(reference)}"
        )
        for got, ref in zip(page_faces, reference):
            box = np.array([got["x"], got["y"], got["w"], got["h"]], float)
            self.max_box = max(self.max_box, float(np.abs(box - np.array(ref.box, float)).max()))
            probs = np.array(got["probabilities"], np.float64)
            self.max_prob = max(self.max_prob, float(np.abs(probs - ref.probabilities).max()))
            self.same_top1 += got["label"] == ref.label
            self.faces += 1

    def report(self, what: str) -> str:
        return (
            f"{what}: {self.faces} faces, boxes within {self.max_box:g} px, top-1 equal on "
            f"{self.same_top1}/{self.faces}, largest probability difference {self.max_prob:.2g}"
        )


def _predictor(site: Path):
    from dan.inference.predictor import Predictor

    return Predictor(site / "model.onnx", detector="yunet", backend="onnx", threads=1)


def test_photos_agree_with_dan_predict(browser, server, site, tmp_path) -> None:
    page = _open(browser, server.url + "?nosw=1")
    assert page.evaluate("danState.error") is None, page.evaluate("danState.error")
    assert page.evaluate("crossOriginIsolated")
    assert page.evaluate("danState.backend").startswith("WASM SIMD"), page.evaluate("danState.backend")
    predictor, agreement = _predictor(site), Agreement()
    for n, photo in enumerate(_photos(tmp_path), 1):
        page.set_input_files("#upload", str(photo))
        _wait(page, f"danState.photos.length >= {n} || danState.error", 120)
        result = page.evaluate("danState.photos[danState.photos.length - 1]")
        assert result["name"] == photo.name and result["faces"], result
        agreement.add(result["faces"], predictor.predict(photo), photo.name)
    print(agreement.report("photos, float32"))
    assert page.inner_text("#status").startswith("group.png: 3 faces")
    assert len(page.locator("#faces li .bars .bar").all()) == 3 * 7
    assert agreement.max_box <= 2 and agreement.same_top1 >= 0.99 * agreement.faces
    assert agreement.max_prob <= 0.002, agreement.report("photos")
    assert page.errors == [], page.errors


def _frame(page, index: int) -> np.ndarray:
    """Frame ``index`` the worker labelled, as uint8 RGB (H, W, 3), read back from the page."""
    b64 = page.evaluate(
        """i => { const f = danState.frames[i]; let s = "";
        for (let k = 0; k < f.rgba.length; k += 32768) s += String.fromCharCode(...f.rgba.subarray(k, k + 32768));
        return btoa(s); }""",
        index,
    )
    width, height = page.evaluate("i => [danState.frames[i].width, danState.frames[i].height]", index)
    rgba = np.frombuffer(base64.b64decode(b64), np.uint8).reshape(height, width, 4)  # (H, W, RGBA)
    return np.ascontiguousarray(rgba[..., :3])


def test_camera_faces_agree_with_dan_predict(browser, server, site) -> None:
    page = _open(browser, server.url + "?nosw=1&keep=1")
    page.click("#camera")
    _wait(page, "danState.frames.filter(f => f.faces.length === 2).length >= 3 || danState.error", 180)
    assert page.evaluate("danState.error") is None, page.evaluate("danState.error")
    stats = page.inner_text("#stats")
    assert "fps" in stats and "ms per face" in stats and "WASM SIMD" in stats, stats
    predictor, agreement = _predictor(site), Agreement()
    kept = min(page.evaluate("danState.frames.length"), 8)
    for i in range(kept):  # every frame the worker labelled, the first ones (before the video plays) too
        faces = page.evaluate("i => danState.frames[i].faces", i)
        agreement.add(faces, predictor.predict(_frame(page, i)), f"camera frame {i}")
    assert agreement.faces >= 6
    print(agreement.report("camera, float32"), f"; first labelled face {page.evaluate('danState.firstLabelMs'):.0f} ms")
    assert agreement.max_box <= 2 and agreement.same_top1 >= 0.99 * agreement.faces
    assert agreement.max_prob <= 0.002, agreement.report("camera")
    assert page.errors == [], page.errors


def test_bad_photos_say_why(browser, server, tmp_path) -> None:
    page = _open(browser, server.url + "?nosw=1")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    page.set_input_files("#upload", str(text))
    _wait(page, "danState.error !== null")
    assert page.inner_text("#status") == "notes.png: not an image this page reads (PNG, JPEG, GIF, BMP or WebP)"
    page.evaluate("danState.error = null")
    huge = tmp_path / "huge.png"  # a valid PNG header declaring 10000 x 6000 pixels (60 megapixels)
    _, png = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(png.tobytes())
    data[16:24] = (10000).to_bytes(4, "big") + (6000).to_bytes(4, "big")
    huge.write_bytes(bytes(data))
    page.set_input_files("#upload", str(huge))
    _wait(page, "danState.error !== null")
    assert page.inner_text("#status") == (
        "huge.png: image is 10000x6000 pixels (60 megapixels), more than the limit of 50 megapixels"
    )
    assert page.evaluate("danState.photos.length") == 0 and page.errors == []


def test_refused_camera_and_broken_model_say_why(browser, site) -> None:
    plain = StaticServer(site, isolated=False)  # no COOP/COEP: no WASM threads, and the page says so
    try:
        page = browser.new_page()
        page.add_init_script(
            "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'))"
        )
        page.goto(plain.url + "?nosw=1")
        _wait(page, "danState.ready || danState.error", 120)
        assert page.evaluate("danState.backend") == "WASM SIMD, 1 thread"
        assert "no WASM threads: the page is not cross-origin isolated" in page.inner_text("#model")
        page.click("#camera")
        _wait(page, "danState.error !== null")
        assert page.inner_text("#status").startswith("The camera was refused: allow it in the browser's site settings")
        broken = browser.new_page()
        broken.route("**/model.onnx", lambda route: route.fulfill(status=200, body=b"not an onnx model"))
        broken.goto(plain.url + "?nosw=1")
        _wait(broken, "danState.error !== null", 120)
        status = broken.inner_text("#status")
        assert status.startswith("The model could not start: the model file (model.onnx) failed to load"), status
        assert broken.evaluate("1 + 1") == 2  # the tab still answers
    finally:
        plain.close()


@pytest.mark.slow
def test_int8_page_agrees_with_dan_predict(browser, ort_dir, tmp_path) -> None:
    """The int8 export (``dan export --web --int8``) in the page and in ``dan predict``: the figure is printed."""
    from dan.cli.export import main

    ckpt = dan.save_model(_model(64), tmp_path / "tiny.pt")
    assert main(["--checkpoint", str(ckpt), "--web", str(tmp_path / "site"), "--int8"]) == 0
    srv = StaticServer(tmp_path / "site")
    try:
        page = _open(browser, srv.url + "?nosw=1")
        assert "int8" in page.inner_text("#model")
        predictor, agreement = _predictor(tmp_path / "site"), Agreement()
        for n, photo in enumerate(_photos(tmp_path), 1):
            page.set_input_files("#upload", str(photo))
            _wait(page, f"danState.photos.length >= {n} || danState.error", 120)
            agreement.add(page.evaluate(f"danState.photos[{n - 1}].faces"), predictor.predict(photo), photo.name)
        print(agreement.report("photos, int8"))
        assert agreement.max_box <= 2 and agreement.same_top1 >= 0.99 * agreement.faces
        assert agreement.max_prob <= 0.01, agreement.report("photos, int8")
    finally:
        srv.close()


def test_second_visit_works_offline(browser, site) -> None:
    """The service worker keeps the page, the model and the runtime: with the server gone, the page still starts."""
    srv = StaticServer(site)
    context = browser.new_context()
    try:
        first = context.new_page()
        first.goto(srv.url)
        _wait(first, "danState.ready || danState.error", 120)
        _wait(first, "navigator.serviceWorker.controller !== null || danState.error", 60)
        cached = """async () => { const urls = [];
            for (const name of await caches.keys())
                for (const r of await (await caches.open(name)).keys()) urls.push(r.url);
            return urls; }"""
        deadline = time.monotonic() + 60
        while not any(url.endswith("/ort/ort-wasm-simd-threaded.wasm") for url in first.evaluate(cached)):
            assert time.monotonic() < deadline, first.evaluate(cached)
            time.sleep(0.2)
        assert any(url.endswith("/model.onnx") for url in first.evaluate(cached))
    finally:
        srv.close()
    try:
        second = context.new_page()
        second.goto(srv.url)
        _wait(second, "danState.ready || danState.error", 120)
        assert second.evaluate("danState.error") is None, second.evaluate("danState.error")
        assert second.evaluate("danState.backend").startswith("WASM SIMD")
    finally:
        context.close()
