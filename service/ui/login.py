"""Signing in to the dashboard: a form that posts the token, answered with a cookie.

A token in a URL (`/ui?token=`) reaches access logs, browser history and proxies; a POST
body reaches none of them. The cookie is HttpOnly (no script reads it), SameSite=Strict
(no other site's request carries it), Secure over https, and sent only to `/ui`.
"""

from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.api.deps import verify_in_own_session
from store.tokens import cached_token

COOKIE = "dgpo_ui_token"
HOME = "/ui"

router = APIRouter(prefix=HOME, tags=["dashboard"], include_in_schema=False)


class TokenNeeded(Exception):
    """No token, or one the database does not know: answered with a page that asks for
    one (`token_page`), since a person in a browser reads it, not a program."""

    def __init__(self, rejected: bool, goes_to: str | None = None) -> None:
        super().__init__("a dashboard token is needed")
        self.rejected, self.goes_to = rejected, goes_to


def token_cookie(raw: str, request: Request) -> str:
    """The `Set-Cookie` value that keeps `raw` for the dashboard's later requests."""
    cookie = f"{COOKIE}={raw}; Path={HOME}; HttpOnly; SameSite=Strict"
    return cookie + "; Secure" if request.url.scheme == "https" else cookie


def next_page(target: str | None) -> str:
    """Where a login goes on to: a dashboard page of this site, else the job list (never
    another site: `//host` and `/\\host` are other sites to a browser)."""
    if target is None or "\\" in target or target.startswith("//"):
        return HOME
    return target if target == HOME or target.startswith((f"{HOME}/", f"{HOME}?")) else HOME


@router.post("/login")
async def login(request: Request) -> Response:
    """The token page's form: a known token gets the cookie and goes on to `next`."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        # Login CSRF: another site's form would sign this browser in as the attacker.
        return HTMLResponse("a login must come from this site", status.HTTP_403_FORBIDDEN)
    form = parse_qs((await request.body()).decode(errors="replace"))
    raw = form.get("token", [""])[0].strip()
    goes_to = next_page(form.get("next", [None])[0])
    known = raw and (cached_token(raw) or await run_in_threadpool(verify_in_own_session, raw))
    if not known:
        raise TokenNeeded(bool(raw), goes_to)
    response = RedirectResponse(goes_to, status.HTTP_303_SEE_OTHER)
    response.headers["Set-Cookie"] = token_cookie(raw, request)
    return response
