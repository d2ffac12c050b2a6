"""What a spec may name: storage, models and datasets only where the operator allows.

A spec is data from whoever holds a submit token; the worker that runs it holds the
database URL and the broker. So a spec never chooses where a job writes: job `<id>`
writes under `<storage_root>/<id>`, and `checkpoint.output_dir` may at most name a
relative sub-path of it, or a URI under one of the operator's `storage_prefixes` (the
job then writes `<uri>/<id>`). Model, dataset and reference-model paths are hub repo ids
or absolute paths under the operator's `data_roots`. The API checks the text at submit
(422 naming the field); the worker checks again against the real file system (symlinks
resolved) before it runs anything, since settings or files may change in between.
"""

import fnmatch
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from trainer.extras import missing_extras
from trainer.spec import EvalSpec, TrainSpec

HUB_ID = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,95}(?:/[A-Za-z0-9](?:[A-Za-z0-9_-]|\.(?!\.)){0,95})?$"
)
"""`name` or `org/name` as the Hugging Face hub spells them: no `..`, no third segment."""
LOCAL_DATA_SUFFIXES = (".jsonl", ".parquet")
"""`trainer.data.prompts.load_rows` reads these from the local file system, never from the hub."""


@dataclass(frozen=True)
class Violation:
    loc: tuple[str, ...]
    msg: str


