"""Prompts are built with the chat template and served in a resumable order."""

import json
import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from trainer.data.prompts import PromptStream, build_examples, load_rows
from trainer.spec import DatasetConfig, PromptConfig


def test_examples_carry_the_instruction_and_drop_overlong_prompts(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"q": "1+1?", "a": "2"}, {"q": "x" * 500, "a": "0"}]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = DatasetConfig(path=str(path), prompt_field="q", answer_field="a")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = build_examples(load_rows(cfg), tok, cfg, PromptConfig(), max_prompt_tokens=200)
    assert len(examples) == 1 and examples[0].answer == "2"
    text = tok.decode(examples[0].prompt_ids)
    assert text.startswith("<|im_start|>user\n1+1?\nPlease reason step by step")
    assert text.endswith("<|im_start|>assistant\n")
    with pytest.raises(KeyError, match="prompt_field"):
        load_rows(DatasetConfig(path=str(path), prompt_field="problem", answer_field="a"))


def test_stream_resumes_from_its_cursor_across_epochs(
    tiny_model_dir: str, toy_dataset: str
) -> None:
    cfg = DatasetConfig(path=toy_dataset)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = build_examples(load_rows(cfg), tok, cfg, PromptConfig(), 512)
    straight = PromptStream(examples, seed=3, shuffle=True)
    expected = straight.take(50) + straight.take(50)  # crosses an epoch (64 rows)
    resumed = PromptStream(examples, seed=3, shuffle=True)
    first = resumed.take(50)
    again = PromptStream(examples, seed=3, shuffle=True)
    again.cursor = resumed.cursor
    assert first + again.take(50) == expected
    assert expected[:64] != examples  # shuffled


def test_verl_style_rows_with_nested_answers_and_chat_prompts(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    path = tmp_path / "verl.jsonl"
    row = {
        "prompt": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "2+3? Answer in \\boxed{}."},
        ],
        "reward_model": {"style": "rule", "ground_truth": "5"},
    }
    path.write_text(json.dumps(row))
    cfg = DatasetConfig(
        path=str(path), prompt_field="prompt", answer_field="reward_model.ground_truth"
    )
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    (example,) = build_examples(load_rows(cfg), tok, cfg, PromptConfig(), max_prompt_tokens=200)
    assert (example.problem, example.answer) == ("2+3? Answer in \\boxed{}.", "5")
    text = tok.decode(example.prompt_ids)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\n2+3? Answer in \\boxed{}.<|im_end|>\n<|im_start|>assistant\n"
    )  # the messages as given: no repr, no second instruction
    bad = DatasetConfig(path=str(path), prompt_field="prompt", answer_field="reward_model.x")
    with pytest.raises(KeyError, match=re.escape("no field(s) ['reward_model.x']")):
        load_rows(bad)
