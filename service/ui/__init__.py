"""The /ui dashboard: its pages and its login (mounted by `service.app`, which also installs
`token_page` for `TokenNeeded`)."""

from fastapi import APIRouter

from service.ui import login, routes
from service.ui.login import TokenNeeded
from service.ui.routes import token_page

router = APIRouter()
router.include_router(login.router)
router.include_router(routes.router)

__all__ = ["TokenNeeded", "router", "token_page"]
