"""Answers graded per second on MATH500's ground truths: the process pool vs one worker.

Each gold answer is graded against itself (boxed) and against a wrong answer (the
next problem's gold), so both the matching and the non-matching paths are timed.
Worker start-up is excluded (each grader is warmed up first).

    python bench/grading.py [--workers N]
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.benchmarks import load_benchmark
from trainer.rewards.grading import Grader


def rate(num_workers: int, responses: list[str], golds: list[str]) -> tuple[float, int]:
    with Grader(num_workers=num_workers) as grader:
        grader.grade(["\\boxed{1}"] * num_workers, ["1"] * num_workers)  # warm up
        started = time.perf_counter()
        verdicts = grader.grade(responses, golds)
        elapsed = time.perf_counter() - started
    return len(responses) / elapsed, sum(v.correct for v in verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    answers = [p.answer for p in load_benchmark("math500")]
    wrong = answers[1:] + answers[:1]
    responses = [f"So the answer is $\\boxed{{{a}}}$." for a in answers + wrong]
    golds = answers + answers

    one, correct_one = rate(1, responses, golds)
    pool, correct_pool = rate(args.workers, responses, golds)
    assert correct_one == correct_pool, "the pool and one worker disagree"
    print(f"answers: {len(responses)} (500 self-matches + 500 mismatches), correct: {correct_pool}")
    print(f"one worker       : {one:8.1f} answers/s")
    print(f"pool ({args.workers:2d} workers): {pool:8.1f} answers/s")
    print(f"ratio pool / one : {pool / one:8.2f}x")


if __name__ == "__main__":
    main()
