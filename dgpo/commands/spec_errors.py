"""Spec-file errors a person can act on: `file:line: field.path: message`, one per line.

Pydantic's own text names internal validators (`tagged-union[function-after[...]]`) and
PyYAML's names `<unicode string>`; both are rewritten against the file the user wrote. An
unknown key also gets its close match (`lr: ... (did you mean optim.lr?)`).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError


class SpecFileError(Exception):
    """A spec file that does not parse or validate; `lines` say where and why."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def read_yaml(path: Path) -> Any:
    """The file's YAML data; a syntax error becomes `file:line:column: problem`."""
    text = path.read_text()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        detail = f"{problem} ({context})" if context else problem
        raise SpecFileError([f"{where}: YAML syntax error: {detail}"]) from exc


def load_job_spec(path: Path, assignments: Sequence[str] = ()) -> Any:
    """The validated `TrainJobRequest` / `EvalJobRequest` in `path` with the command line's
    `KEY=VALUE` overrides set (checked against the spec's fields as a study's arms are), or
    a SpecFileError."""
    from trainer.spec.jobs import JOB_REQUEST_ADAPTER, EvalJobRequest, TrainJobRequest

    data = read_yaml(path)
    if assignments:
        model = EvalJobRequest if isinstance(data, dict) and data.get("kind") == "eval" else None
        data = with_overrides(data, model or TrainJobRequest, assignments)
    try:
        return JOB_REQUEST_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise SpecFileError(validation_lines(path, exc)) from exc


def with_overrides(data: Any, model: type, assignments: Sequence[str]) -> dict[str, Any]:
    """`data` with `KEY=VALUE` overrides applied (`trainer.spec.overrides`); an unknown
    field or a malformed argument is a SpecFileError naming the argument."""
    from trainer.spec import overrides

    if not isinstance(data, dict):
        raise SpecFileError(["the spec file must hold a mapping to override fields of"])
    try:
        return overrides.apply(model, data, overrides.parse_assignments(list(assignments)))
    except (overrides.UnknownPath, ValueError, yaml.YAMLError) as exc:
        raise SpecFileError([f"override: {exc}"]) from exc


def validation_lines(path: Path, exc: ValidationError) -> list[str]:
    """One `file:line: field.path: message` per error, the line of the deepest key found."""
    from trainer.spec.jobs import JobRequest
    from trainer.spec.keys import did_you_mean

    try:
        root = yaml.compose(path.read_text())
    except yaml.YAMLError:
        root = None
    lines = []
    for error in exc.errors():
        loc = _user_loc(error["loc"])
        line = _line_of(root, loc)
        where = f"{path}:{line}" if line else str(path)
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message += did_you_mean(JobRequest, (*error["loc"][:1], *loc))
        lines.append(f"{where}: {field}: {message}")
    return lines


def _user_loc(loc: Sequence[int | str]) -> list[int | str]:
    """The field path without the union's tags (`train`, `function-after[...]`)."""
    parts = list(loc)
    if parts and parts[0] in ("train", "eval"):
        parts = parts[1:]
    return [p for p in parts if not (isinstance(p, str) and "[" in p)]


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node along `loc` (the file's own structure)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = _child(node, part)
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line


def _child(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value if isinstance(value, yaml.CollectionNode) else key
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None
