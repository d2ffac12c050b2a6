"""The import rules of ../shared/DESIGN.md, checked on every import statement.

Walks each module of `trainer/`, `service/`, `workers/` and `dgpo/` with `ast`: imports at
module level and inside functions alike (a lazy import is still a dependency), but not
`importlib` calls by string. `tests/service/test_import_boundary.py` checks what importing
`service.app` loads at run time; this checks what the code may depend on at all.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("trainer", "service", "workers", "dgpo")
ML_LIBRARIES = ("torch", "transformers", "vllm")

SERVICE_MAY_IMPORT = {
    "trainer.spec": "the job specs: one schema for the API, the CLIs and the trainer",
    # Exceptions to move with issue 16 (torch-free today, but not `trainer.spec`):
    "trainer.extras": "config/spec_policy.py: which optional extras are installed",
    "trainer.results": "store/evals.py: ProblemResult, to compare stored eval results",
    "trainer.evaluation.compare": "store/evals.py: the paired bootstrap and the verdict",
}
"""Trainer modules (and their submodules) `service/` may import, and why."""


@dataclass(frozen=True)
class Import:
    module: str
    """The importing module, e.g. `trainer.rl.update`."""
    target: str
    """The imported module, e.g. `trainer.rl.batch` (`from a import b` names `a.b` if that
    is a module of ours, else `a`)."""
    line: int
    top_level: bool
    """Outside every function body (module level, including `if TYPE_CHECKING:`)."""

    def __str__(self) -> str:
        where = "top level" if self.top_level else "in a function"
        return f"{self.module}:{self.line} imports {self.target} ({where})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }


MODULES = _modules()


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module a `from ... import` reads from (relative ones resolved)."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = _base(module, path, node)
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        yield sub if sub in MODULES else base


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    def visit(node: ast.AST, top_level: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for target in _targets(module, path, child):
                    yield Import(module, target, child.lineno, top_level)
            inside = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from visit(child, top_level and not inside)

    yield from visit(ast.parse(path.read_text(), str(path)), True)


def _all_imports() -> list[Import]:
    return [found for module, path in MODULES.items() for found in _imports_of(module, path)]


def _within(target: str, roots: tuple[str, ...] | set[str]) -> bool:
    return any(target == root or target.startswith(f"{root}.") for root in roots)


def violations(imports: list[Import]) -> list[str]:
    """Every import that breaks a rule, as a readable line."""
    found = []
    for imp in imports:
        if _within(imp.module, ("trainer",)) and _within(
            imp.target, ("service", "workers", "dgpo")
        ):
            found.append(f"{imp}: trainer/ never imports service/, workers/ or dgpo/")
        if _within(imp.module, ("service",)):
            if _within(imp.target, ML_LIBRARIES):
                found.append(f"{imp}: service/ never imports torch, transformers or vllm")
            if _within(imp.target, ("workers", "dgpo")):
                found.append(f"{imp}: service/ never imports workers/ or dgpo/")
            if _within(imp.target, ("trainer",)) and not _within(imp.target, SERVICE_MAY_IMPORT):
                found.append(f"{imp}: service/ imports only trainer.spec from trainer/")
    return found + _trainer_cycles(imports)


def _trainer_cycles(imports: list[Import]) -> list[str]:
    """Import cycles among trainer modules, module-level imports only."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        both_trainer = _within(imp.module, ("trainer",)) and _within(imp.target, ("trainer",))
        if imp.top_level and both_trainer and imp.target in MODULES.keys() - {imp.module}:
            graph.setdefault(imp.module, set()).add(imp.target)
    cycles, done, path = [], set(), []

    def visit(node: str) -> None:
        if node in path:
            cycles.append(" -> ".join([*path[path.index(node) :], node]))
            return
        if node in done:
            return
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            visit(nxt)
        path.pop()
        done.add(node)

    for node in sorted(graph):
        visit(node)
    return [f"import cycle among trainer modules: {cycle}" for cycle in cycles]


def test_every_import_follows_the_layer_rules():
    imports = _all_imports()
    assert len({imp.module for imp in imports}) > 100, "the walk found too few modules"
    assert violations(imports) == []


def test_each_service_exception_is_still_used():
    """An exception nobody needs any more is removed, so the list only shrinks."""
    used = {
        root
        for imp in _all_imports()
        if _within(imp.module, ("service",))
        for root in SERVICE_MAY_IMPORT
        if _within(imp.target, (root,))
    }
    assert used == set(SERVICE_MAY_IMPORT)


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("trainer.rl.loop", "from store.models import Job", "trainer/ never imports"),
        ("trainer.rl.loop", "def f():\n    import workers.tasks", "trainer/ never imports"),
        ("store.jobs", "def f():\n    import torch", "service/ never imports torch"),
        ("store.jobs", "from workers.leases import claim", "service/ never imports workers/"),
        ("store.jobs", "from trainer.rl.loop import train", "service/ imports only trainer.spec"),
        ("store.jobs", "from trainer import losses", "service/ imports only trainer.spec"),
        ("trainer.rl.batch", "from trainer.rl.update import policy_update", "import cycle"),
        ("trainer.spec.base", "from .. import spec", "import cycle"),
    ],
)
def test_a_violating_import_is_caught(module, source, rule):
    """Each rule fires: the real imports plus one in `module` that breaks the rule."""
    added = [
        Import(module, target, 1, top_level=not source.startswith("def"))
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for target in _targets(module, MODULES[module], node)
    ]
    assert any(rule in line for line in violations(_all_imports() + added))
