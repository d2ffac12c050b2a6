"""Partial overrides of a spec: `optim.lr: 1e-5` or `{optim: {lr: 1e-5}}`, checked against
the spec's schema before they are applied.

One implementation serves a study's arms (`POST /studies`) and the CLI's `KEY=VALUE`
arguments (`dgpo jobs submit spec.yaml optim.lr=1e-5`), so a path means the same thing in
both and an unknown one is refused the same way: naming it, not silently adding a key.
"""

import types
import typing
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel


class UnknownPath(ValueError):
    """An override names a field the spec does not have."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


def _section(annotation: Any) -> type[BaseModel] | None:
    """The spec section a field holds (`X`, `X | None`), or None for a leaf value."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if _section(a) is not None]
        return _section(models[0]) if len(models) == 1 else None
    if typing.get_origin(annotation) is typing.Annotated:
        return _section(typing.get_args(annotation)[0])
    return None


def flatten(model: type[BaseModel], overrides: Mapping[str, Any]) -> dict[tuple[str, ...], Any]:
    """Dotted or nested overrides as (field path -> value), each path checked against
    `model`; a nested mapping is descended only where the schema has a section, so a
    dict-valued field (`metadata`, `logging.mlflow.tags`) is set as a whole."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(section: type[BaseModel], prefix: tuple[str, ...], items: Mapping[str, Any]) -> None:
        for key, value in items.items():
            parts = tuple(str(key).split("."))
            current, path = section, prefix
            for i, part in enumerate(parts):
                path = (*path, part)
                field = current.model_fields.get(part)
                if field is None:
                    known = ", ".join(sorted(current.model_fields))
                    raise UnknownPath(path, f"unknown field {'.'.join(path)!r}; known: {known}")
                child = _section(field.annotation)
                if i < len(parts) - 1:
                    if child is None:
                        raise UnknownPath(path, f"{'.'.join(path)!r} has no sub-fields")
                    current = child
                    continue
                if child is not None and isinstance(value, Mapping) and value:
                    walk(child, path, value)
                else:
                    found[path] = value

    walk(model, (), overrides)
    return found


def apply(
    model: type[BaseModel], base: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """`base` (a spec body, plain data) with `overrides` set; paths checked (`flatten`),
    the result not yet validated (the caller validates it and names the arm or argument)."""
    out = _copy(base)
    for path, value in flatten(model, overrides).items():
        node = out
        for part in path[:-1]:
            child = node.get(part)
            node[part] = child = _copy(child) if isinstance(child, Mapping) else {}
            node = child
        node[path[-1]] = value
    return out


def _copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}


def parse_assignments(args: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` command-line arguments as overrides; VALUE is read as YAML, so
    `optim.lr=1e-5` is a float, `seed=3` an int and `algorithm.policy_loss.name=grpo` text."""
    overrides: dict[str, Any] = {}
    for arg in args:
        key, sep, raw = arg.partition("=")
        if not sep or not key:
            raise ValueError(f"override {arg!r} must look like KEY=VALUE (e.g. optim.lr=1e-5)")
        overrides[key] = yaml.safe_load(raw) if raw else ""
    return overrides
