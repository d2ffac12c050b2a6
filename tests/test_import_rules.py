"""The import rules of docs/architecture.md, checked on every import statement.

Walks each module of our packages with `ast`: imports at module level and inside
functions alike (a lazy import is still a dependency), but not `importlib` calls by
string. `tests/service/test_import_boundary.py` checks what importing `service.app` loads
at run time; this checks what the code may depend on at all.
"""

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGES = ("trainer", "config", "store", "service", "workers", "dgpo", "migrations")
ML_LIBRARIES = ("torch", "transformers", "vllm")

MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "trainer": ("trainer",),
    "config": ("config", "trainer"),
    "store": ("config", "store", "trainer"),
    "service": ("config", "store", "service", "trainer"),
    "workers": ("config", "store", "trainer", "workers"),
    "migrations": ("config", "store", "migrations"),
    "dgpo": PACKAGES,
}
"""Which of our packages each package may import: the arrows of the layer diagram."""

TORCH_FREE_TRAINER = {
    "trainer.spec": "the job specs: one schema for the API, the CLIs and the trainer",
    "trainer.results": "eval results and the comparison model the API returns",
    "trainer.evaluation.compare": "store/evals.py: the verdict of a paired comparison",
    "trainer.statistics": "store/evals.py and service/study_report.py: bootstrap, CIs, Holm",
    "trainer.extras": "config/spec_policy.py: which optional extras are installed",
    "trainer.data.model_info": "config/spec_policy.py: a model's own config.json and positions",
}
"""The only trainer modules `config/`, `store/` and `service/` may import, and why (each
is checked to import no ML library)."""

TRAINER_STAGES: tuple[tuple[str, ...], ...] = (
    ("spec", "results"),
    ("statistics", "data", "rewards", "losses", "reporting", "precision", "devices"),
    ("engines", "extras", "benchmarks"),
    ("distributed",),
    ("checkpoints",),
    ("evaluation",),
    ("rl",),
    ("cli", "supervised"),
    ("supervised_spare",),
)
"""The trainer's parts (sub-packages and top-level modules), lowest first: a part imports
only parts of earlier stages (and itself), so no two parts import each other. The RL loop
(`rl`) sits on rollout engines, the rank group and checkpoints; the CLIs on everything."""

HTTP_FREE = ("fastapi", "starlette", "uvicorn")
SERVICE_SQLALCHEMY = ("sqlalchemy.orm", "sqlalchemy.exc")
"""`service/` holds no query: from SQLAlchemy it takes only the `Session` type it passes to
`store/` and the errors it maps to HTTP answers."""


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


def _package(module: str) -> str:
    return module.partition(".")[0]


def _trainer_part(module: str) -> str | None:
    """`rl` for `trainer.rl.loop`, `precision` for `trainer.precision`; None outside."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "trainer" else None


def _stage(part: str) -> int:
    found = [i for i, stage in enumerate(TRAINER_STAGES) if part in stage]
    assert found, f"trainer/{part} is in no stage of TRAINER_STAGES: add it where it belongs"
    return found[0]


def violations(imports: list[Import]) -> list[str]:
    """Every import that breaks a rule, as a readable line."""
    found = []
    for imp in imports:
        package, target = _package(imp.module), _package(imp.target)
        if target in PACKAGES and target not in MAY_IMPORT[package]:
            allowed = ", ".join(f"{p}/" for p in MAY_IMPORT[package])
            found.append(f"{imp}: {package}/ imports only {allowed} of ours")
        if package == "dgpo":
            continue
        part, target_part = _trainer_part(imp.module), _trainer_part(imp.target)
        if part and target_part and part != target_part and _stage(target_part) >= _stage(part):
            found.append(f"{imp}: trainer/{part} may not import trainer/{target_part} (stages)")
        if package not in ("trainer", "workers") and _within(imp.target, ML_LIBRARIES):
            found.append(f"{imp}: only trainer/ and workers/ import torch, transformers or vllm")
        if (
            package in ("config", "store", "service")
            and target == "trainer"
            and not _within(imp.target, TORCH_FREE_TRAINER)
        ):
            found.append(f"{imp}: {package}/ imports only torch-free trainer modules")
        if package in ("config", "store", "workers") and _within(imp.target, HTTP_FREE):
            found.append(f"{imp}: only service/ speaks HTTP")
        sqlalchemy = _within(imp.target, ("sqlalchemy",))
        if package == "service" and sqlalchemy and not _within(imp.target, SERVICE_SQLALCHEMY):
            found.append(f"{imp}: service/ runs no query; queries live in store/")
        if package == "workers" and sqlalchemy:
            found.append(f"{imp}: workers/ runs no query; queries live in store/")
    return list(dict.fromkeys(found)) + _cycles(imports)


def _cycles(imports: list[Import]) -> list[str]:
    """Import cycles among our modules, module-level imports only."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.top_level and imp.target in MODULES.keys() - {imp.module}:
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
    return [f"import cycle: {cycle}" for cycle in cycles]


def test_every_import_follows_the_layer_rules():
    imports = _all_imports()
    assert len({imp.module for imp in imports}) > 100, "the walk found too few modules"
    assert violations(imports) == []


def test_each_torch_free_trainer_module_is_used_and_torch_free():
    """An entry nobody needs any more is removed, and each really loads no ML library."""
    used = {
        root
        for imp in _all_imports()
        if _package(imp.module) in ("config", "store", "service")
        for root in TORCH_FREE_TRAINER
        if _within(imp.target, (root,))
    }
    assert used == set(TORCH_FREE_TRAINER)
    modules = ", ".join(TORCH_FREE_TRAINER)
    code = f"import sys, {modules}; print(sorted(m for m in {ML_LIBRARIES!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]"


def test_every_trainer_part_has_a_stage():
    parts = {_trainer_part(m) for m in MODULES} - {None, "__init__"}
    staged = [p for stage in TRAINER_STAGES for p in stage]
    assert sorted(staged) == sorted(set(staged)) == sorted(parts)


@pytest.mark.parametrize(
    ("module", "source", "rule"),
    [
        ("trainer.rl.loop", "from store.models import Job", "trainer/ imports only trainer/"),
        ("trainer.rl.loop", "def f():\n    import workers.tasks", "trainer/ imports only"),
        ("store.jobs", "def f():\n    import torch", "only trainer/ and workers/ import torch"),
        ("store.jobs", "from service.schemas import JobOut", "store/ imports only"),
        ("store.jobs", "from fastapi import HTTPException", "only service/ speaks HTTP"),
        ("store.jobs", "from trainer.rl.loop import train", "torch-free trainer modules"),
        ("config.settings", "from store.db import get_engine", "config/ imports only"),
        ("service.intake", "from workers.leases import claim", "service/ imports only"),
        ("service.intake", "from trainer import losses", "torch-free trainer modules"),
        ("service.intake", "from sqlalchemy import select", "service/ runs no query"),
        ("workers.tasks", "from service.app import create_app", "workers/ imports only"),
        ("workers.tasks", "from sqlalchemy import update", "workers/ runs no query"),
        ("migrations.env", "from service.app import create_app", "migrations/ imports only"),
        ("trainer.rl.batch", "from trainer.rl.update import policy_update", "import cycle"),
        ("trainer.engines.hf", "def f():\n    import trainer.rl.batch", "(stages)"),
        ("trainer.losses.base", "from trainer.rewards import registry", "(stages)"),
        ("trainer.spec.base", "from .. import spec", "import cycle"),
        ("store.models", "from store.jobs import get_job", "import cycle"),
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
