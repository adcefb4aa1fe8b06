"""The FastAPI application: the page, the HTTP API, the live WebSocket.

Routes: ``GET /`` (the page), ``POST /v1/predict``, ``GET /v1/model``, ``GET /health``,
``WS /v1/live`` (see :mod:`dan.serve.websocket`), and ``/openapi.json`` (the API's schema). There is no
``/docs`` page: FastAPI's loads Swagger UI's JavaScript from a CDN (a floating version, no integrity
hash, blank offline); open the schema in any OpenAPI viewer instead. Every request first passes
:class:`dan.serve.guard.Guard` (token, WebSocket origin, declared body size). Uploads are handled a
bounded number at a time (``max_uploads``), each body within ``body_timeout``; decoding and the model
run off the event loop, a bounded number of images at a time (:class:`dan.serve.runner.ModelRunner`),
so ``/health`` and new connections are answered at once however busy the model is.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from importlib import resources

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse

from dan import __version__
from dan.errors import DanError
from dan.inference.predictor import Predictor
from dan.opencv import DEFAULT_MAX_PIXELS
from dan.serve.guard import Guard
from dan.serve.runner import ModelRunner
from dan.serve.schemas import ERRORS, Face, Health, Limits, ModelInfo, PredictResponse
from dan.serve.uploads import SUPPORTED_TYPES, ApiError, decode_upload, image_from_request
from dan.serve.websocket import LiveSession

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "create_app", "page_html"]

log = logging.getLogger("dan.serve")
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024

_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        "image/*": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def page_html() -> tuple[str, str]:
    """The page with its script and style inlined, and the Content-Security-Policy that allows exactly them.

    Inlining keeps the page one request (so a token in its URL covers everything it loads) and lets
    the policy forbid every other script, style and origin.
    """
    static = resources.files("dan.serve") / "static"
    html = (static / "index.html").read_text(encoding="utf-8")
    css = (static / "style.css").read_text(encoding="utf-8")
    js = (static / "app.js").read_text(encoding="utf-8")
    html = html.replace('<link rel="stylesheet" href="style.css">', f"<style>{css}</style>")
    html = html.replace('<script src="app.js"></script>', f"<script>{js}</script>")
    policy = (
        f"default-src 'none'; script-src {_sha256(js)}; style-src {_sha256(css)}; img-src 'self' data: blob:; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    return html, policy


def create_app(
    predictor: Predictor,
    *,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    smoothing: float = 0.6,
    max_live: int = 32,
    body_timeout: float = 30.0,
    max_uploads: int = 16,
    decode_threads: int | None = None,
) -> FastAPI:
    """Build the server around one predictor.

    Args:
        predictor: Detector and model, shared by every request and connection.
        token: When set, every request must carry it (``Authorization: Bearer`` or ``?token=``).
        max_upload_bytes: Largest request body or live frame, in bytes (413 above it).
        max_pixels: Largest image, width x height, read from its header before decoding (None: no limit).
        smoothing: Weight of the past in each live track's probabilities, in [0, 1).
        max_live: Live connections served at once (more are closed with code 1013, try again later).
        body_timeout: Seconds an upload's body may take to arrive (408 after that).
        max_uploads: Uploads handled at once, from reading the body to the reply (more wait with their
            body unread): with ``max_upload_bytes`` it bounds the memory bodies take.
        decode_threads: Images decoded at once (default: the CPU cores, at most 4); see
            :class:`dan.serve.runner.ModelRunner`.

    Returns:
        The ASGI application (run it with uvicorn).

    Raises:
        DanError: ``smoothing`` outside [0, 1).
    """
    if not 0.0 <= smoothing < 1.0:
        raise DanError(f"smoothing must be in [0, 1), got {smoothing}")
    runner = ModelRunner(predictor, decode_threads)
    app = FastAPI(
        title="dan",
        version=__version__,
        summary="Facial expression recognition: every face of an image or a live camera labelled.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runner = runner
    app.add_middleware(Guard, token=token, max_body=max_upload_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, err: ApiError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=err.status)

    _add_page_and_info(app, runner, Limits(max_upload_bytes=max_upload_bytes, max_pixels=max_pixels))
    _add_predict(app, runner, max_upload_bytes, max_pixels, body_timeout, max_uploads)
    _add_live(app, runner, max_upload_bytes, max_pixels, smoothing, max_live)
    if token:
        _document_bearer(app)
    return app


def _add_page_and_info(app: FastAPI, runner: ModelRunner, limits: Limits) -> None:
    """``GET /`` (the page, with its content security policy), ``GET /health`` and ``GET /v1/model``."""
    page, policy = page_html()
    predictor = runner.predictor
    backend = predictor.backend
    backend_name = backend.name

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        headers = {
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(page, headers=headers)

    @app.get("/health", response_model=Health, summary="Liveness check", responses={401: ERRORS[401]})
    async def health() -> Health:
        return Health()

    @app.get(
        "/v1/model", response_model=ModelInfo, summary="The model, detector and limits", responses={401: ERRORS[401]}
    )
    async def model() -> ModelInfo:
        return ModelInfo(
            labels=list(predictor.labels),
            preprocessing=predictor.preprocessing.to_dict(),
            backend=str(backend_name),
            detector=predictor.detector.name,
            attention=runner.attention,
            limits=limits,
        )


def _add_predict(
    app: FastAPI, runner: ModelRunner, max_bytes: int, max_pixels: int | None, body_timeout: float, max_uploads: int
) -> None:
    """``POST /v1/predict``: at most ``max_uploads`` bodies held at once, each read within ``body_timeout``."""
    uploading: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        response_model_exclude_none=True,  # valence and arousal only from a model that gives them
        summary="Label every face of an image",
        description=(
            f"Send a {SUPPORTED_TYPES} image as multipart field `file`, or as the raw body with an image "
            "content type. Each face is what `dan predict --output json` writes."
        ),
        responses=ERRORS,
        openapi_extra={"requestBody": _UPLOAD_BODY},
    )
    async def predict(request: Request) -> PredictResponse:
        loop = asyncio.get_running_loop()
        if uploading.get(loop) is None:  # one per event loop (a test may run the app in several)
            uploading.clear()
            uploading[loop] = asyncio.Semaphore(max_uploads)
        async with uploading[loop]:  # the body is held until the reply: bound how many are
            data = await image_from_request(request, max_bytes, body_timeout)
            image, faces = await runner.predict(lambda: decode_upload(data, max_pixels))
        return PredictResponse(width=image.shape[1], height=image.shape[0], faces=[Face(**f.to_dict()) for f in faces])


def _add_live(
    app: FastAPI, runner: ModelRunner, max_bytes: int, max_pixels: int | None, smoothing: float, max_live: int
) -> None:
    """``WS /v1/live``: at most ``max_live`` connections, each a :class:`LiveSession` smoothing with ``smoothing``."""
    open_live = [0]

    @app.websocket("/v1/live")
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        if open_live[0] >= max_live:  # each holds up to two frames: bound the memory all of them hold
            await websocket.close(code=1013, reason=f"server busy: {max_live} live connections already")
            return
        open_live[0] += 1
        try:
            await LiveSession(websocket, runner, max_bytes, max_pixels, smoothing).run()
        finally:
            open_live[0] -= 1


def _document_bearer(app: FastAPI) -> None:
    """Declare the bearer token in the OpenAPI schema, so OpenAPI viewers offer to send it."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    # replacing app.openapi is FastAPI's documented way to extend the schema; its annotations make it a method
    app.openapi = openapi  # type: ignore[method-assign]
