"""The benchmark registry: one entry per benchmark, where to find it and how big it is.

Every benchmark whose source states a licence (MIT, all of them but aime25) ships with the
package as JSONL already normalised to `{"id", "problem", "answer"}` (`data/SOURCES.md`:
repository, commit and licence per file). aime25's source states none, so it is read from
`$DGPO_BENCHMARK_DIR` or the hub. The Hugging Face fields below describe the hub copies,
whose column names and answer formats differ per benchmark.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    id: str
    problem: str
    answer: str


def _identity(value: object) -> str:
    return str(value)


def _gsm8k_answer(value: object) -> str:
    """GSM8K answers are worked solutions ending in `#### 1,234`."""
    return str(value).rsplit("####", 1)[-1].strip().replace(",", "")


def _olympiad_answer(value: object) -> str:
    """OlympiadBench stores a list of `$...$` strings; the local copy keeps the first."""
    first = value[0] if isinstance(value, list) else value
    return str(first).replace("$", "").strip()


def _number_answer(value: object) -> str:
    """Some copies store integers as floats (`27.0`)."""
    text = str(value).strip()
    return re.sub(r"^(-?\d+)\.0+$", r"\1", text)


@dataclass(frozen=True)
class Benchmark:
    name: str
    problem_field: str
    """Column holding the problem statement in the Hugging Face copy."""
    answer_field: str
    """Column holding the final answer in the Hugging Face copy."""
    expected_size: int
    hf_dataset_id: str
    hf_revision: str | None
    """A commit of the hub dataset; None where no revision has been verified yet."""
    hf_split: str
    local_filename: str
    hf_config: str | None = None
    id_field: str | None = None
    """Column with a stable problem id in the hub copy; row index otherwise."""
    normalize_answer: Callable[[object], str] = _identity
    packaged: bool = False
    """Shipped inside this package (`trainer/benchmarks/data/`): always read from there."""


# Hub revisions are None: no hub was reachable when this was written, so none could
# be verified. Pin them (`hf_revision`) on first download; row counts are checked.
BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("aime24", "problem", "answer", 30, "HuggingFaceH4/aime_2024", None,
                  "train", "aime24.jsonl", id_field="id", normalize_answer=_number_answer,
                  packaged=True),
        Benchmark("aime25", "problem", "answer", 30, "yentinglin/aime_2025", None,
                  "train", "aime25.jsonl", id_field="id", normalize_answer=_number_answer),
        Benchmark("amc23", "question", "answer", 40, "math-ai/amc23", None, "test",
                  "amc23.jsonl", id_field="id", normalize_answer=_number_answer, packaged=True),
        Benchmark("math500", "problem", "answer", 500, "HuggingFaceH4/MATH-500", None,
                  "test", "math500.jsonl", id_field="unique_id", packaged=True),
        Benchmark("minerva", "question", "answer", 272, "math-ai/minervamath", None, "test",
                  "minerva.jsonl", packaged=True),
        Benchmark("olympiadbench", "question", "final_answer", 675, "Hothan/OlympiadBench",
                  None, "train", "olympiadbench.jsonl", hf_config="OE_TO_maths_en_COMP",
                  id_field="id", normalize_answer=_olympiad_answer, packaged=True),
        Benchmark("gsm8k", "question", "answer", 1319, "openai/gsm8k", None, "test",
                  "gsm8k_test.jsonl", hf_config="main", normalize_answer=_gsm8k_answer,
                  packaged=True),
        # The first 30 GSM8K test problems (MIT, see data/SOURCES.md): the demo's and
        # the examples' benchmark, so they run from a clone with no data and no hub.
        Benchmark("gsm8k_mini", "question", "answer", 30, "openai/gsm8k", None, "test",
                  "gsm8k_mini.jsonl", hf_config="main", normalize_answer=_gsm8k_answer,
                  packaged=True),
    )
}  # fmt: skip
