"""A job's status changes only in `store/lifecycle.py`, where every change is checked and
leaves a `status` event.

Walks each module of `store/`, `service/` and `workers/` with `ast` for what changes a
status: an assignment to `.status` (or `setattr(..., "status", ...)`), and `status` set
by an SQL UPDATE (`update(...).values(status=...)`, a `"status"` key in its parameters,
`text("UPDATE jobs SET status ...")`). A worker registry row has a status of its own: a
value naming `WorkerStatus` is not a job's. Inserting a new (queued) job changes nothing.
"""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("store", "service", "workers")
LIFECYCLE = REPO_ROOT / "store" / "lifecycle.py"
RAW_STATUS_UPDATE = re.compile(r"\bUPDATE\s+jobs\b.*\bSET\b.*\bstatus\b", re.I | re.S)


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def _is_job_status(value: ast.AST) -> bool:
    return "WorkerStatus" not in _names(value)


def _called(node: ast.AST) -> str | None:
    """The name a call calls: `update` for `update(...)` and `sa.update(...)`."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)


def _is_update(expr: ast.AST) -> bool:
    return any(_called(node) == "update" for node in ast.walk(expr))


def _status_items(args: list[ast.expr], keywords: list[ast.keyword]) -> Iterator[ast.AST]:
    """The values given for `status` as a keyword or a dict key, among these arguments."""
    for keyword in keywords:
        if keyword.arg == "status":
            yield keyword.value
    for arg in args:
        for node in ast.walk(arg):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "status":
                        yield value


def status_changes(source: str) -> Iterator[int]:
    """Lines of `source` that change a job's status."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                hit = any(
                    isinstance(t, ast.Attribute) and t.attr == "status" for t in ast.walk(target)
                )
                if hit and node.value is not None and _is_job_status(node.value):
                    yield node.lineno
        elif isinstance(node, ast.Call):
            name, given = _called(node), []
            if name == "setattr" and len(node.args) == 3:
                key = node.args[1]
                if isinstance(key, ast.Constant) and key.value == "status":
                    given = [node.args[2]]
            elif name == "values" and isinstance(node.func, ast.Attribute):
                if _is_update(node.func.value):
                    given = list(_status_items(node.args, node.keywords))
            elif name == "execute" and node.args and _is_update(node.args[0]):
                given = list(_status_items(node.args[1:], []))
            elif name == "text" and node.args:
                sql = node.args[0]
                if isinstance(sql, ast.Constant) and RAW_STATUS_UPDATE.search(str(sql.value)):
                    given = [sql]
            if any(_is_job_status(value) for value in given):
                yield node.lineno


def _modules() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if path != LIFECYCLE
    ]


def test_only_the_lifecycle_changes_a_job_status():
    modules = _modules()
    assert len(modules) > 40, "the walk found too few modules"
    found = [
        f"{path.relative_to(REPO_ROOT)}:{line}"
        for path in modules
        for line in status_changes(path.read_text())
    ]
    assert found == [], "change a job's status through store.lifecycle instead"


def test_the_lifecycle_itself_is_seen_changing_statuses():
    """The walk would notice: the one module allowed to change statuses does."""
    assert list(status_changes(LIFECYCLE.read_text()))


@pytest.mark.parametrize(
    "source",
    [
        "job.status = JobStatus.FAILED",
        "rows[0].status = 'running'",
        "setattr(job, 'status', dst)",
        "session.execute(update(Job).where(Job.id == i).values(status=JobStatus.QUEUED))",
        "sa.update(Job).values({'status': 'failed', 'error': e})",
        "session.execute(update(Job), [{'id': i, 'status': 'cancelled'}])",
        "session.execute(text(\"UPDATE jobs SET error = '', status = 'failed'\"))",
    ],
)
def test_a_status_change_is_caught(source: str) -> None:
    assert list(status_changes(source)) == [1]


@pytest.mark.parametrize(
    "source",
    [
        "worker.status = WorkerStatus.DEAD",
        "update(Worker).values(status=WorkerStatus.DEAD, running_job_ids=[])",
        "insert(Job).values(status=JobStatus.QUEUED)",
        "row = {'id': i, 'status': JobStatus.QUEUED}",
        "select(Job).where(Job.status == JobStatus.QUEUED)",
        "JSONResponse({'status': 'ok'})",
    ],
)
def test_what_changes_no_job_status_passes(source: str) -> None:
    assert list(status_changes(source)) == []
