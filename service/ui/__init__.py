"""The /ui dashboard router (mounted by `service.app`, which also installs `token_page`
for `TokenNeeded`)."""

from service.ui.routes import TokenNeeded, router, token_page

__all__ = ["TokenNeeded", "router", "token_page"]
