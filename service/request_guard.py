"""Bad input is a 4xx, never a 500 or a stalled event loop.

- A body over `max_body_bytes` is refused with 413 before it is read (by its
  Content-Length), or as soon as a chunked one passes the limit: a flood of large bodies
  costs the event loop next to nothing, and the connection is closed unread.
- A body with more than `VALUES_MAX` JSON values is 413 before anything parses it: every
  spec needs a few hundred, and a 1 MB body of 490,000 nested lists costs 0.1-0.3 s to
  parse, more to validate (FastAPI does both on the event loop), where the count costs a
  millisecond.
- A JSON body holding a lone UTF-16 surrogate (`"\\ud800"`) is 400: no UTF-8 encoder, so
  neither the database nor a response, can carry one.
- A validation error is rendered with every value made JSON-safe (NaN/±Infinity as
  strings, surrogates escaped), each echoed `input` cut to `ECHO_MAX` characters *while*
  it is written (never a walk of the whole value), and at most `ERRORS_MAX` entries, so a
  422 never fails to serialise, never echoes megabytes back, and costs time bounded by
  what it echoes. FastAPI's own handler runs `jsonable_encoder` over every `input` whole.
"""

import json
import math
import re
from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trainer.spec.keys import did_you_mean

ECHO_MAX = 1024
"""Characters of a request value a 422 may echo back (in `input` and `msg`)."""
ERRORS_MAX = 64
"""Error entries a 422 lists (an unknown key each is cheap to send: 80,000 in 870 KB)."""
VALUES_MAX = 10_000
"""JSON values (arrays, objects and their items) a body may hold; specs need hundreds."""
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
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
        if _values_over(bytes(body), VALUES_MAX):
            detail = f"request body holds over {VALUES_MAX} JSON values; a spec needs hundreds"
            await _reject(send, 413, detail)
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
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = getattr(request.scope.get("route"), "body_field", None)
        meant = _close_match(body.field_info.annotation) if body is not None else _no_hint
        return JSONResponse(status_code=422, content={"detail": safe_errors(exc.errors(), meant)})


def _no_hint(_: dict[str, Any]) -> str:
    return ""


def _close_match(body: object) -> Callable[[dict[str, Any]], str]:
    """An unknown key in a body of this annotation gets its close match, as the CLI says
    it (`lr`: did you mean `optim.lr`)."""

    def hint(entry: dict[str, Any]) -> str:
        loc = tuple(entry.get("loc", ()))
        if entry.get("type") != "extra_forbidden" or loc[:1] != ("body",):
            return ""
        return did_you_mean(body, loc[1:])

    return hint


def safe_errors(errors: Any, hint: Callable[[dict[str, Any]], str] = _no_hint) -> list[Any]:
    """Pydantic/FastAPI error entries, JSON-safe, with long echoes cut before encoding;
    `hint` adds to the message of each entry shown (never of those cut)."""
    safe = []
    for entry in islice(errors, ERRORS_MAX):
        value = entry.get("input", _ABSENT)
        rest = {k: v for k, v in entry.items() if k != "input"}
        rest = _plain(jsonable_encoder(rest, custom_encoder={Exception: str}))
        if isinstance(rest.get("msg"), str):
            rest["msg"] += hint(entry)
        if value is not _ABSENT:
            rest["input"] = _echo(value)
        safe.append(rest)
    if len(errors) > ERRORS_MAX:
        more = f"{len(errors) - ERRORS_MAX} more errors not shown; fix these first"
        safe.append({"type": "too_many_errors", "loc": [], "msg": more})
    return safe


_ABSENT = object()


def _echo(value: Any) -> Any:
    """`value` JSON-safe if its JSON text fits `ECHO_MAX`, else that text cut there.

    The text is written piece by piece and stops at the limit: the cost is bounded by
    the echo, not by the value (490,000 nested lists echo in microseconds)."""
    parts, size = [], 0
    for piece in _pieces(value):
        parts.append(piece)
        size += len(piece)
        if size > ECHO_MAX:
            return f"{''.join(parts)[:ECHO_MAX]}... (cut)"
    return _plain(value)


def _pieces(value: Any) -> Iterator[str]:
    """JSON text of `value` in small pieces, lazily (an explicit stack: no recursion)."""
    frames: list[tuple[Iterator[Any], str, bool]] = []
    items, closer, is_dict = iter((value,)), "", False
    first = True
    while True:
        item = next(items, _ABSENT)
        if item is _ABSENT:
            yield closer
            if not frames:
                return
            items, closer, is_dict = frames.pop()
            first = False
            continue
        if not first:
            yield ", "
        first = False
        if is_dict:
            key, item = item
            yield _scalar(str(key)) + ": "
        if isinstance(item, dict | list | tuple):
            frames.append((items, closer, is_dict))
            is_dict = isinstance(item, dict)
            items, closer = iter(item.items() if is_dict else item), "}" if is_dict else "]"
            first = True
            yield "{" if is_dict else "["
        else:
            yield _scalar(item)


def _scalar(value: Any) -> str:
    if isinstance(value, bytes | bytearray):  # a body FastAPI did not parse as JSON
        value = bytes(value[: ECHO_MAX + 1]).decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        value = value[: ECHO_MAX + 1]  # cut before escaping: never encode megabytes
    elif not isinstance(value, int | float | bool | None):
        value = str(value)[: ECHO_MAX + 1]
    return json.dumps(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):  # a body FastAPI did not parse as JSON
        return _plain(bytes(value).decode("utf-8", "backslashreplace"))
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": what was sent, as text
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return text if len(text) <= ECHO_MAX else f"{text[:ECHO_MAX]}... (cut)"
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _plain(str(value))  # anything else JSON cannot hold, as its text


def _values_over(body: bytes, limit: int) -> bool:
    """Whether `body` holds more than `limit` JSON values: counted from its commas and
    brackets, outside strings (stripped only when the raw count is already over)."""

    def count(text: bytes) -> int:
        return text.count(b"[") + text.count(b"{") + text.count(b",")

    if count(body) <= limit:
        return False
    if b"\\" in body:  # escaped quotes: only a parser-grade pattern finds the strings
        return count(_STRING.sub(b'""', body)) > limit
    return count(b"".join(body.split(b'"')[::2])) > limit  # strings sit between quote pairs


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
