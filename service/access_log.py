"""The access log never holds a token: uvicorn logs each request line with its query
string, and `/ui?token=...` is how a browser signs in to the dashboard (the page then
moves the token into a cookie, but the line is written already)."""

import logging
import re

_TOKEN = re.compile(r"([?&]token=)[^&\s]*")


class ScrubTokens(logging.Filter):
    """Replaces the value of every `token` query parameter in uvicorn's access records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            client, method, path, version, status = args  # uvicorn's access-log arguments
            record.args = (client, method, _TOKEN.sub(r"\1<redacted>", path), version, status)
        return True


def install() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, ScrubTokens) for f in access.filters):
        access.addFilter(ScrubTokens())
