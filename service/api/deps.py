"""Typed dependencies: a session per request and the caller's token, checked by scope."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.auth import TokenInfo, cached_token, verify_token
from service.core.db import get_sessionmaker
from service.models import TokenScope


def get_session() -> Iterator[Session]:
    with get_sessionmaker()() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def current_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenInfo:
    """Async so a cached token costs no thread hop; a cache miss reads the database."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>` "
            "(create one with `dgpo token create NAME --scope read|submit|admin`)",
            headers=_CHALLENGE,
        )
    raw = credentials.credentials
    info = cached_token(raw) or await run_in_threadpool(_verify_in_own_session, raw)
    if info is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked token", headers=_CHALLENGE
        )
    return info


def _verify_in_own_session(raw: str) -> TokenInfo | None:
    with get_sessionmaker()() as session:
        return verify_token(session, raw)


CurrentToken = Annotated[TokenInfo, Depends(current_token)]


def _require(scope: TokenScope):  # type: ignore[no-untyped-def]
    async def check(token: CurrentToken) -> TokenInfo:
        if not token.allows(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"token {token.name!r} has scope {token.scope!r}; this needs {scope!r} or higher",
            )
        return token

    return check


ReadToken = Annotated[TokenInfo, Depends(_require(TokenScope.READ))]
SubmitToken = Annotated[TokenInfo, Depends(_require(TokenScope.SUBMIT))]
AdminToken = Annotated[TokenInfo, Depends(_require(TokenScope.ADMIN))]
