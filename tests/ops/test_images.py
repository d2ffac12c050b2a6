"""Each Docker image's file set is a package whose every entry point imports.

Docker cannot run on the CI machine, so each Dockerfile is replayed here: its COPY lines
are applied to an empty folder (the image's WORKDIR), a wheel is built from exactly that
folder, and the wheel is unpacked into a site folder. A clean interpreter (`python -S`:
no `.pth` files, so not the editable install of this checkout) whose path holds only
that site folder and the environment's third-party packages then imports every command
the images and their workers run, and runs the compose `migrate` service's
`alembic upgrade head` from the WORKDIR, as the image does, against a real Postgres.
"""

import json
import secrets
import shlex
import site
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import PG_ADMIN_DSN, TEST_DB, TEST_DB_URL, ensure_postgres

ROOT = Path(__file__).resolve().parents[2]
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation")
DOCKERFILES = ("docker/Dockerfile.cpu", "docker/Dockerfile.cuda")
RUN_AS_MODULE = ("trainer.supervised", "trainer.supervised_spare", "trainer.rewards.grading")
"""What workers start with `python -m` (workers/child.py, workers/spare_child.py,
trainer/rewards/grading.py)."""
ASGI_AND_CELERY = ("service.app:app", "workers.celery_app:app")
"""uvicorn's app (compose `api`) and celery's `-A` app (workers/cli.py)."""


@dataclass(frozen=True)
class Image:
    workdir: Path
    site: Path


def _copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY line, flags (`--chown=...`) left out."""
    copies = []
    for line in (ROOT / dockerfile).read_text().splitlines():
        if line.startswith("COPY "):
            words = [w for w in shlex.split(line)[1:] if not w.startswith("--")]
            copies.append((words[:-1], words[-1]))
    return copies


def _replay_copies(dockerfile: str, workdir: Path) -> None:
    """Docker's rules for the forms used: a folder's contents go to the destination; with
    several sources (or a destination ending in /) each goes inside the destination."""
    for sources, dest in _copies(dockerfile):
        target = workdir / dest
        for source in sources:
            path = ROOT / source
            into = target / path.name if len(sources) > 1 or dest.endswith("/") else target
            if path.is_dir():
                into.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", "-r", f"{path}/.", str(into)], check=True)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                into.write_bytes(path.read_bytes())


@pytest.fixture
def empty_database() -> Iterator[str]:
    """A database of its own, dropped afterwards (the name keeps conftest's stale-run rule)."""
    ensure_postgres()
    name = f"{TEST_DB}_image_{secrets.token_hex(2)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield TEST_DB_URL.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=DOCKERFILES)
def image(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Image:
    root = tmp_path_factory.mktemp(Path(request.param).name)
    workdir, wheels, site_dir = root / "app", root / "wheels", root / "site"
    workdir.mkdir()
    _replay_copies(request.param, workdir)
    subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(wheels), str(workdir)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("dgpo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site_dir)
    return Image(workdir, site_dir)


def _run_clean(
    image: Image, code: str, database_url: str = "postgresql+psycopg://dgpo@postgres:5432/dgpo"
) -> subprocess.CompletedProcess[str]:
    path = [str(image.site), *site.getsitepackages()]
    return subprocess.run(
        [sys.executable, "-S", "-c", f"import sys; sys.path[:1] = {path!r}\n{code}"],
        cwd=image.workdir,
        env={
            "PATH": "/usr/bin:/bin",
            "DGPO_HOME": str(image.workdir / "home"),
            # compose's x-app-env; only the migration connects
            "DGPO_DATABASE_URL": database_url,
            "DGPO_BROKER_URL": "redis://redis:6379/0",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_entry_point_imports_from_the_package_the_image_builds(image: Image) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plugins = project["entry-points"]["vllm.general_plugins"]  # run in vLLM's processes
    targets = [*project["scripts"].values(), *plugins.values(), *ASGI_AND_CELERY]
    code = f"""
import importlib, json
for target in {targets!r}:
    module, attr = target.split(":")
    getattr(importlib.import_module(module), attr)
for module in {list(RUN_AS_MODULE)!r}:
    importlib.import_module(module)
ours = {{m.__name__.split(".")[0]: m.__file__ for m in list(sys.modules.values())
         if m.__name__.split(".")[0] in {sorted(_packages())!r} and getattr(m, "__file__", None)}}
print(json.dumps(ours))
"""
    run = _run_clean(image, code)
    assert run.returncode == 0, run.stderr[-3000:]
    origins = json.loads(run.stdout.splitlines()[-1])
    # `migrations` is not imported but read by Alembic from files: the test below.
    assert set(origins) == _packages() - {"migrations"}, "a package is not imported at all"
    assert all(Path(f).is_relative_to(image.site) for f in origins.values()), origins


def test_migrations_run_from_the_image_workdir(image: Image, empty_database: str) -> None:
    """The compose `migrate` service (`alembic upgrade head`), which every other service
    waits for, against an empty database."""
    run = _run_clean(
        image,
        "from alembic.config import main; main(argv=['upgrade', 'head'])",
        database_url=empty_database,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with psycopg.connect(empty_database.replace("+psycopg", "")) as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == _head()


def _packages() -> set[str]:
    """Top-level packages pyproject.toml ships (`include = ["trainer*", ...]`)."""
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {pattern.rstrip("*") for pattern in find["packages"]["find"]["include"]}


def _head() -> str:
    from alembic.script import ScriptDirectory

    from tests.conftest import alembic_config

    return str(ScriptDirectory.from_config(alembic_config(TEST_DB_URL)).get_current_head())
