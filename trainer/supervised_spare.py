"""`python -m trainer.supervised_spare [--memory-limit-mb N]`: a supervised child started
before its attempt, so that the attempt does not wait for Python to import torch,
transformers and the trainer (9 s at load average 2.6 on 2 cores, 17-19 s at 9-13).

A worker slot keeps one started (`workers.spare_child`) with the environment its attempt
would get (the slot's GPUs, `OMP_NUM_THREADS`), so everything it imports sees the
attempt's settings. From its first instruction it is supervised as `trainer.supervised`
supervises (memory limit, death with the slot, parent its own children die with). It
imports what the train and eval commands import, says so on its output, and waits for
one line on stdin: `{"argv": [MODULE, ARG...], "log": PATH}`. From then on its output
goes to the attempt's log and it runs MODULE as `__main__`, as `trainer.supervised`
would have. One spare runs one attempt and exits with it: no state outlives an attempt,
and only code is loaded ahead (the attempt reads its model and data itself, from the page
cache when an earlier attempt read them). End of input before a line: it exits.
"""

import importlib
import json
import os
import sys
import time

from trainer.supervised import run, supervise

WARM_MODULES = (
    # What `trainer.cli` imports, at its top and in its train command.
    "torch",
    "transformers",
    "typer",
    "rich.progress",
    "trainer.spec.jobs",
    "trainer.checkpoints.hub_push",
    "trainer.checkpoints.remote",
    "trainer.extras",
    "trainer.reporting.channel",
    "trainer.reporting.fence",
    "trainer.reporting.loggers",
    "trainer.rl.loop",
    # What `from_pretrained` imports for any causal LM (1.8 s on idle cores).
    "transformers.modeling_layers",
    "transformers.activations",
    # What `trainer.evaluation.cli` imports.
    "trainer.evaluation.scores",
    "trainer.evaluation.runner",
)
"""What an attempt imports before it reads its model. Not the command modules themselves
(`trainer.cli`, `trainer.evaluation.cli`): they run as `__main__`, and one imported
before would run twice, with two copies of its classes."""

READY = "ready: imports took"
"""Printed on the spare's own output once it waits for an attempt."""

TOOK = "took the attempt"
"""Printed on the attempt's log once it runs the attempt: before, it may still die as a
spare (`workers.spare_child.Handed`)."""


def warm_up() -> float:
    """Import `WARM_MODULES`; the seconds it took."""
    start = time.monotonic()
    for name in WARM_MODULES:
        importlib.import_module(name)
    return time.monotonic() - start


def redirect_output(log: str) -> None:
    """Send this process's stdout and stderr (and its children's) to the end of `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, sys.stdout.fileno())
    os.dup2(fd, sys.stderr.fileno())
    os.close(fd)


def main(argv: list[str]) -> None:
    if supervise(argv):
        raise SystemExit("usage: python -m trainer.supervised_spare [--memory-limit-mb N]")
    started = time.monotonic()
    took = warm_up()
    print(f"pre-started child {os.getpid()} {READY} {took:.2f} s", flush=True)
    line = sys.stdin.readline()
    if not line:
        return
    attempt = json.loads(line)
    redirect_output(attempt["log"])
    waited = time.monotonic() - started
    print(
        f"pre-started child {os.getpid()} {TOOK} at {time.time():.3f} "
        f"(started {waited:.1f} s before; imports took {took:.2f} s)",
        flush=True,
    )
    run(attempt["argv"])


if __name__ == "__main__":
    main(sys.argv[1:])
