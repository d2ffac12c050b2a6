"""The /ui dashboard router (mounted by `service.app`)."""

from service.ui.routes import router

__all__ = ["router"]
