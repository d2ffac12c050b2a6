"""Base model for every spec section: unknown keys are errors, not silently dropped, and
no float is NaN or infinite (JSON has no such numbers; stored, they come back as null)."""

from pydantic import BaseModel, ConfigDict

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
