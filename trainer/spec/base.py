"""Base model for every spec section: unknown keys are errors, not silently dropped, no
float is NaN or infinite (JSON has no such numbers; stored, they come back as null), and
no string holds a NUL (Postgres text cannot: one such row made a whole group commit
retry row by row, and the 422 echoed Postgres's error)."""

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

PATH_MAX = 1024
"""Longest model/dataset path, hub id or output sub-path a spec may give."""
NAME_MAX = 128
"""Longest short name (a field name, split, revision, registry key)."""
TEXT_MAX = 16_384
"""Longest free text (an instruction or system prompt)."""


class SpecModel(BaseModel):
    """A typo in a spec key must fail loudly (422 naming the key), never be ignored."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _holds_nul(value):
            raise ValueError("holds a NUL character (\\u0000), which no text column can store")
        return value


def _holds_nul(value: Any) -> bool:
    """A NUL in a string, or in a key or item of a list or dict (nested models check their own)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return any(_holds_nul(v) for v in value)
    return False
