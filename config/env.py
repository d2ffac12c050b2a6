"""The `DGPO_` environment: every variable the system reads, and the check that refuses
the others.

`Settings` (API) and `WorkerSettings` (workers, beat) each read their own fields from one
shared environment (compose gives every container the same), so neither class may call
the other's variables unknown; a few variables are read outside both. Anything else with
the prefix is a typo or a setting that no longer exists, and silently ignoring it would
leave the operator believing it works: both classes refuse it, naming the close match.
"""

import difflib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "DGPO_"

READ_ELSEWHERE: Mapping[str, str] = {
    "DGPO_API_URL": "the CLI and `dgpo.client`: the API to call",
    "DGPO_TOKEN": "the CLI and `dgpo.client`: the bearer token",
    "DGPO_BENCHMARK_DIR": "the trainer: local benchmark JSONL files",
    "DGPO_CPU_STANDS_IN_FOR_GPUS": "the trainer (`trainer.devices`): run GPU jobs on a CPU host",
    "DGPO_LOG_LEVEL": "`config.logs`: the log level",
    "DGPO_PARENT_PID": "set by the worker for its trainer child (`trainer.supervised`)",
    "DGPO_WORKER_SLOT": "set by the worker for each pool process (`workers.registry`)",
    "DGPO_IMAGE": "docker-compose.yml: the image to run",
    "DGPO_TEST_PG_DSN": "the test suite: the Postgres to create its database in",
    "DGPO_BENCH_PG_DSN": "bench/: the Postgres to measure against",
    "DGPO_BENCH_REDIS_URL": "bench/: the Redis to measure against",
}
"""`DGPO_` variables no settings class reads, and who does."""


def known_variables() -> set[str]:
    from config.settings import Settings
    from config.worker_settings import WorkerSettings

    fields = (name for cls in (Settings, WorkerSettings) for name in cls.model_fields)
    return {f"{PREFIX}{name.upper()}" for name in fields} | set(READ_ELSEWHERE)


def unknown_variables(environ: Iterable[str]) -> list[str]:
    """One line per `DGPO_` name in `environ` that nothing reads, with its close match."""
    known = known_variables()
    lines = []
    for name in sorted(n.upper() for n in environ if n.upper().startswith(PREFIX)):
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            lines.append(f"unknown setting {name}{hint}")
    return lines


class DgpoSettings(BaseSettings):
    """Settings read from `DGPO_` variables; an unknown one is an error (module doc)."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: Any) -> Any:
        unknown = unknown_variables(os.environ)
        if unknown:
            raise ValueError("; ".join(unknown))
        return data
