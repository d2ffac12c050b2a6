"""One lossless channel from a training process to whoever supervises it.

`ReportWriter` is a `Callback` that appends every hook call (`on_train_start`,
`on_step_end`, `on_checkpoint`, `on_eval`, `on_event`) to a JSON-lines file as
`{"seq": n, "hook": name, "args": {...}}` and fsyncs it before the trainer moves on, so
a record the trainer got past survives any crash. The supervisor reads complete lines
with `read_reports` from a byte offset it keeps itself (`Report.checkpoint` and
`Report.results` rebuild the hook's arguments). The trainer stays ignorant of who reads
the file.
"""

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from trainer.reporting.callbacks import Callback, CheckpointInfo
from trainer.results import BenchmarkResult, ProblemResult, SampleVerdict


@dataclass(frozen=True)
class Report:
    """One callback invocation; `seq` counts from 0 within its file."""

    seq: int
    hook: str
    args: dict[str, Any]

    def checkpoint(self) -> CheckpointInfo:
        return CheckpointInfo(**self.args["info"])

    def results(self) -> list[BenchmarkResult]:
        return [benchmark_result(r) for r in self.args["results"]]


def benchmark_result(data: Mapping[str, Any]) -> BenchmarkResult:
    """A `BenchmarkResult` back from `dataclasses.asdict` JSON."""
    problems = [
        ProblemResult(
            p["problem_id"],
            p["num_samples"],
            p["num_correct"],
            [SampleVerdict(**s) for s in p.get("samples", [])],
        )
        for p in data["per_problem"]
    ]
    return BenchmarkResult(data["benchmark"], data["k"], dict(data["scores"]), problems)


class ReportWriter(Callback):
    """Appends each hook call to `path` (fsynced); continues the numbering of an existing file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._seq = 0

    def _write(self, hook: str, **args: Any) -> None:
        if self._file is None:  # opened on first use: ranks > 0 never report
            self.path.parent.mkdir(parents=True, exist_ok=True)
            existing, _ = read_reports(self.path, 0)
            self._seq = existing[-1].seq + 1 if existing else 0
            self._file = self.path.open("a")
        record = {"seq": self._seq, "hook": hook, "args": args}
        self._file.write(json.dumps(record, default=float) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._seq += 1

    def on_train_start(self, start_step: int, total_steps: int) -> None:
        self._write("on_train_start", start_step=start_step, total_steps=total_steps)

    def on_step_end(self, step: int, metrics: Mapping[str, float]) -> None:
        self._write("on_step_end", step=step, metrics=dict(metrics))

    def on_checkpoint(self, info: CheckpointInfo) -> None:
        self._write("on_checkpoint", info=dataclasses.asdict(info))

    def on_eval(self, step: int, results: Sequence[BenchmarkResult]) -> None:
        self._write("on_eval", step=step, results=[dataclasses.asdict(r) for r in results])

    def on_event(self, kind: str, message: str) -> None:
        self._write("on_event", kind=kind, message=message)


def read_reports(path: str | Path, offset: int) -> tuple[list[Report], int]:
    """The complete records after byte `offset`, and the offset just past them.

    A trailing partial line (the writer died mid-write) is left for later and, if the
    writer is gone, ignored: the record was never fsynced, so the trainer never got past it.
    """
    try:
        with Path(path).open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    complete = data[: data.rfind(b"\n") + 1]
    reports = [Report(**json.loads(line)) for line in complete.splitlines() if line.strip()]
    return reports, offset + len(complete)
