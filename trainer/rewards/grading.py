"""Grade math answers with math-verify in a pool of processes with a hard deadline.

One grader serves both the training reward and evaluation, so a response is judged
the same way everywhere. math-verify's own timeouts use `signal.alarm`, which works
only in a main thread and cannot interrupt a long C-level computation; so each
answer is graded in a worker process's main thread, and a worker that overruns its
deadline is killed and replaced. Grading never raises and never hangs: a timeout,
a crash or an unparsable answer is an incorrect verdict.
"""

import atexit
import contextlib
import json
import logging
import os
import re
import resource
import subprocess
import sys
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from multiprocessing.connection import wait
from pathlib import Path
from typing import IO, Any

from trainer.results import SampleVerdict
from trainer.rewards.magnitude import install as install_magnitude_check

DEFAULT_TIMEOUT_S = 10.0
"""Hard limit on grading one (response, ground truth) pair, worker start excluded."""
STARTUP_TIMEOUT_S = 120.0
WORKER_MEMORY_LIMIT = 4 << 30
"""Address-space cap per worker: a runaway expansion fails with MemoryError (graded
incorrect) instead of swapping the machine."""
_READY = "ready"
_REPO_ROOT = str(Path(__file__).resolve().parent.parent)


# ---------------------------------------------------------------- in the worker


def _extraction_config() -> list[Any]:
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    # `\boxed{}` first, then "final answer is ..." anchors, then bare expressions.
    return [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]


def last_boxed(text: str) -> str | None:
    """Content of the last balanced `\\boxed{...}`, the answer convention of math RL evals."""
    start = text.rfind("\\boxed")
    while start != -1:
        brace = start + len("\\boxed")
        while brace < len(text) and text[brace] == " ":
            brace += 1
        if brace < len(text) and text[brace] == "{":
            depth = 0
            for end in range(brace, len(text)):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth == 0:
                    return text[brace + 1 : end]
        start = text.rfind("\\boxed", 0, start)
    return None


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def last_number_verdict(response: str, ground_truth: str) -> SampleVerdict:
    """The response's last number literal against a numeric ground truth, no algebra.

    For tasks whose answer is a number: math-verify equates an unevaluated `19 + 15` with
    34, so a policy that echoes the question's expression would score (it did,
    docs/learning.md). This is how issue 23 scored its own check (the last integer).
    """
    found = _NUMBER.findall(response.replace(",", ""))
    if not found:
        return SampleVerdict(extracted=None, correct=False)
    try:
        correct = Decimal(found[-1]) == Decimal(ground_truth.strip())
    except InvalidOperation:
        correct = False
    return SampleVerdict(extracted=found[-1], correct=correct)


_E_NOTATION = re.compile(r"(?<![\\\w.])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")


def _answer_text(text: str) -> str:
    """What math-verify should read: the last box if any, with `4.5e33` as `4.5 \\times 10^{33}`.

    math-verify joins every box of a response into one set and has no e-notation, so
    "first \\boxed{3}, finally \\boxed{4}" would not match 4, nor `3e8` match `3\\times10^8`.
    """
    boxed = last_boxed(text)
    if boxed is not None:
        text = f"\\boxed{{{boxed}}}"
    return _E_NOTATION.sub(r"\1 \\times 10^{\2}", text)


@lru_cache(maxsize=4096)
def _parse_gold(ground_truth: str, soft_timeout: int) -> list[Any]:
    """Parse a ground truth once per worker: k samples of a problem share it."""
    from math_verify import parse

    config = _extraction_config()
    boxed = _answer_text(f"\\boxed{{{ground_truth}}}")
    gold = parse(boxed, config, parsing_timeout=soft_timeout)
    return gold or parse(_answer_text(ground_truth), config, parsing_timeout=soft_timeout)


def grade_in_process(response: str, ground_truth: str, soft_timeout: int = 3) -> SampleVerdict:
    """Grade one answer in this process, relying only on math-verify's soft timeouts.

    Safe only in a main thread and not bounded against C-level stalls; use `Grader`.
    """
    from math_verify import parse, verify

    install_magnitude_check()
    try:
        predicted = parse(
            _answer_text(response), _extraction_config(), parsing_timeout=soft_timeout
        )
        if not predicted:
            return SampleVerdict(extracted=None, correct=False)
        extracted = next((p for p in reversed(predicted) if isinstance(p, str)), None)
        extracted = extracted if extracted is not None else str(predicted[0])
        gold = _parse_gold(ground_truth, soft_timeout)
        correct = bool(gold) and verify(gold, predicted, timeout_seconds=soft_timeout)
        return SampleVerdict(extracted=extracted, correct=bool(correct))
    except BaseException:  # math-verify's TimeoutException is not an Exception subclass
        return SampleVerdict(extracted=None, correct=False)


def _worker_main(soft_timeout: int) -> None:
    """Serve JSON-lines requests `[index, response, ground_truth]` on stdin until EOF."""
    import math_verify  # noqa: F401  (pay the import before announcing readiness)

    resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_LIMIT, WORKER_MEMORY_LIMIT))

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # soft timeouts are expected
    print(json.dumps(_READY), flush=True)
    for line in sys.stdin:
        index, response, ground_truth = json.loads(line)
        verdict = grade_in_process(response, ground_truth, soft_timeout)
        print(json.dumps([index, verdict.extracted, verdict.correct]), flush=True)


