"""Bearer tokens: random secrets shown once, stored as sha256, ranked read < submit < admin.

Each token acts for a principal (a user or a team) that owns the jobs and schedules it
creates. Read and submit tokens see only their principal's; admin tokens see everyone's.
"""

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.settings import get_settings
from store.models import DEFAULT_PRINCIPAL, ApiToken, TokenScope, utcnow

SCOPE_RANK = {TokenScope.READ: 0, TokenScope.SUBMIT: 1, TokenScope.ADMIN: 2}


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    scope: TokenScope
    principal: str = DEFAULT_PRINCIPAL

    def allows(self, needed: TokenScope) -> bool:
        return SCOPE_RANK[self.scope] >= SCOPE_RANK[needed]

    @property
    def visible_owner(self) -> str | None:
        """The only owner whose rows this token may see, or None (admin: everyone's)."""
        return None if self.scope == TokenScope.ADMIN else self.principal

    @property
    def sees_hosts(self) -> bool:
        """Worker host names (a job's `lease_owner`) are the operator's: admin tokens only."""
        return self.scope == TokenScope.ADMIN


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    session: Session, name: str, scope: TokenScope | str, principal: str = DEFAULT_PRINCIPAL
) -> str:
    """Store a new token's hash and return the secret (the only time it is visible)."""
    return issue_token(session, name, scope, principal)[1]


def issue_token(
    session: Session, name: str, scope: TokenScope | str, principal: str = DEFAULT_PRINCIPAL
) -> tuple[ApiToken, str]:
    """The stored token row and its secret; commits."""
    settings = get_settings()
    raw = settings.token_prefix + secrets.token_urlsafe(settings.token_bytes)
    row = ApiToken(
        name=name, token_hash=hash_token(raw), scope=TokenScope(scope), principal=principal
    )
    session.add(row)
    session.commit()
    return row, raw


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token row, newest first (the rows hold only each secret's hash)."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def revoke_token(session: Session, name: str) -> int:
    """Revoke every live token called `name`; returns how many were revoked."""
    tokens = session.scalars(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        token.revoked_at = utcnow()
    session.commit()
    _cache.clear()
    return len(tokens)


class _TTLCache:
    """Verified tokens, trusted for `token_cache_s` so hot paths skip a database read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, TokenInfo]] = {}

    def get(self, digest: str) -> TokenInfo | None:
        hit = self._items.get(digest)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, digest: str, info: TokenInfo, ttl: float) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[digest] = (time.monotonic() + ttl, info)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _TTLCache()


def cached_token(raw: str) -> TokenInfo | None:
    """The token if it was verified within `token_cache_s` (no database access)."""
    return _cache.get(hash_token(raw))


def verify_token(session: Session, raw: str) -> TokenInfo | None:
    """The token's identity and scope, or None when unknown or revoked."""
    digest = hash_token(raw)
    if (info := _cache.get(digest)) is not None:
        return info
    row = session.scalar(
        select(ApiToken).where(ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))
    )
    if row is None:
        return None
    info = TokenInfo(row.id, row.name, TokenScope(row.scope), row.principal)
    ttl = get_settings().token_cache_s
    if ttl > 0:
        _cache.put(digest, info, ttl)
    return info
