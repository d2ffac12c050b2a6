"""Prompt data: load (problem, answer) rows, build prompt token ids, serve them in a
resumable order.

The order of epoch e is a permutation drawn from (seed, e) alone, so the whole data
position is one integer (`PromptStream.cursor`) and resuming restores it exactly.
"""

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.spec import DatasetConfig, PromptConfig


@dataclass(frozen=True)
class Example:
    problem: str
    answer: str
    prompt_ids: list[int]


def load_rows(cfg: DatasetConfig) -> list[dict[str, Any]]:
    """Rows of a local .jsonl/.parquet file, a saved `datasets` directory, or a Hugging
    Face hub dataset split."""
    path = Path(cfg.path)
    if path.suffix == ".jsonl":
        if not path.is_file():
            raise FileNotFoundError(f"dataset.path {cfg.path!r} does not exist")
        with path.open() as f:
            rows = [json.loads(line) for line in f if line.strip()]
    elif path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ImportError("reading .parquet needs `pip install 'dgpo[data]'`") from exc
        rows = pq.read_table(path).to_pylist()
    else:
        rows = _hf_rows(cfg)
    missing = [f for f in (cfg.prompt_field, cfg.answer_field) if rows and not _has(rows[0], f)]
    if missing:
        raise KeyError(
            f"dataset rows have no field(s) {missing}; set dataset.prompt_field / "
            f"dataset.answer_field, dotted for nested ones such as `reward_model.ground_truth` "
            f"(available: {sorted(rows[0])})"
        )
    return rows[: cfg.max_samples] if cfg.max_samples else rows


def _hf_rows(cfg: DatasetConfig) -> list[dict[str, Any]]:
    """A directory written by `save_to_disk` (a Dataset, or a DatasetDict and its
    `cfg.split`), else a hub dataset id through `datasets.load_dataset`."""
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            f"dataset.path {cfg.path!r} is not a local .jsonl/.parquet file; loading it "
            "as a Hugging Face dataset needs `pip install 'dgpo[data]'`"
        ) from exc
    if Path(cfg.path).is_dir():
        loaded = datasets.load_from_disk(cfg.path)
        if isinstance(loaded, datasets.DatasetDict):
            if cfg.split not in loaded:
                raise KeyError(
                    f"dataset {cfg.path!r} has no split {cfg.split!r} (dataset.split); "
                    f"it has {sorted(loaded)}"
                )
            loaded = loaded[cfg.split]
        return loaded.to_list()
    return datasets.load_dataset(cfg.path, split=cfg.split).to_list()


def field(row: Any, path: str) -> Any:
    """`row[a][b]...` for the dotted `path` `a.b...`; list items by index (`messages.0`)."""
    value = row
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _has(row: Any, path: str) -> bool:
    try:
        field(row, path)
    except (KeyError, IndexError, TypeError, ValueError):
        return False
    return True


def chat_messages(value: Any) -> list[dict[str, str]] | None:
    """`value` as chat messages when it is a list of `{"role", "content"}` (verl's format)."""
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and {"role", "content"} <= m.keys() for m in value)
    ):
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    return None


def prompt_text(tokenizer: Any, problem: str, cfg: PromptConfig) -> str:
    """The problem plus the instruction, wrapped in the chat template when there is one."""
    content = f"{problem}\n{cfg.instruction}" if cfg.instruction else problem
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": content})
    return chat_text(tokenizer, messages, cfg)


def chat_text(tokenizer: Any, messages: list[dict[str, str]], cfg: PromptConfig) -> str:
    """Messages through the chat template, or their contents joined when there is none."""
    if not (cfg.use_chat_template and getattr(tokenizer, "chat_template", None)):
        return "\n".join(m["content"] for m in messages)
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)


def build_examples(
    rows: Sequence[dict[str, Any]],
    tokenizer: Any,
    dataset: DatasetConfig,
    prompt: PromptConfig,
    max_prompt_tokens: int,
) -> list[Example]:
    """Tokenized examples; prompts longer than `max_prompt_tokens` are dropped.

    A prompt given as chat messages (verl's `prompt: [{role, content}, ...]`) is used as
    it is: it already carries its instruction, so `prompt.instruction` and
    `prompt.system_prompt` are not added.
    """
    examples = []
    for row in rows:
        raw, answer = field(row, dataset.prompt_field), str(field(row, dataset.answer_field))
        messages = chat_messages(raw)
        if messages is None:
            problem, text = str(raw), prompt_text(tokenizer, str(raw), prompt)
        else:
            problem = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            text = chat_text(tokenizer, messages, prompt)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= max_prompt_tokens:
            examples.append(Example(problem, answer, list(ids)))
    if not examples:
        raise ValueError(
            f"no prompt fits rollout.max_prompt_tokens={max_prompt_tokens}; raise it "
            f"or check dataset.prompt_field ({dataset.prompt_field!r})"
        )
    return examples


class PromptStream:
    """Endless, reproducible stream of examples: shuffled per epoch from (seed, epoch)."""

    def __init__(self, examples: Sequence[Example], *, seed: int, shuffle: bool) -> None:
        self.examples = list(examples)
        self.seed = seed
        self.shuffle = shuffle
        self.cursor = 0
        """Examples served so far, across epochs: the only state to checkpoint."""
        self._epoch_order: tuple[int, list[int]] = (-1, [])

    def _order(self, epoch: int) -> list[int]:
        if self._epoch_order[0] != epoch:
            order = list(range(len(self.examples)))
            if self.shuffle:
                random.Random(f"{self.seed}:{epoch}").shuffle(order)
            self._epoch_order = (epoch, order)
        return self._epoch_order[1]

    def take(self, count: int) -> list[Example]:
        batch = []
        for _ in range(count):
            epoch, offset = divmod(self.cursor, len(self.examples))
            batch.append(self.examples[self._order(epoch)[offset]])
            self.cursor += 1
        return batch
