"""Optional packages a spec needs, found without importing them (torch-free).

A tracker or a dataset format whose package is missing would otherwise fail only after the
model has loaded. `dgpo-train` (and so every worker-run job) checks this first; the API
checks it too in the embedded mode, where it shares the worker's Python environment (a
remote API cannot know what a worker has installed).
"""

from importlib.util import find_spec
from pathlib import Path

from trainer.data.builtins import BUILTIN_DATASETS
from trainer.spec import TrainSpec


def missing_extras(spec: TrainSpec) -> list[tuple[tuple[str, ...], str]]:
    """(field, one-line message) for each optional package the spec needs and lacks."""
    needed = []
    if spec.logging.tensorboard.enabled:
        needed.append((("logging", "tensorboard"), "tensorboard", "tensorboard"))
    if spec.logging.wandb.enabled:
        needed.append((("logging", "wandb"), "wandb", "wandb"))
    suffix = Path(spec.dataset.path).suffix
    if suffix == ".parquet":
        needed.append((("dataset", "path"), "pyarrow", "data"))
    elif suffix != ".jsonl" and spec.dataset.path not in BUILTIN_DATASETS:
        needed.append((("dataset", "path"), "datasets", "data"))
    return [
        (loc, f"needs the {module!r} package, not installed: pip install 'dgpo[{extra}]'")
        for loc, module, extra in needed
        if find_spec(module) is None
    ]
