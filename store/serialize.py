"""Fast JSON text for hot paths: orjson, with the standard library for what orjson refuses."""

import json
from typing import Any

import orjson


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON; falls back to `json` for integers beyond 64 bits (a valid spec may
    hold one, and Postgres JSON stores it)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0).decode()
    except TypeError:
        return json.dumps(value, sort_keys=sort_keys, separators=(",", ":"))
