"""What a spec may name: storage, models and datasets only where the operator allows.

A spec is data from whoever holds a submit token; the worker that runs it holds the
database URL and the broker. So a spec never chooses where a job writes: job `<id>`
writes under `<storage_root>/<id>`, and `checkpoint.output_dir` may at most name a
relative sub-path of it, or a URI under one of the operator's `storage_prefixes` (the
job then writes `<uri>/<id>`). Model, dataset and reference-model paths are hub repo ids
X checks the text at submit
(422 naming the field); the worker checks again against the real file system (symlinks
resolved) before it runs anything, since settings or files may change in between.
"""

import fnmatch
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from config.settings import Settings
from trainer.data.model_info import context_length, local_model_problem
from trainer.extras import missing_extras
from trainer.spec import EvalJobRequest, EvalSpec, TrainJobRequest, TrainSpec
from trainer.spec.eval import BenchmarkRef, EvalSet

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
        *_eval_sets(("eval", "benchmarks"), spec.eval.benchmarks, settings),
        *_output_dir(spec.checkpoint.output_dir, settings),
        *_hub_push(spec, settings),
        *_nodes(spec, settings),
    ]
    if spec.algorithm.reference_model is not None:
        loc = ("algorithm", "reference_model")
        found += _model_source(loc, spec.algorithm.reference_model, settings)
    return found


def check_eval(spec: EvalSpec, settings: Settings) -> list[Violation]:
    found = _eval_sets(("benchmarks",), spec.benchmarks, settings) + _nodes(spec, settings)
    if spec.model.path is None:  # a checkpoint ref: the worker resolves it from the database
        return found
    return _model_source(("model", "path"), spec.model.path, settings) + found


def check_model_path(loc: tuple[str, ...], path: str, settings: Settings) -> list[Violation]:
    """A model path given outside a job spec (a schedule's `target.model_path`)."""
    return _model_source(loc, path, settings)


def check_eval_sets(
    loc: tuple[str, ...], refs: Sequence[BenchmarkRef], settings: Settings
) -> list[Violation]:
    """Custom eval sets given outside a job spec (a schedule's `eval.benchmarks`)."""
    return _eval_sets(loc, refs, settings)


def check_extras(spec: TrainSpec | EvalSpec) -> list[Violation]:
    """Optional packages (trackers, dataset formats, vLLM, built-in models) the spec needs and
    this Python lacks: the worker's check, and the API's in the embedded mode, which shares
    it."""
    return [Violation(loc, message) for loc, message in missing_extras(spec)]


def check_model(spec: TrainSpec | EvalSpec, *, on_disk: bool) -> list[Violation]:
    """What the spec's own models rule out: a local model directory that is missing or
    lacks `config.json`, and lengths beyond the model's positions.

    `on_disk`: this process sees the workers' data roots (the worker, the embedded API);
    a remote API checks only built-in names, whose config the package knows.
    """
    if isinstance(spec, TrainSpec):
        named = [(("model", "path"), spec.model.path)]
        if spec.algorithm.reference_model is not None:
            named.append((("algorithm", "reference_model"), spec.algorithm.reference_model))
    else:
        named = [(("model", "path"), spec.model.path)] if spec.model.path else []
    found = [
        Violation(loc, problem)
        for loc, path in named
        if on_disk and Path(path).is_absolute() and (problem := local_model_problem(path))
    ]
    if found or not named:
        return found
    path = named[0][1]
    known = context_length(path) if on_disk or not Path(path).is_absolute() else None
    return _context(spec, known) if known is not None else []


