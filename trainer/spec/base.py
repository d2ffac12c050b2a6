"""Base model for every spec section: unknown keys are errors, not silently dropped, no
float is NaN or infinite (JSON has no such numbers; stored, they come back as null), no
boolean stands for a number (pydantic's lax mode reads `lr: true` as 1.0), and no string
holds a NUL (Postgres text cannot: one such row made a whole group commit retry row by
row, and the 422 echoed Postgres's error)."""

import types
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

BOOL_FOR_NUMBER = PydanticCustomError(
    "bool_for_number", "Input should be a number, not a boolean; give the number itself"
)

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

    @model_validator(mode="wrap")
    @classmethod
    def _no_bool_for_numbers(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Strict where a number is expected, lax elsewhere: YAML reads `lr: 1e-5` (no dot)
        as the string "1e-5", which must stay a number. (A model validator: a field
        validator on every field would also wrap `kind`, which pydantic forbids on a
        union's discriminator.)"""
        if isinstance(data, dict):
            bad = [
                InitErrorDetails(type=BOOL_FOR_NUMBER, loc=(name, *loc), input=True)
                for name, field in cls.model_fields.items()
                if name in data
                for loc in _bools_for_numbers(field.annotation, data[name])
            ]
            if bad:
                raise ValidationError.from_exception_data(cls.__name__, bad)
        return handler(data)

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


def _bools_for_numbers(annotation: Any, value: Any) -> Iterator[tuple[int | str, ...]]:
    """Where in `value` a boolean stands where `annotation` takes numbers and no boolean
    (in lists and dict values too; nested spec models check their own fields)."""
    if isinstance(value, bool):
        accepted = _scalars(annotation)
        if accepted & {int, float} and not accepted & {bool, Any}:
            yield ()
        return
    members = _members(annotation)
    if isinstance(value, list | tuple):
        items = [get_args(m)[0] for m in members if get_origin(m) in (list, tuple, set, frozenset)]
        if len(items) == 1:
            for i, item in enumerate(value):
                yield from ((i, *loc) for loc in _bools_for_numbers(items[0], item))
    elif isinstance(value, dict):
        values = [get_args(m)[1] for m in members if get_origin(m) is dict]
        if len(values) == 1:
            for key, item in value.items():
                yield from ((key, *loc) for loc in _bools_for_numbers(values[0], item))


def _members(annotation: Any) -> list[Any]:
    """The types of a union (through Annotated), or the annotation itself."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def _scalars(annotation: Any) -> set[Any]:
    """The scalar types an annotation takes (a Literal's by its values' types)."""
    return {
        t
        for m in _members(annotation)
        for t in ({type(v) for v in get_args(m)} if get_origin(m) is Literal else {m})
    }
