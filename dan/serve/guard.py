"""The gate every request passes first: the token, the WebSocket origin, and a declared body size.

A pure ASGI middleware, so it sees HTTP requests and WebSocket handshakes alike, before any route
reads a byte of the body:

- with a token, an HTTP request must carry ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` and a
  WebSocket handshake ``?token=TOKEN`` (browsers cannot set headers on WebSockets); anything else is
  answered 401 with a JSON message (a WebSocket gets the 401 as its handshake response);
- a WebSocket handshake from a page of another origin is refused (403): browsers let any web page
  open a WebSocket to ``localhost``, and the page that drives ``/v1/live`` is this server's own;
- a request whose ``Content-Length`` exceeds the limit is answered 413 at once.
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl, urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Guard"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "token":
            return value
    return None


class Guard:
    """ASGI middleware enforcing the token, the WebSocket origin and the declared body size.

    Args:
        app: The application behind the gate.
        token: The shared secret, or None for an open server.
        max_body: Largest ``Content-Length`` accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, token: str | None, max_body: int) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        offered = []
        auth = _header(scope, b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            offered.append(auth[7:].strip())
        query = _query_token(scope)
        if query is not None:
            offered.append(query)
        return any(hmac.compare_digest(o.encode(), self.token) for o in offered)

    @staticmethod
    def _same_origin(scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:  # not a browser (scripts, tests): nothing to check
            return True
        host = _header(scope, b"host")
        return host is not None and urlsplit(origin).netloc.lower() == host.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or pass on one connection."""
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        refusal: tuple[int, str] | None = None
        if not self._authorised(scope):
            refusal = (401, "missing or wrong token: send 'Authorization: Bearer TOKEN' or add ?token=TOKEN")
        elif kind == "websocket" and not self._same_origin(scope):
            refusal = (403, "WebSocket from another origin: open the page this server serves")
        elif kind == "http":
            declared = _header(scope, b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                refusal = (413, f"request body is larger than the limit of {self.max_body:,} bytes")
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message = refusal
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        response = JSONResponse({"detail": message}, status_code=status, headers=headers)
        if kind == "websocket" and "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
            return
        await response(scope, receive, send)
