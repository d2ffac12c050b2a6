"""Every shared benchmark file loads at its expected size, and each gold answer grades itself."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.trainer.benchmark_data import SHARED_BENCHMARKS as SHARED
from trainer.benchmarks import (
    BENCHMARK_DIR_ENV,
    BENCHMARKS,
    GENERATED_BENCHMARKS,
    load_benchmark,
    load_local,
)
from trainer.benchmarks.registry import _gsm8k_answer, _number_answer, _olympiad_answer
from trainer.rewards.grading import Grader
from trainer.spec.eval import BENCHMARK_NAMES


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    # Generous deadline: this proves equivalence, not speed, and CI machines get loaded.
    with Grader(num_workers=2, timeout_s=60.0) as g:
        yield g


def test_registry_covers_exactly_the_spec_benchmarks() -> None:
    assert set(BENCHMARKS) | set(GENERATED_BENCHMARKS) == set(BENCHMARK_NAMES)


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_loads_with_expected_size_and_grades_its_own_answers(
    name: str, grader: Grader
) -> None:
    assert SHARED.is_dir(), f"benchmark data missing at {SHARED}; set {BENCHMARK_DIR_ENV}"
    problems = load_local(name, SHARED)
    assert len(problems) == BENCHMARKS[name].expected_size
    assert len({p.id for p in problems}) == len(problems)
    assert all(p.problem.strip() and p.answer.strip() for p in problems)
    verdicts = grader.grade(
        [f"\\boxed{{{p.answer}}}" for p in problems], [p.answer for p in problems]
    )
    # No exceptions needed: even prose answers (olympiadbench-1965) match as strings.
    failing = {p.id: p.answer for p, v in zip(problems, verdicts, strict=True) if not v.correct}
    assert failing == {}


def test_benchmark_dir_env_selects_local_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BENCHMARK_DIR_ENV, str(SHARED))
    assert len(load_benchmark("aime24")) == 30


def test_missing_file_names_the_variable_to_set(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=BENCHMARK_DIR_ENV):
        load_local("math500", tmp_path)


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "amc23.jsonl").write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n')
    with pytest.raises(ValueError, match="has 1 problems, expected 40"):
        load_local("amc23", tmp_path)


def test_unknown_benchmark_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="math500"):
        load_local("math5000", SHARED)


def test_hub_answer_normalisers_match_the_local_format() -> None:
    assert _gsm8k_answer("She pays 3 * 2 = <<3*2=6>>6\n#### 1,234") == "1234"
    assert _olympiad_answer(["$69,84$"]) == "69,84"
    assert _number_answer(27.0) == "27"
    assert _number_answer("3.50") == "3.50"
