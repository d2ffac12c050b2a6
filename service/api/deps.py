"""Typed dependencies: a session per request and the caller's token, checked by scope."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from store.db import get_sessionmaker
from store.models import TokenScope
from store.tokens import TokenInfo, cached_token, verify_token


def get_session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class BearerToken(HTTPBearer):
    """The caller's token, verified and checked against `scope`, in one dependency.

    An `HTTPBearer`, so OpenAPI documents the scheme; one dependency where there were
    three (parse, verify, check scope), each of which FastAPI resolves on every request.
    """

    def __init__(self, scope: TokenScope) -> None:
        super().__init__(
            scheme_name="HTTPBearer",
            description="`Authorization: Bearer <token>`",
            auto_error=False,
        )
        self.scope = scope

    async def __call__(self, request: HTTPConnection) -> TokenInfo:  # type: ignore[override]
        credentials = await super().__call__(request)
        if credentials is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token: send `Authorization: Bearer <token>` "
                "(create one with `dgpo token create NAME --scope read|submit|admin`)",
                headers=_CHALLENGE,
            )
        raw = credentials.credentials
        # A cached token costs no thread hop; a miss reads the database.
        token = cached_token(raw) or await run_in_threadpool(verify_in_own_session, raw)
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", headers=_CHALLENGE
            )
        if not token.allows(self.scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"token {token.name!r} has scope {str(token.scope)!r}; "
                f"this needs {str(self.scope)!r} or higher",
            )
        return token


def verify_in_own_session(raw: str) -> TokenInfo | None:
    """The token's info, or None; in a session of its own (for async callers' threads)."""
    with get_sessionmaker()() as session:
        return verify_token(session, raw)


ReadToken = Annotated[TokenInfo, Depends(BearerToken(TokenScope.READ))]
SubmitToken = Annotated[TokenInfo, Depends(BearerToken(TokenScope.SUBMIT))]
AdminToken = Annotated[TokenInfo, Depends(BearerToken(TokenScope.ADMIN))]


IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", min_length=1, max_length=255)
]
"""A client's retry-safe submission key: the same key and body answer the first result."""
REPLAY_HEADER = "Idempotent-Replayed"
"""Set on the answer to a replayed Idempotency-Key."""
