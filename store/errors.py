"""Domain errors: what the store refuses, in words a client can act on.

`service/errors.py` maps each to its HTTP status; workers and CLIs read the message.
"""


class NotFound(Exception):
    """An unknown id (404)."""


Loc = tuple[str | int, ...]


class Unprocessable(Exception):
    """Input that validated but cannot be served (422), answered in the shape FastAPI gives
    validation errors, `{"detail": [{"loc", "msg", "type"}]}`, so clients parse one shape."""

    type = "value_error"

    def __init__(self, message: str, loc: Loc = ("body",)) -> None:
        super().__init__(message)
        self.loc = loc

    def as_detail(self) -> list[dict[str, object]]:
        return [{"loc": list(self.loc), "msg": str(self), "type": self.type}]


class IdempotencyMismatch(Unprocessable):
    """The Idempotency-Key was already used with a different body (422)."""

    type = "idempotency_key_reused"

    def __init__(self, message: str) -> None:
        super().__init__(message, ("header", "Idempotency-Key"))


class BadRequest(Unprocessable):
    """A parameter that parsed but makes no sense, e.g. a malformed cursor (422)."""


class QuotaExceeded(Exception):
    """A principal is at an operator-set limit (429); the message names the limit."""
