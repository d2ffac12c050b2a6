"""Custom JSONL eval sets and the eval spec's prompt section reach the scores."""

import json
from pathlib import Path

import pytest

from trainer.benchmarks import load_eval_set
from trainer.evaluation.runner import run_eval
from trainer.spec import EvalSpec
from trainer.spec.eval import EvalSet

ROWS = [
    {"id": "seven-a", "problem": "Say the digit", "answer": "7"},
    {"problem": "Again", "answer": "7"},
]


def write_set(path: Path) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return str(path)


def spec(model: str, eval_set: str, prompt: dict | None = None, **fields: str) -> EvalSpec:
    return EvalSpec.model_validate(
        {
            "model": {"path": model},
            "benchmarks": [{"name": "sevens", "path": eval_set}],
            "k": 2,
            "max_tokens": 1,
            "batch_size": 4,
            **({"prompt": prompt} if prompt is not None else {}),
            **fields,
        }
    )


def test_the_eval_prompt_decides_what_the_echo_model_answers(
    echo_model_dir: str, tmp_path: Path
) -> None:
    eval_set = write_set(tmp_path / "sevens.jsonl")
    asks_seven = {"instruction": "7", "use_chat_template": False}
    (result,) = run_eval(spec(echo_model_dir, eval_set, asks_seven), echo_model_dir)
    assert result.benchmark == "sevens"
    assert [p.problem_id for p in result.per_problem] == ["seven-a", "sevens-1"]
    assert result.scores["avg@2"] == 1.0
    by_number = spec(echo_model_dir, eval_set, asks_seven, answer_format="number")
    (result,) = run_eval(by_number, echo_model_dir)
    assert result.scores["avg@2"] == 1.0
    assert {s.extracted for p in result.per_problem for s in p.samples} == {"7"}
    asks_three = {"instruction": "3", "use_chat_template": False}
    (result,) = run_eval(spec(echo_model_dir, eval_set, asks_three), echo_model_dir)
    assert result.scores["avg@2"] == 0.0
    (result,) = run_eval(spec(echo_model_dir, eval_set), echo_model_dir)  # the default prompt
    assert result.scores["avg@2"] == 0.0


def test_a_row_without_an_answer_names_the_set_and_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": "2+2"}\n')
    with pytest.raises(ValueError, match=r"eval set 'bad': row 2 of .* needs \"problem\" and"):
        load_eval_set(EvalSet(name="bad", path=str(path)))


def test_a_set_may_not_take_a_builtin_name_nor_repeat_one() -> None:
    with pytest.raises(ValueError, match="'gsm8k' is a built-in benchmark's name"):
        EvalSet(name="gsm8k", path="/data/x.jsonl")
    twice = [{"name": "mine", "path": "/a.jsonl"}, {"name": "mine", "path": "/b.jsonl"}]
    with pytest.raises(ValueError, match=r"named more than once: \['mine'\]"):
        EvalSpec.model_validate({"model": {"path": "m"}, "benchmarks": twice})