class SpecRefused(Exception):
    """The spec names something the operator does not allow (422, one entry per field)."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{'.'.join(v.loc)}: {v.msg}" for v in violations))
        self.violations = violations


def check_spec(spec: TrainSpec | EvalSpec, settings: Settings) -> list[Violation]:
    """Every field of a train or eval spec (or job request) that names a place."""
    return (
        check_train(spec, settings) if isinstance(spec, TrainSpec) else check_eval(spec, settings)
    )


def check_train(spec: TrainSpec, settings: Settings) -> list[Violation]:
    found = [
        *_model_source(("model", "path"), spec.model.path, settings),
        *_model_source(("dataset", "path"), spec.dataset.path, settings),
        *_output_dir(spec.checkpoint.output_dir, settings),
        *_hub_push(spec, settings),
    ]
    if spec.algorithm.reference_model is not None:
        loc = ("algorithm", "reference_model")
        found += _model_source(loc, spec.algorithm.reference_model, settings)
    return found


def check_eval(spec: EvalSpec, settings: Settings) -> list[Violation]:
    if spec.model.path is None:  # a checkpoint ref: the worker resolves it from the database
        return []
    return _model_source(("model", "path"), spec.model.path, settings)


def check_model_path(loc: tuple[str, ...], path: str, settings: Settings) -> list[Violation]:
    """A model path given outside a job spec (a schedule's `target.model_path`)."""
    return _model_source(loc, path, settings)


def check_extras(spec: TrainSpec) -> list[Violation]:
    """Optional packages (trackers, dataset formats) the spec needs and this Python lacks:
    the worker's check, and the API's in the embedded mode, which shares its environment."""
    return [Violation(loc, message) for loc, message in missing_extras(spec)]


def raise_if(violations: list[Violation]) -> None:
    if violations:
        raise SpecRefused(violations)


CONTROL_FILES = frozenset({"STOP", "job-spec.yaml", "eval-spec.yaml", "results.json", "reports"})
"""What the supervisor keeps in a job's directory (`workers.supervisor`, `workers.relay`),
besides `attempt-*` logs and heartbeats: no output sub-path may start with one (the
output directory `STOP` made a run stop at once and "succeed" with no step)."""


def job_output_dir(job_id: str, output_dir: str | None, settings: Settings) -> str:
    """Where job `job_id` writes: `<storage_root>/<id>[/<sub-path>]` or `<allowed URI>/<id>`.

    Raises `SpecRefused` for an `output_dir` the submit check would refuse now.
    """
    raise_if(_output_dir(output_dir, settings))
    if output_dir is not None and "://" in output_dir:
        return f"{output_dir.rstrip('/')}/{job_id}"
    assert settings.storage_root is not None
    own = settings.storage_root / job_id
    return str(own / output_dir if output_dir else own)


def check_on_worker(spec: TrainSpec | EvalSpec, settings: Settings) -> None:
    """The submit check again, then against the file system: a local path must stay under
    its root with symlinks resolved, and a hub id must not name a local directory."""
    raise_if(check_spec(spec, settings))
    if isinstance(spec, TrainSpec):
        raise_if(check_extras(spec))
        named = [
            (("model", "path"), spec.model.path),
            (("dataset", "path"), spec.dataset.path),
            (("algorithm", "reference_model"), spec.algorithm.reference_model),
        ]
    else:
        named = [(("model", "path"), spec.model.path)]
    roots = [root.resolve() for root in settings.data_roots]
    violations = []
    for loc, path in named:
        if path is None:
            continue
        if Path(path).is_absolute():
            if not _is_under(Path(path).resolve(), roots):
                violations.append(Violation(loc, "resolves outside the operator's data roots"))
        elif Path(path).exists():
            violations.append(Violation(loc, f"hub id {path!r} names a local path; refused"))
    raise_if(violations)


def _hub_push(spec: TrainSpec, settings: Settings) -> list[Violation]:
    """A push writes with the worker's Hub token: only to namespaces the operator lists."""
    push = spec.checkpoint.push_to_hub
    if push is None or push.repo_id.split("/")[0] in settings.hub_push_namespaces:
        return []
    allowed = settings.hub_push_namespaces
    return [
        Violation(
            ("checkpoint", "push_to_hub", "repo_id"),
            f"may only name a repo in the operator's hub push namespaces {allowed} "
            "(DGPO_HUB_PUSH_NAMESPACES)",
        )
    ]


def _model_source(loc: tuple[str, ...], path: str, settings: Settings) -> list[Violation]:
    if HUB_ID.fullmatch(path) and not path.endswith(LOCAL_DATA_SUFFIXES):
        return []
    if path.startswith("/") and _clean(path) and _is_under(Path(path), settings.data_roots):
        return []
    roots = [str(root) for root in settings.data_roots]
    return [
        Violation(
            loc,
            "must be a Hugging Face repo id (org/name) or an absolute path under one of the "
            f"operator's data roots {roots} (no '..')",
        )
    ]


def _output_dir(output_dir: str | None, settings: Settings) -> list[Violation]:
    loc = ("checkpoint", "output_dir")
    if output_dir is None:
        return []
    if "://" in output_dir or "::" in output_dir:
        prefixes = [p.rstrip("/") + "/" for p in settings.storage_prefixes]
        allowed = (
            "::" not in output_dir
            and any(output_dir.startswith(prefix) for prefix in prefixes)
            and _clean(output_dir.split("://", 1)[1])
        )
        if allowed:
            return []
        return [
            Violation(
                loc,
                f"a URI must lie under one of the operator's storage prefixes {prefixes} "
                "(no '..', no chained '::' URLs); or give a relative sub-path of the job's "
                "own directory, or leave it unset",
            )
        ]
    if output_dir.startswith(("/", "~", "\\")) or not _clean(output_dir):
        return [
            Violation(
                loc,
                "must be a relative sub-path of the job's own directory (no leading '/', "
                "no '..'), or unset: the operator decides where jobs write",
            )
        ]
    first = output_dir.replace("\\", "/").strip("/").split("/")[0]
    if first in CONTROL_FILES or fnmatch.fnmatchcase(first, "attempt-*"):
        return [
            Violation(
                loc,
                f"{first!r} is one of the job's own control files (the stop file, spec, "
                "logs, reports); name another sub-path such as 'checkpoints'",
            )
        ]
    return []


def _clean(path: str) -> bool:
    """No `..`, `.` or empty segments, no NUL or backslash: the text means what it says."""
    segments = path.strip("/").split("/")
    return (
        all(segment not in ("", ".", "..") for segment in segments)
        and "\x00" not in path
        and "\\" not in path
        and posixpath.normpath(path).strip("/") == path.strip("/")
    )


def _is_under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)
