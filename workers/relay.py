"""Moves a job's report files (`trainer.reporting.channel`) into Postgres, each record once.

Each attempt's child appends to `<run dir>/reports/attempt-NNNN.jsonl`. The supervisor
relays the new complete records through the fenced `DbReporter`, then moves the file's
cursor (`.cursor`, a byte offset, replaced atomically) past them:

- the child crashed after a record: the record is on disk (fsynced) and is relayed;
- the supervisor crashed before its commit: the cursor still points before the record,
  and the next attempt's supervisor relays it (`catch_up`) before starting its child;
- the supervisor crashed after the commit but before moving the cursor: the record is
  relayed again and the idempotent writes of `DbReporter` leave the database as it was.
"""

import os
from pathlib import Path

from trainer.reporting.channel import read_reports
from workers.reporting import DbReporter


def report_file(run_dir: Path, attempt: int) -> Path:
    return run_dir / "reports" / f"attempt-{attempt:04d}.jsonl"


class ReportRelay:
    def __init__(self, run_dir: Path, attempt: int, reporter: DbReporter) -> None:
        self.run_dir, self.attempt, self.reporter = run_dir, attempt, reporter
        self.path = report_file(run_dir, attempt)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def catch_up(self) -> int:
        """Relay what earlier attempts' children wrote but their supervisors never committed."""
        relayed = 0
        for path in sorted(self.path.parent.glob("attempt-*.jsonl")):
            attempt = int(path.stem.removeprefix("attempt-"))
            if attempt < self.attempt:
                relayed += self._pump(path, attempt)
        return relayed

    def pump(self) -> int:
        """Relay this attempt's new records; returns how many."""
        return self._pump(self.path, self.attempt)

    def _pump(self, path: Path, attempt: int) -> int:
        cursor = path.with_suffix(".cursor")
        offset = int(cursor.read_text()) if cursor.exists() else 0
        reports, end = read_reports(path, offset)
        if not reports:
            return 0
        for report in reports:
            self.reporter.relay(report, attempt)
        self.reporter.flush()
        tmp = cursor.with_suffix(".cursor.tmp")
        tmp.write_text(str(end))
        os.replace(tmp, cursor)
        return len(reports)
