"""What a model says of itself before any worker loads it (torch-free, no hub access).

The API refuses specs that can only fail, and the worker refuses them again before the
model loads: a local model directory that is missing or is not in Hugging Face format
(`from_pretrained` would instead report a bad hub repo id), and a prompt plus response
longer than the model's positions (vLLM refuses `max_model_len` beyond them; the HF
engine runs for minutes past them). Built-in names are answered from the package, local
directories from their `config.json`; hub ids are not looked up (no network at submit).
"""

import json
from pathlib import Path

from trainer.data.builtins import BUILTIN_MODEL_POSITIONS

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length")
"""Where Hugging Face configs keep the context length (Llama/Qwen, GPT-2, a few others)."""


def local_model_problem(path: str) -> str | None:
    """Why the local directory `path` cannot be loaded as a model, or None."""
    directory = Path(path)
    if not directory.is_dir():
        return f"no model directory at {path}"
    if not (directory / "config.json").is_file():
        return f"{path} has no config.json: not a model directory in Hugging Face format"
    return None


def context_length(path: str) -> tuple[int, str] | None:
    """(positions, where that came from) for a built-in name or a local model directory
    (absolute path) with a readable `config.json`; None when it cannot be known here."""
    if path in BUILTIN_MODEL_POSITIONS:
        return BUILTIN_MODEL_POSITIONS[path], "the built-in model's max_position_embeddings"
    if not Path(path).is_absolute():  # a hub id: not looked up
        return None
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    text = config.get("text_config", config) if isinstance(config, dict) else {}
    for key in CONTEXT_KEYS:
        if isinstance(text.get(key), int):
            return text[key], f"{key} in its config.json"
    return None
