"""Datasets from parquet and from the `datasets` library (`.[data]`), verl-style rows."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from tests.optional import require
from trainer.data.prompts import build_examples, load_rows
from trainer.spec import DatasetConfig, PromptConfig

VERL_ROWS = [
    {
        "prompt": [{"role": "user", "content": f"{i}+1? Answer in \\boxed{{}}."}],
        "reward_model": {"style": "rule", "ground_truth": str(i + 1)},
    }
    for i in range(3)
]
VERL_FIELDS = {"prompt_field": "prompt", "answer_field": "reward_model.ground_truth"}


def _pairs(cfg: DatasetConfig, tokenizer_dir: str) -> list[tuple[str, str]]:
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    examples = build_examples(load_rows(cfg), tok, cfg, PromptConfig(), max_prompt_tokens=200)
    return [(e.problem, e.answer) for e in examples]


EXPECTED = [(f"{i}+1? Answer in \\boxed{{}}.", str(i + 1)) for i in range(3)]


def test_parquet_with_nested_answers_and_chat_prompts(tiny_model_dir: str, tmp_path: Path) -> None:
    pa = require("pyarrow", "data")
    import pyarrow.parquet as pq

    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(VERL_ROWS), path)
    cfg = DatasetConfig(path=str(path), max_samples=2, **VERL_FIELDS)
    assert _pairs(cfg, tiny_model_dir) == EXPECTED[:2]


def test_saved_dataset_and_dataset_dict_split(tiny_model_dir: str, tmp_path: Path) -> None:
    datasets = require("datasets", "data")
    single = tmp_path / "single"
    datasets.Dataset.from_list(VERL_ROWS).save_to_disk(str(single))
    assert _pairs(DatasetConfig(path=str(single), **VERL_FIELDS), tiny_model_dir) == EXPECTED
    splits = tmp_path / "splits"
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(VERL_ROWS[:1]),
            "test": datasets.Dataset.from_list(VERL_ROWS[1:]),
        }
    ).save_to_disk(str(splits))
    cfg = DatasetConfig(path=str(splits), split="test", **VERL_FIELDS)
    assert _pairs(cfg, tiny_model_dir) == EXPECTED[1:]
    with pytest.raises(KeyError, match=r"no split 'validation' \(dataset.split\)"):
        load_rows(DatasetConfig(path=str(splits), split="validation", **VERL_FIELDS))
