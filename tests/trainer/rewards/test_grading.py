"""The shared grader: verdicts on a labelled answer set, and bounded time on hostile input."""

import os
import signal
import time
from collections.abc import Iterator

import pytest

from trainer.results import SampleVerdict
from trainer.rewards.grading import Grader, grade_one, last_boxed


def B(answer: str) -> str:
    return f"Reasoning... The final answer is $\\boxed{{{answer}}}$."


# (response, ground truth, expected verdict)
CASES = [
    # fractions vs decimals
    (B("0.5"), "\\frac{1}{2}", True),
    (B("\\frac{1}{2}"), "0.5", True),
    (B("1/2"), "\\frac12", True),
    (B("\\dfrac{3}{4}"), "\\frac{3}{4}", True),
    (B("0.75"), "\\frac{3}{4}", True),
    (B("0.7"), "\\frac{3}{4}", False),
    (B("\\frac{2}{4}"), "\\frac{1}{2}", True),
    (B("\\frac{1}{3}"), "0.3333333333", True),
    (B("\\frac{1}{3}"), "0.33", False),
    (B("-\\frac{7}{2}"), "-3.5", True),
    (B("3.5"), "-3.5", False),
    # integers and formatting
    (B("1,000"), "1000", True),
    (B("1000"), "1000", True),
    (B("1001"), "1000", False),
    (B("025"), "25", True),
    (B("-0"), "0", True),
    # radicals
    (B("\\sqrt{8}"), "2\\sqrt{2}", True),
    (B("\\frac{\\sqrt{3}}{3}"), "\\frac{1}{\\sqrt{3}}", True),
    (B("\\sqrt{3}"), "\\sqrt{2}", False),
    (B("2^{1/2}"), "\\sqrt{2}", True),
    (B("3+2\\sqrt{2}"), "(1+\\sqrt{2})^2", True),
    (B("\\sqrt[3]{27}"), "3", True),
    # pi
    (B("2\\pi"), "2\\pi", True),
    (B("\\pi/2"), "\\frac{\\pi}{2}", True),
    (B("6.2832"), "2\\pi", False),
    (B("\\pi"), "2\\pi", False),
    (B("\\frac{\\pi}{6}"), "\\frac{\\pi}{3}", False),
    # intervals
    (B("(1,2]"), "(1,2]", True),
    (B("(1,2)"), "(1,2]", False),
    (B("[-3,\\infty)"), "[-3, \\infty)", True),
    (B("(-\\infty,0)\\cup(1,\\infty)"), "(-\\infty,0)\\cup(1,\\infty)", True),
    (B("(-\\infty,0)\\cup(2,\\infty)"), "(-\\infty,0)\\cup(1,\\infty)", False),
    # sets and tuples
    (B("\\{1,2,3\\}"), "\\{3,2,1\\}", True),
    (B("\\{1,2\\}"), "\\{1,2,3\\}", False),
    (B("(3,4)"), "(3,4)", True),
    (B("(4,3)"), "(3,4)", False),
    (B("(1, -2, 3)"), "(1,-2,3)", True),
    (B("x=2"), "2", True),
    (B("2, 3"), "3, 2", True),
    # units and degrees
    (B("30^\\circ"), "30", True),
    (B("30^{\\circ}"), "30^\\circ", True),
    (B("45^\\circ"), "30", False),
    (B("5\\text{ cm}"), "5", True),
    (B("12 \\text{ inches}"), "12", True),
    (B("\\$18.90"), "18.90", True),
    (B("7\\text{ cm}"), "5", False),
    # percentages
    (B("50\\%"), "50", True),
    (B("50\\%"), "0.5", True),
    (B("40\\%"), "50", False),
    # symbolic expressions
    (B("x^2+2x+1"), "(x+1)^2", True),
    (B("x^2+1"), "(x+1)^2", False),
    (B("\\frac{x}{2}"), "0.5x", True),
    (B("2\\sin x\\cos x"), "\\sin 2x", True),
    (B("a+b"), "b+a", True),
    (B("10^{3}"), "1000", True),
    (B("3e8"), "3 \\times 10^{8}", True),
    # text answers
    (B("\\text{Evelyn}"), "\\text{Evelyn}", True),
    (B("\\text{(C)}"), "\\text{(C)}", True),
    (B("\\text{Monday}"), "\\text{Sunday}", False),
    (B("\\text{even}"), "\\text{odd}", False),
    # scientific notation (Minerva gold answers use both forms)
    (B("4.5 \\times 10^{33}"), "4.5e33", True),
    (B("3\\times10^{8}"), "3e8", True),
    (B("3\\times10^{9}"), "3e8", False),
    # magnitude: equal means equal at the numbers' own scale (trainer.rewards.magnitude)
    (B("10^{-20}"), "2\\times 10^{-20}", False),
    (B("0.0000001"), "0.0000002", False),
    (B("e^{-50}"), "e^{-49}", False),
    (B("\\frac{1}{100!}"), "\\frac{2}{100!}", False),
    (B("2^{-100}"), "2^{-99}", False),
    (B("\\sqrt{2}\\cdot 10^{-30}"), "\\sqrt{3}\\cdot 10^{-30}", False),
    (B("\\sqrt{10^{40}+1}"), "10^{20}", False),
    (B("\\ln(10^{50}+1)"), "\\ln(10^{50})", False),
    (B("100!"), "100!+1", False),
    (B("2^{64}"), "18446744073709551617", False),
    (B("2^{64}"), "18446744073709551616", True),
    (B("\\frac{1}{100!}"), "\\frac{2}{2\\cdot 100!}", True),
    (B("2^{-100}"), "\\frac{1}{2^{100}}", True),
    (B("0.333333"), "\\frac{1}{3}", True),
    # where the answer is, and where it is not
    ("First \\boxed{3}, then on reflection \\boxed{4}", "4", True),
    ("I think the answer is 7.", "7", True),
    ("No final answer here.", "7", False),
    ("", "7", False),
    # malformed LaTeX
    (B("\\frac{1}{2"), "\\frac{1}{2}", False),
    ("\\boxed{\\frac{1}{2}", "\\frac{1}{2}", True),  # unclosed box: math-verify still reads it
    (B("\\sqrt{"), "2", False),
    (B("}}{{"), "2", False),
    (B("\\left( 1, 2 \\right"), "(1,2)", False),
    (B("\\unknowncommand{5}"), "5", False),
]


