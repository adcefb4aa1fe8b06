"""A loopback HTTP server of checkpoint files and a private download cache, for the dan.hub tests.

A test module uses its fixtures with ``pytest_plugins = ["hubserver"]``.
"""

from __future__ import annotations

import dataclasses
import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torchvision

from dan import hub
from dan.models.reference import PlainDAN

__all__ = ["home", "payloads", "server"]


def _saved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.fixture(scope="module")
def payloads() -> dict[str, bytes]:
    """The files the loopback server serves: reference-layout DANs (7 and 8 classes), a torchvision ResNet-18 in
    ``resnet18_msceleb.pth``'s layout, and wrong ones."""
    state = PlainDAN(7, 4).state_dict()
    good7 = _saved({"iter": 21, "model_state_dict": state, "optimizer_state_dict": {}})
    state8 = dict(state)
    for key in ("fc.weight", "fc.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        state8[key] = torch.ones((8, *state[key].shape[1:]))
    good8 = _saved({"iter": 5, "model_state_dict": state8, "optimizer_state_dict": {}})
    torchvision_resnet = torchvision.models.resnet18().state_dict()
    resnet = _saved({"iter": 1, "model_state_dict": torchvision_resnet})
    msceleb = _saved({"state_dict": torchvision_resnet})  # resnet18_msceleb.pth's layout
    html = b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Something went wrong</body></html>"
    return {
        "good7": good7,
        "good8": good8,
        "resnet": resnet,
        "msceleb": msceleb,
        "html": html,
        "fc": state["fc.weight"],
        "conv1": torchvision_resnet["conv1.weight"],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def server(payloads: dict):
    """A loopback HTTP server; ``server.hits[path]`` counts the GET requests per path."""
    routes = {
        "/good7.pth": (200, payloads["good7"], None, 0.0),
        "/other/good7.pth": (200, payloads["good7"], None, 0.0),
        "/slow7.pth": (200, payloads["good7"], None, 0.05),
        "/good8.pth": (200, payloads["good8"], None, 0.0),
        "/resnet.pth": (200, payloads["resnet"], None, 0.0),
        "/msceleb.pth": (200, payloads["msceleb"], None, 0.0),
        "/html.pth": (200, payloads["html"], None, 0.0),
        "/truncated.pth": (200, payloads["good7"][: 1 << 20], len(payloads["good7"]), 0.0),
        "/bad.onnx": (200, b"this is not an onnx graph" * 10, None, 0.0),
    }
    hits: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            with lock:
                hits[self.path] = hits.get(self.path, 0) + 1
            if self.path not in routes:
                self.send_error(404, "Not Found")
                return
            status, body, length, pause = routes[self.path]
            self.send_response(status)
            self.send_header("Content-Type", "text/html" if body.startswith(b"<!") else "application/octet-stream")
            self.send_header("Content-Length", str(length or len(body)))
            self.end_headers()
            try:
                for i in range(0, len(body), 4 << 20):
                    self.wfile.write(body[i : i + (4 << 20)])
                    time.sleep(pause)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    httpd = _Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.hits = hits
    httpd.routes = routes
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server) -> Path:
    """DAN_HOME in tmp_path, every released name (models and backbones) pointed at the loopback server; returns
    the models folder."""
    monkeypatch.setenv("DAN_HOME", str(tmp_path / "home"))
    for name, route in (("rafdb", "/good7.pth"), ("affectnet7", "/good7.pth"), ("affectnet8", "/good8.pth")):
        monkeypatch.setitem(hub.RELEASED, name, dataclasses.replace(hub.RELEASED[name], url=server.base + route))
    msceleb = dataclasses.replace(hub.BACKBONES["msceleb"], url=server.base + "/msceleb.pth")
    monkeypatch.setitem(hub.BACKBONES, "msceleb", msceleb)
    server.hits.clear()
    return tmp_path / "home" / "models"
