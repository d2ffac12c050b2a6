"""The close match for an unknown spec key, so a typo's error says what was meant.

Pydantic's `extra_forbidden` says only "Extra inputs are not permitted". A key that exists
elsewhere in the spec (`lr` at the top for `optim.lr`, `group_size` for
`algorithm.group_size`) or is one edit from a sibling (`optim.lrr`) gets that path.
"""

import difflib
import types
from typing import Union, get_args, get_origin

from pydantic import BaseModel

Path = tuple[str, ...]


def field_paths(model: type[BaseModel], prefix: Path = ()) -> list[Path]:
    """Every field of `model` and of the spec sections nested in it, as dotted paths."""
    paths = []
    for name, field in model.model_fields.items():
        paths.append((*prefix, name))
        for section in _models(field.annotation):
            paths += field_paths(section, (*prefix, name))
    return paths


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


def _models(annotation: object) -> list[type[BaseModel]]:
    """The spec sections an annotation holds (`X`, `X | None`; not lists or dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return []
