"""The close match for an unknown spec key, so a typo's error says what was meant.

Pydantic's `extra_forbidden` says only "Extra inputs are not permitted". A key that exists
elsewhere in the spec (`lr` at the top for `optim.lr`, `group_size` for
`algorithm.group_size`) or is one edit from a sibling (`optim.lrr`) gets that path.
"""

import difflib
import functools
import types
from collections.abc import Sequence
from typing import Annotated, Union, get_args, get_origin

from pydantic import BaseModel

Path = tuple[str, ...]


@functools.cache
def field_paths(model: type[BaseModel], prefix: Path = ()) -> tuple[Path, ...]:
    """Every field of `model` and of the spec sections nested in it, as dotted paths
    (cached: a 422 may ask for 64 close matches on the event loop)."""
    paths: list[Path] = []
    for name, field in model.model_fields.items():
        paths.append((*prefix, name))
        for section in _models(field.annotation):
            paths += field_paths(section, (*prefix, name))
    return tuple(paths)


def close_key(model: type[BaseModel], loc: Path) -> str | None:
    """The path the unknown key at `loc` most likely meant, or None."""
    parent, key = loc[:-1], loc[-1]
    paths = field_paths(model)
    same_name = sorted((p for p in paths if p[-1] == key), key=len)
    if same_name:
        return ".".join(same_name[0])
    siblings = [p[-1] for p in paths if p[:-1] == parent]
    close = difflib.get_close_matches(key, siblings, n=1, cutoff=0.6)
    return ".".join((*parent, close[0])) if close else None


def did_you_mean(body: object, loc: Sequence[int | str]) -> str:
    """` (did you mean optim.lr?)` for the unknown key at `loc` in a `body` of that
    annotation, or "": a spec model, or a union of them whose `kind` leads `loc` (as in
    pydantic's locations for a discriminated union: `train`, `optim`, `lrr`)."""
    models = _models(body)
    if len(models) > 1:
        models = [m for m in models if loc and _kind_is(m, loc[0])]
        loc = loc[1:]
    if len(models) != 1:
        return ""
    meant = close_key(models[0], tuple(str(part) for part in loc))
    return f" (did you mean {meant}?)" if meant else ""


def _kind_is(model: type[BaseModel], tag: int | str) -> bool:
    kind = model.model_fields.get("kind")
    return kind is not None and tag in get_args(kind.annotation)


def _models(annotation: object) -> list[type[BaseModel]]:
    """The spec sections an annotation holds (`X`, `X | None`; not lists or dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) is Annotated:
        return _models(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return []
