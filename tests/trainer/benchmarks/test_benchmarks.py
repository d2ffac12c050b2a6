"""Every packaged benchmark file loads at its expected size and each gold answer grades
itself; a benchmark that does not ship (aime25) is read from `$DGPO_BENCHMARK_DIR`."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.benchmarks import (
    BENCHMARK_DIR_ENV,
    BENCHMARKS,
    GENERATED_BENCHMARKS,
    load_benchmark,
    load_local,
)
from trainer.benchmarks.loaders import PACKAGED_DIR
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


def test_every_packaged_file_is_listed_in_sources_and_only_aime25_is_left_out() -> None:
    shipped = {b.local_filename for b in BENCHMARKS.values() if b.packaged}
    assert {p.name for p in PACKAGED_DIR.glob("*.jsonl")} == shipped
    assert [name for name, b in BENCHMARKS.items() if not b.packaged] == ["aime25"]
    sources = (PACKAGED_DIR / "SOURCES.md").read_text()
    assert all(f"| {filename} |" in sources for filename in shipped)


@pytest.mark.parametrize("name", sorted(n for n, b in BENCHMARKS.items() if b.packaged))
def test_benchmark_loads_with_expected_size_and_grades_its_own_answers(
    name: str, grader: Grader
) -> None:
    problems = load_benchmark(name)
    assert len(problems) == BENCHMARKS[name].expected_size
    assert len({p.id for p in problems}) == len(problems)
    assert all(p.problem.strip() and p.answer.strip() for p in problems)
    verdicts = grader.grade(
        [f"\\boxed{{{p.answer}}}" for p in problems], [p.answer for p in problems]
    )
    # No exceptions needed: even prose answers (olympiadbench-1965) match as strings.
    failing = {p.id: p.answer for p, v in zip(problems, verdicts, strict=True) if not v.correct}
    assert failing == {}


def test_benchmark_dir_env_selects_local_files_for_what_does_not_ship(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{"id": f"2025-AIME-{i}", "problem": f"{i}+0?", "answer": str(i)} for i in range(30)]
    (tmp_path / "aime25.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv(BENCHMARK_DIR_ENV, str(tmp_path))
    assert [p.answer for p in load_benchmark("aime25")] == [str(i) for i in range(30)]
    assert len(load_benchmark("aime24")) == 30  # packaged: the directory does not matter


def test_missing_file_names_the_variable_to_set(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=BENCHMARK_DIR_ENV):
        load_local("aime25", tmp_path)


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "aime25.jsonl").write_text('{"id": "a", "problem": "1+1?", "answer": "2"}\n')
    with pytest.raises(ValueError, match="has 1 problems, expected 30"):
        load_local("aime25", tmp_path)


def test_unknown_benchmark_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="math500"):
        load_local("math5000", PACKAGED_DIR)


def test_hub_answer_normalisers_match_the_local_format() -> None:
    assert _gsm8k_answer("She pays 3 * 2 = <<3*2=6>>6\n#### 1,234") == "1234"
    assert _olympiad_answer(["$69,84$"]) == "69,84"
    assert _number_answer(27.0) == "27"
    assert _number_answer("3.50") == "3.50"
