"""`/tokens`: token management, the routes only an admin token may call."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, status
from pydantic import BaseModel, ConfigDict, Field

from service.api.deps import AdminToken, SessionDep
from store import tokens
from store.errors import NotFound
from store.models import DEFAULT_PRINCIPAL, TokenScope
from store.tokens import issue_token, revoke_token

router = APIRouter(prefix="/tokens", tags=["tokens"])

Name = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00]*$")]


class TokenRequest(BaseModel):
    name: Name
    scope: TokenScope = TokenScope.READ
    principal: Name = DEFAULT_PRINCIPAL
    """The user or team the token acts for; it owns what the token creates."""


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    scope: TokenScope
    principal: str
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    token: str
    """The secret: shown once, only its sha256 is stored."""


@router.get("", response_model=list[TokenOut])
def list_tokens(session: SessionDep, _: AdminToken) -> list[TokenOut]:
    """Every token (never its secret), newest first."""
    return [TokenOut.model_validate(row) for row in tokens.list_tokens(session)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=NewTokenOut)
def create(
    request: Annotated[TokenRequest, Body()], session: SessionDep, _: AdminToken
) -> NewTokenOut:
    """Create a token for a principal; the response is the only time its secret is shown."""
    row, raw = issue_token(session, request.name, request.scope, request.principal)
    return NewTokenOut(**TokenOut.model_validate(row).model_dump(), token=raw)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke(
    name: Annotated[str, Path(max_length=255, pattern=r"^[^\x00]*$")],
    session: SessionDep,
    _: AdminToken,
) -> None:
    """Revoke every live token called `name` (other API processes trust it up to 5 s)."""
    if not revoke_token(session, name):
        raise NotFound(f"no live token named {name!r}")
