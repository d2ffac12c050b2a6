"""Bad input is a 4xx, never a 500 or a stalled event loop.

- A body over `max_body_bytes` is refused with 413 before it is read (by its
  Content-Length), or as soon as a chunked one passes the limit: a flood of large bodies
  costs the event loop next to nothing, and the connection is closed unread.
- A JSON body holding a lone UTF-16 surrogate (`"\\ud800"`) is 400: no UTF-8 encoder, so
  neither the database nor a response, can carry one.
- A validation error is rendered with every value made JSON-safe (NaN/±Infinity as
  strings, surrogates escaped) and each echoed `input` cut to `ECHO_MAX` characters, so a
  422 never fails to serialise and never echoes megabytes back.
"""

import json
import math
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ECHO_MAX = 1024
"""Characters of a request value a 422 may echo back (in `input` and `msg`)."""
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class BodyGuard:
    """Pure ASGI middleware: bounded bodies, no lone surrogates (see the module doc)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await _reject(send, 413, self._too_large())
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _reject(send, 413, self._too_large())
                return
        if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(bytes(body)):
            detail = "the body holds a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode"
            await _reject(send, 400, detail)
            return
        await self.app(scope, _replay(bytes(body), receive), send)

    def _too_large(self) -> str:
        return f"request body over {self.max_bytes} bytes (DGPO_MAX_BODY_BYTES); send less"


def install(app: FastAPI) -> None:
    """Render request validation errors safely (the body guard is added in `create_app`)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": safe_errors(exc.errors())})


def safe_errors(errors: Any) -> list[Any]:
    """Pydantic/FastAPI error entries, JSON-safe, with long echoes cut."""
    safe = []
    for entry in jsonable_encoder(errors, custom_encoder={Exception: str}):
        entry = _plain(entry)
        if "input" in entry:
            text = json.dumps(entry["input"])
            if len(text) > ECHO_MAX:
                entry["input"] = f"{text[:ECHO_MAX]}... ({len(text)} characters, cut)"
        safe.append(entry)
    return safe


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": what was sent, as text
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= ECHO_MAX else f"{text[:ECHO_MAX]}... (cut)"
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _has_lone_surrogate(body: bytes) -> bool:
    try:
        data = json.loads(body)
    except ValueError:
        return False  # not JSON: the route's own parsing answers 422
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the buffered body, then the client's next messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _reject(send: Send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),  # the unread rest of the body is never read
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