def _context(spec: TrainSpec | EvalSpec, known: tuple[int, str]) -> list[Violation]:
    positions, source = known
    of_model = f"the model's context of {positions} positions ({source})"
    if isinstance(spec, EvalSpec):
        if spec.max_tokens <= positions:
            return []
        return [Violation(("max_tokens",), f"max_tokens ({spec.max_tokens}) exceeds {of_model}")]
    needed = spec.rollout.max_prompt_tokens + spec.rollout.max_response_tokens
    if spec.model.max_context_length is not None or needed <= positions:
        return []  # the spec's own max_context_length overrides the config (checked there)
    return [
        Violation(
            ("rollout", "max_response_tokens"),
            f"rollout.max_prompt_tokens + rollout.max_response_tokens ({needed}) exceeds "
            + of_model,
        )
    ]


def check_envelope(
    request: TrainJobRequest | EvalJobRequest, principal: str, admin: bool, settings: Settings
) -> list[Violation]:
    """The envelope's asks within the operator's limits: `priority` at most the principal's
    `max_priority` (an admin token may ask for any), `resources.preemptible: false` only
    for an admin, `max_attempts` at most the default."""
    found = []
    cap = settings.policy(principal).max_priority
    if request.priority > cap and not admin:
        found.append(
            Violation(
                ("priority",),
                f"principal {principal!r} may submit at most priority {cap} (its max_priority "
                "in DGPO_PRINCIPALS); ask an admin to submit it higher",
            )
        )
    if not request.resources.preemptible and not admin:
        found.append(
            Violation(
                ("resources", "preemptible"),
                "only an admin token may submit a job with preemptible: false; leave it "
                "preemptible or ask an admin to submit it",
            )
        )
    default = settings.default_max_attempts
    if request.max_attempts is not None and request.max_attempts > default:
        found.append(
            Violation(
                ("max_attempts",),
                f"a spec may only lower max_attempts; the operator allows at most {default} "
                "(DGPO_DEFAULT_MAX_ATTEMPTS)",
            )
        )
    return found


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
    raise_if(check_extras(spec))
    if isinstance(spec, TrainSpec):
        named = [
            (("model", "path"), spec.model.path),
            (("dataset", "path"), spec.dataset.path),
            (("algorithm", "reference_model"), spec.algorithm.reference_model),
            *_eval_set_paths(("eval", "benchmarks"), spec.eval.benchmarks),
        ]
    else:
        named = [(("model", "path"), spec.model.path)]
        named += _eval_set_paths(("benchmarks",), spec.benchmarks)
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
    raise_if(check_model(spec, on_disk=True))  # reads only paths the roots hold


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


def _eval_set_paths(
    loc: tuple[str, ...], refs: Sequence[BenchmarkRef]
) -> list[tuple[tuple[str, ...], str]]:
    """(field, path) of each custom eval set among `refs`."""
    return [
        ((*loc, str(index), "path"), ref.path)
        for index, ref in enumerate(refs)
        if isinstance(ref, EvalSet)
    ]


def _eval_sets(
    loc: tuple[str, ...], refs: Sequence[BenchmarkRef], settings: Settings
) -> list[Violation]:
    """A custom eval set is a local JSONL file: under the data roots, as a dataset."""
    return [
        violation
        for field, path in _eval_set_paths(loc, refs)
        for violation in _model_source(field, path, settings)
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


def _nodes(spec: TrainSpec | EvalSpec, settings: Settings) -> list[Violation]:
    """A job spans nodes only as a train job, and only onto storage every node mounts: its
    ranks write their shards of each checkpoint into the one job directory."""
    if spec.resources.nodes == 1:
        return []
    loc = ("resources", "nodes")
    if isinstance(spec, EvalSpec):
        return [Violation(loc, "an eval runs on one node; leave resources.nodes at 1")]
    if "://" in (spec.checkpoint.output_dir or ""):
        why = "a multi-node job writes its sharded checkpoints to a shared file system, not a URI"
        return [Violation(("checkpoint", "output_dir"), why)]
    if settings.storage_shared:
        return []
    return [
        Violation(
            loc,
            f"a job on {spec.resources.nodes} nodes writes checkpoints from every node into "
            f"its directory under {settings.storage_root}, which the operator has not declared "
            "shared (DGPO_STORAGE_SHARED=true: one file system mounted on every worker)",
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