# ---------------------------------------------------------------- in the parent


class _Worker:
    """A grading subprocess (`python -m trainer.rewards.grading`).

    A plain subprocess rather than `multiprocessing`: it needs no `__main__` guard in
    the caller's script and also starts inside daemonic processes (Celery prefork).
    """

    def __init__(self, soft_timeout: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [_REPO_ROOT, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "trainer.rewards.grading", str(soft_timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env=env,
        )
        self.stdout: IO[str] = self.process.stdout  # type: ignore[assignment]
        self.started_at = time.monotonic()
        self.ready = False
        self.task: int | None = None
        self.deadline = float("inf")

    def send(self, message: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> Any:
        line = self.stdout.readline()
        if not line:
            raise EOFError("grading worker exited")
        return json.loads(line)

    def stop(self, grace_s: float = 0.0) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # type: ignore[union-attr]
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stdout.close()


class Grader:
    """A pool of grading processes; use as a context manager (from one thread at a time).

    `grade` returns one `SampleVerdict` per (response, ground truth) pair, in order.
    Each pair gets `timeout_s` of wall time in a worker; past it the worker is
    killed, replaced, and the pair graded incorrect with `extracted=None`.
    """

    def __init__(self, num_workers: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        self.num_workers = num_workers or os.cpu_count() or 1
        self.timeout_s = timeout_s
        # Soft (in-worker) limits: three math-verify calls per pair fit the hard one.
        self._soft_timeout = max(1, int(timeout_s / 3))
        self._workers: list[_Worker] = []
        self.workers_replaced = 0
        """How many workers were killed for overrunning a deadline or dying."""

    def __enter__(self) -> "Grader":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Spawn the workers (they warm up in parallel; `grade` waits for them)."""
        while len(self._workers) < self.num_workers:
            self._workers.append(_Worker(self._soft_timeout))

    def close(self) -> None:
        for worker in self._workers:
            worker.stop(grace_s=2.0)
        self._workers = []

    def grade(self, responses: Sequence[str], ground_truths: Sequence[str]) -> list[SampleVerdict]:
        if len(responses) != len(ground_truths):
            raise ValueError(
                f"got {len(responses)} responses but {len(ground_truths)} ground truths"
            )
        self.start()
        pending = deque(range(len(responses)))
        verdicts: list[SampleVerdict | None] = [None] * len(responses)
        while pending or any(w.task is not None for w in self._workers):
            for worker in self._workers:
                if worker.ready and worker.task is None and pending:
                    index = pending.popleft()
                    worker.task = index
                    worker.deadline = time.monotonic() + self.timeout_s
                    try:
                        worker.send([index, str(responses[index]), str(ground_truths[index])])
                    except OSError:  # died while idle: not this answer's fault, retry it
                        pending.appendleft(index)
                        worker.task = None
                        self._replace(worker, verdicts)
            self._collect(verdicts)
        return [v if v is not None else SampleVerdict(None, False) for v in verdicts]

    def _collect(self, verdicts: list[SampleVerdict | None]) -> None:
        """Wait for the next message or deadline; record verdicts, replace bad workers."""
        now = time.monotonic()
        deadlines = [
            w.deadline if w.ready else w.started_at + STARTUP_TIMEOUT_S for w in self._workers
        ]
        readable = wait([w.stdout for w in self._workers], timeout=max(0.0, min(deadlines) - now))
        for worker in [w for w in self._workers if w.stdout in readable]:
            try:
                message = worker.receive()
            except (EOFError, OSError, ValueError):
                if not worker.ready:
                    raise RuntimeError(
                        "a grading worker exited during start-up; run "
                        "`python -c 'import math_verify'` to see why"
                    ) from None
                self._replace(worker, verdicts)
                continue
            if message == _READY:
                worker.ready = True
            else:
                index, extracted, correct = message
                verdicts[index] = SampleVerdict(extracted=extracted, correct=correct)
                worker.task, worker.deadline = None, float("inf")
        now = time.monotonic()
        for worker in list(self._workers):
            if not worker.ready and now - worker.started_at > STARTUP_TIMEOUT_S:
                raise RuntimeError(
                    f"grading worker did not start within {STARTUP_TIMEOUT_S:.0f}s; "
                    "check that math-verify imports (`python -c 'import math_verify'`)"
                )
            if worker.task is not None and now > worker.deadline:
                self._replace(worker, verdicts)

    def _replace(self, worker: _Worker, verdicts: list[SampleVerdict | None]) -> None:
        if worker.task is not None:
            verdicts[worker.task] = SampleVerdict(extracted=None, correct=False)
        worker.stop()
        self.workers_replaced += 1
        self._workers[self._workers.index(worker)] = _Worker(self._soft_timeout)


_shared: Grader | None = None


def grade_one(response: str, ground_truth: str) -> SampleVerdict:
    """Grade a single answer with a lazily started one-worker grader (kept until exit)."""
    global _shared
    if _shared is None:
        _shared = Grader(num_workers=1)
        atexit.register(_shared.close)
    return _shared.grade([response], [ground_truth])[0]


if __name__ == "__main__":
    _worker_main(int(sys.argv[1]))
