"""``dan serve``: a live webcam page and an HTTP API on one model.

Usage::

    dan serve --checkpoint rafdb                         # http://127.0.0.1:8000/ (Ctrl-C stops)
    dan serve --checkpoint dan.onnx --port 9000 --token s3cret

It listens on 127.0.0.1 unless ``--host`` says otherwise (and then warns that other machines can
reach it); from a laptop, ``ssh -L 8000:localhost:8000 HOST`` and open http://localhost:8000/.
``--port 0`` takes a free port; the address is printed once the server accepts connections. Needs
the ``serve`` extra (``pip install 'dan-fer[serve]'``). Nothing heavy is imported until the options are
parsed, so ``dan serve --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import os
import re
import socket
import sys
from typing import TYPE_CHECKING
from urllib.parse import quote

from dan.cli.options import add_model_and_detector_options, predictor_from_args
from dan.errors import DanError

if TYPE_CHECKING:
    from starlette.types import ASGIApp

__all__ = ["build_parser", "exposure_warning", "main"]

_NEEDS = ("fastapi", "uvicorn", "websockets", "multipart")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``dan serve``."""
    p = argparse.ArgumentParser(
        prog="dan serve", description="Serve a live webcam page and an HTTP API that label facial expressions."
    )
    add_model_and_detector_options(p, whole="image", detect_size=640)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 takes a free one)")
    p.add_argument(
        "--token",
        default=os.environ.get("DAN_SERVE_TOKEN") or None,
        help="require this token on every request (default: $DAN_SERVE_TOKEN; none: open to whoever can connect)",
    )
    p.add_argument("--max-upload-mb", type=float, default=10.0, help="largest upload or live frame in MB (default 10)")
    p.add_argument(
        "--max-pixels",
        type=int,
        help="largest image in pixels, read from its header before decoding (default 50000000; 0: no limit)",
    )
    p.add_argument(
        "--smoothing", type=float, default=0.6, help="weight of the past in a live face's probabilities (default 0.6)"
    )
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: the runtime's own choice)")
    p.add_argument(
        "--web",
        metavar="DIR",
        help="also serve the page dan export --web wrote at /web/, cross-origin isolated (COOP/COEP headers): the "
        "model runs in the visitor's browser; its files are public (--token guards the API only)",
    )
    return p


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, so a port in use is a clear error before the model loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as err:
        raise DanError(f"--host {host}: cannot resolve this address ({err.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise DanError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.set_inheritable(True)
    return sock


def exposure_warning(address: str, host: str, token: str | None) -> str | None:
    """The one-line warning for a server bound to ``address`` that other machines can reach, else None."""
    if ipaddress.ip_address(address).is_loopback:
        return None
    reach = "; only requests with the token are served" if token else " and use the model (set --token)"
    return f"dan serve: warning: listening on {host}, not this machine only: other machines can reach it{reach}"


def _url(sock: socket.socket, host: str) -> str:
    address, port = sock.getsockname()[:2]
    shown = host if host not in ("0.0.0.0", "::", "") else socket.gethostname()
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def main(argv: list[str]) -> int:
    """Run ``dan serve`` until Ctrl-C; returns 0."""
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise DanError(f"--port must be in 0..65535, got {args.port}")
    if args.max_upload_mb <= 0:
        raise DanError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")
    if args.max_pixels is not None and args.max_pixels < 0:
        raise DanError(f"--max-pixels must be 0 (no limit) or positive, got {args.max_pixels}")
    if not 0.0 <= args.smoothing < 1.0:
        raise DanError(f"--smoothing must be in [0, 1), got {args.smoothing}")
    if args.token is not None and not re.fullmatch(r"[\x21-\x7e]{8,}", args.token):
        raise DanError("--token must be at least 8 printable ASCII characters without spaces")
    missing = [name for name in _NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise DanError(f"dan serve needs the serve extra (missing: {', '.join(missing)}): pip install 'dan-fer[serve]'")
    if args.web is not None:  # before the model is loaded
        from dan.serve.web import page_folder

        page_folder(args.web)
    import uvicorn

    from dan.opencv import DEFAULT_MAX_PIXELS
    from dan.serve import create_app

    # the event loop waits for the GIL after every socket call; threads running Python (a hostile image's
    # checks) hold it for up to the switch interval each time: 1 ms instead of 5 keeps /health fast
    sys.setswitchinterval(0.001)
    sock = _bind(args.host, args.port)
    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else (args.max_pixels or None)
    max_bytes = int(args.max_upload_mb * 1024 * 1024)
    haar = {"scale_factor": 1.2, "min_face": 48}  # as dan demo: about twice as fast on live frames
    predictor = predictor_from_args(args, detector_options=haar if args.detector == "haar" else None)
    api = create_app(
        predictor, token=args.token, max_upload_bytes=max_bytes, max_pixels=max_pixels, smoothing=args.smoothing
    )
    app: ASGIApp = api
    if args.web is not None:
        from dan.serve.web import with_web_page

        app = with_web_page(api, args.web)
    warning = exposure_warning(sock.getsockname()[0], args.host, args.token)
    if warning:
        print(warning, file=sys.stderr)
    query = f"?token={quote(args.token, safe='')}" if args.token else ""
    url, schema = _url(sock, args.host) + query, f"/openapi.json{query}"

    class Server(uvicorn.Server):
        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if not self.should_exit:
                print(f"dan serve: open {url}  (API schema: {schema}; Ctrl-C stops)", file=sys.stderr, flush=True)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,  # its lines would carry ?token= in the clear
        ws_max_size=max_bytes + 8192,  # a larger WebSocket message closes that connection (1009)
        ws_per_message_deflate=False,  # frames are JPEGs: compressing them costs both ends CPU for nothing
        limit_concurrency=128,  # connections and requests at once; more are answered 503
        lifespan="off",
        timeout_keep_alive=30,
    )
    Server(config).run(sockets=[sock])
    return 0