@pytest.fixture(scope="module")
def grader() -> Iterator[Grader]:
    with Grader(num_workers=2) as g:
        yield g


def test_labelled_set_is_large_and_mixed() -> None:
    assert len(CASES) >= 60
    assert {expected for _, _, expected in CASES} == {True, False}


def test_grader_matches_every_labelled_verdict(grader: Grader) -> None:
    verdicts = grader.grade([r for r, _, _ in CASES], [g for _, g, _ in CASES])
    wrong = [(r, g, e) for (r, g, e), v in zip(CASES, verdicts, strict=True) if v.correct != e]
    assert wrong == []


def test_verdict_records_the_extracted_answer(grader: Grader) -> None:
    right, missing = grader.grade([B("\\frac{3}{4}"), "no answer at all"], ["0.75", "1"])
    assert right == SampleVerdict(extracted="\\frac{3}{4}", correct=True)
    assert missing == SampleVerdict(extracted=None, correct=False)


def test_last_boxed_takes_the_final_balanced_box() -> None:
    assert last_boxed("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert last_boxed("\\boxed {\\{1,2\\}}") == "\\{1,2\\}"
    assert last_boxed("no box") is None


def test_power_tower_finishes_within_timeout() -> None:
    with Grader(num_workers=1, timeout_s=3.0) as g:
        g.grade(["1"], ["1"])  # wait for the worker to start
        started = time.monotonic()
        (verdict,) = g.grade([B("9^{9^{9^{9^{9}}}}")], ["5"])
        elapsed = time.monotonic() - started
    assert not verdict.correct
    assert elapsed < 3.0 + 1.0


def test_stuck_worker_is_killed_and_replaced_at_the_hard_deadline() -> None:
    # A 0.5 s deadline is shorter than math-verify's own (1 s minimum) soft timeout,
    # so only the hard kill can end this answer in time.
    with Grader(num_workers=1, timeout_s=0.5) as g:
        g.grade(["1"], ["1"])
        started = time.monotonic()
        slow, after = g.grade([B("9^{9^{9}}"), B("2")], ["5", "2"])
        assert time.monotonic() - started < 0.5 + 5.0  # includes one worker restart
        assert g.workers_replaced == 1
    assert slow == SampleVerdict(extracted=None, correct=False)
    assert after.correct


@pytest.mark.parametrize(
    "response",
    [
        "\\boxed{" + "(" * 5000 + "}",
        "\\boxed{" + "\\frac{" * 300 + "}",
        "\x00\udcff" * 100,
        "$" * 10_000,
    ],
)
def test_hostile_input_gives_an_incorrect_verdict_not_an_error(
    grader: Grader, response: str
) -> None:
    started = time.monotonic()
    (verdict,) = grader.grade([response], ["1"])
    assert not verdict.correct
    assert time.monotonic() - started < grader.timeout_s + 1.0


def test_mismatched_lengths_are_rejected(grader: Grader) -> None:
    with pytest.raises(ValueError, match="2 responses but 1 ground truths"):
        grader.grade(["1", "2"], ["1"])


def test_grade_one_grades_a_single_answer() -> None:
    assert grade_one(B("\\pi"), "\\pi").correct
    assert not grade_one(B("3.14"), "\\pi").correct


def test_worker_killed_from_outside_is_replaced_and_its_answer_retried() -> None:
    with Grader(num_workers=1) as g:
        g.grade(["1"], ["1"])
        os.kill(g._workers[0].process.pid, signal.SIGKILL)
        g._workers[0].process.wait()
        assert [v.correct for v in g.grade([B("2"), B("3")], ["2", "4"])] == [True, False]
        assert g.workers_replaced == 1


def test_math_verify_still_has_the_private_functions_the_magnitude_patch_replaces() -> None:
    """`trainer.rewards.magnitude` replaces math-verify's private `sympy_numeric_eq` and
    calls its `get_pct_val` (0.9 onwards): a release that renames either must fail here,
    not grade silently without the patch."""
    import inspect

    from math_verify import grader as mv_grader

    from trainer.rewards import magnitude

    assert callable(getattr(mv_grader, "get_pct_val", None)), "math-verify lost get_pct_val"
    parameters = list(inspect.signature(mv_grader.sympy_numeric_eq).parameters)
    assert parameters == ["a", "b", "float_rounding", "numeric_precision"]
    magnitude.install()
    assert mv_grader.sympy_numeric_eq.__module__ == magnitude.__name__
    assert not grade_one("\\boxed{1e-7}", "2e-7").correct  # the patch is what grades
