"""The built-in arithmetic task: "What is a + b?" with a held-out test split.

Every sum of two integers in 1..25 is one problem. The unordered pairs are shuffled by
`SPLIT_SEED`; the first `TEST_SIZE` become the test split (`arith-test`, one order each,
drawn from the same seed) and every ordered pair of the rest the train split
(`dataset.path: arith`). A test problem's pair never appears in training in either
order, so a gain on `arith-test` is not memorised commutativity.

Answers are plain integers, which the `math` reward grades. The problem carries no
instruction: the prompt section adds one. A small model rarely writes `\\boxed{}` (the
default instruction's and the default `answer_format: boxed`'s convention), so use the
prompt `INSTRUCTION` with `answer_format: number` in the train spec and in the eval spec
of `arith-test`: the response's last number literal must equal the answer. Not `lenient`:
math-verify equates an echoed `19 + 15` with 34, and a policy learns to echo
(docs/learning.md).
"""

import json
import random
from pathlib import Path

OPERAND_MAX = 25
TEST_SIZE = 100
SPLIT_SEED = 0
INSTRUCTION = "Answer with just the number."
"""The prompt instruction that matches `answer_format: number` (the last number counts)."""


def _splits(seed: int = SPLIT_SEED) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(train pairs, test pairs), both in a fixed order."""
    rng = random.Random(f"arith:{seed}")
    unordered = [(a, b) for a in range(1, OPERAND_MAX + 1) for b in range(a, OPERAND_MAX + 1)]
    rng.shuffle(unordered)
    held_out = set(unordered[:TEST_SIZE])
    test = [(a, b) if rng.random() < 0.5 else (b, a) for a, b in unordered[:TEST_SIZE]]
    train = [
        (a, b)
        for a in range(1, OPERAND_MAX + 1)
        for b in range(1, OPERAND_MAX + 1)
        if (min(a, b), max(a, b)) not in held_out
    ]
    return train, test


def _rows(split: str, pairs: list[tuple[int, int]]) -> list[dict[str, str]]:
    return [
        {"id": f"arith-{split}-{a}+{b}", "problem": f"What is {a} + {b}?", "answer": str(a + b)}
        for a, b in pairs
    ]


def train_rows() -> list[dict[str, str]]:
    """`{"id", "problem", "answer"}` rows of the train split."""
    return _rows("train", _splits()[0])


def test_rows() -> list[dict[str, str]]:
    """`{"id", "problem", "answer"}` rows of the held-out test split (`arith-test`)."""
    return _rows("test", _splits()[1])


def write_train_split(path: str | Path) -> Path:
    """The train split as JSONL (what `dataset.path: arith` resolves to)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row) + "\n" for row in train_rows()))
    return out
