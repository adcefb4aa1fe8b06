"""``dan serve --web DIR``: the page ``dan export --web`` wrote, served at ``/web/`` beside the API.

The page runs the model in the visitor's browser (no frame reaches this server); served here with the
two headers that make it cross-origin isolated, so its WebAssembly runs on several threads:
``Cross-Origin-Opener-Policy: same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``. Its
files are what every visitor downloads anyway (the page, the model, the runtime), so they are public:
``--token`` guards the API, not them.
"""

from __future__ import annotations

from pathlib import Path

from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dan.errors import DanError

__all__ = ["ISOLATION_HEADERS", "page_folder", "with_web_page"]

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "X-Content-Type-Options": "nosniff",
}
PREFIX = "/web"


def page_folder(folder: str | Path) -> Path:
    """``folder``, checked to be a page ``dan export --web`` wrote.

    Raises:
        DanError: It is not (no ``index.html`` and ``model.json``).
    """
    folder = Path(folder)
    if not (folder / "index.html").is_file() or not (folder / "model.json").is_file():
        raise DanError(f"{folder}: not a page folder dan export --web wrote (no index.html and model.json)")
    return folder


def with_web_page(app: ASGIApp, folder: str | Path) -> ASGIApp:
    """``app``, with the static page folder at ``/web/`` (``/web`` redirects there).

    Raises:
        DanError: ``folder`` is not a page ``dan export --web`` wrote.
    """
    files = StaticFiles(directory=page_folder(folder), html=True)
    extra = [(k.lower().encode(), v.encode()) for k, v in ISOLATION_HEADERS.items()]

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await app(scope, receive, send)
            return
        if path == PREFIX:
            await send({"type": "http.response.start", "status": 308, "headers": [(b"location", b"/web/")]})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_isolated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        inner = {**scope, "path": path[len(PREFIX) :], "root_path": scope.get("root_path", "") + PREFIX}
        await files(inner, receive, send_isolated)

    return serve
