"""A small typed client for the DGPO REST API, for the CLI and internal tools.

    from dgpo.client import DgpoClient
    with DgpoClient.from_env() as api:          # DGPO_API_URL, DGPO_TOKEN
        job = api.submit_job(load_job_file("spec.yaml"), idempotency_key="nightly-2024-06-01")
        print(api.get_job(job["id"])["status"])

Responses are the API's JSON objects as dicts (the OpenAPI schema at `/docs` documents
their fields); every non-2xx answer raises `DgpoAPIError` carrying the status and the
server's `detail`. Imports neither torch nor the service: only httpx and the spec models.
"""

import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self
from urllib.parse import quote

import httpx
from pydantic import BaseModel

DEFAULT_API_URL = "http://127.0.0.1:8000"
LOCAL_TOKEN_FILE = "local-admin.token"
"""Written under DGPO_HOME by `dgpo up`, so the CLI on the same machine needs no setup."""
JOB_STATUSES = ("queued", "running", "cancelling", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
"""Copies of `store.models.JobStatus` (the client imports no store code); the test
`tests/ops/test_status_names.py` keeps them equal."""
STREAM_RETRIES = 5
"""Reconnects in a row, a second apart, before `stream_job` gives up."""

Json = dict[str, Any]


class DgpoAPIError(Exception):
    """The API answered with a non-2xx status; `detail` is its explanation."""

    def __init__(self, status: int, detail: Any, method: str = "", url: str = "") -> None:
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url
        super().__init__(f"{method} {url} -> HTTP {status}: {_describe(detail)}".strip())


def _describe(detail: Any) -> str:
    """Flatten FastAPI's 422 error list into `field.path: message` pairs."""
    if isinstance(detail, list):
        parts = []
        for err in detail:
            if isinstance(err, Mapping):
                loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {err.get('msg', '')}" if loc else str(err.get("msg", "")))
            else:
                parts.append(str(err))
        return "; ".join(parts)
    return str(detail)


def env_token() -> str | None:
    """DGPO_TOKEN, else the token `dgpo up` saved under DGPO_HOME (default ~/.dgpo)."""
    token = os.environ.get("DGPO_TOKEN")
    if token is None:
        saved = Path(os.environ.get("DGPO_HOME", "~/.dgpo")).expanduser() / LOCAL_TOKEN_FILE
        token = saved.read_text().strip() if saved.is_file() else None
    return token


class DgpoClient:
    """One method per endpoint; thread-safe like the underlying `httpx.Client`."""

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    @classmethod
    def from_env(cls) -> Self:
        """DGPO_API_URL (default http://127.0.0.1:8000) and DGPO_TOKEN, else the token
        `dgpo up` saved under DGPO_HOME (default ~/.dgpo)."""
        return cls(os.environ.get("DGPO_API_URL", DEFAULT_API_URL), env_token())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DgpoAPIError(
                0,
                f"cannot reach the API at {self._http.base_url} ({exc}); start it with "
                "`dgpo up` or set DGPO_API_URL",
                method,
                path,
            ) from exc
        if response.is_success:
            return response.json() if response.content else None
        self._raise(response, method, path)

    @staticmethod
    def _raise(response: httpx.Response, method: str, path: str) -> NoReturn:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise DgpoAPIError(response.status_code, detail, method, path)

    # Jobs

    def submit_job(
        self, request: BaseModel | Mapping[str, Any], idempotency_key: str | None = None
    ) -> Json:
        """POST /jobs. `request` is a `JobRequest` model or the same dict (with `kind`)."""
        body = (
            request.model_dump(mode="json", exclude_unset=True)
            if isinstance(request, BaseModel)
            else dict(request)
        )
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/jobs", json=body, headers=headers)

    def list_jobs(
        self,
        *,
        status: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        metadata: Mapping[str, str] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Json:
        """GET /jobs: one page `{items, next_cursor}`, newest first; filters are ANDed."""
        params: list[tuple[str, str]] = [("status", s) for s in _many(status)]
        params += [("kind", k) for k in _many(kind)]
        params += [("metadata", f"{k}:{v}") for k, v in (metadata or {}).items()]
        params += [(k, str(v)) for k, v in (("limit", limit), ("cursor", cursor)) if v is not None]
        return self._request("GET", "/jobs", params=params)

    def iter_jobs(self, **filters: Any) -> Iterator[Json]:
        """Every job matching the filters, following the cursor across pages."""
        cursor = None
        while True:
            page = self.list_jobs(cursor=cursor, **filters)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def get_job(self, job_id: str) -> Json:
        return self._request("GET", f"/jobs/{job_id}")

    def cancel_job(self, job_id: str) -> Json:
        """Idempotent: a queued job is cancelled at once, a running one goes to cancelling."""
        return self._request("POST", f"/jobs/{job_id}/cancel")

    def job_events(self, job_id: str, *, after_id: int = 0, limit: int = 200) -> list[Json]:
        """The job's append-only log, oldest first; poll with `after_id` = last id seen."""
        params = {"after_id": after_id, "limit": limit}
        return self._request("GET", f"/jobs/{job_id}/events", params=params)

    def stream_job(self, job_id: str, *, after_id: int = 0) -> Iterator[tuple[str, Json]]:
        """GET /jobs/{id}/events/stream: `(kind, body)` as the server sends them until the
        job ends: `("job_event", event)`, `("job", job)` when it changed, `("end", job)`
        last. A dropped connection is reopened after the last event seen (up to
        `STREAM_RETRIES` times in a row)."""
        path = f"/jobs/{job_id}/events/stream"
        failures = 0
        while True:
            try:
                with self._http.stream("GET", path, params={"after_id": after_id}) as response:
                    if not response.is_success:
                        response.read()
                        self._raise(response, "GET", path)
                    for kind, body in _sse_messages(response.iter_lines()):
                        failures = 0
                        if kind == "job_event":
                            after_id = body["id"]
                        yield kind, body
                        if kind == "end":
                            return
                why = "closed before the job ended"
            except httpx.TransportError as exc:  # the server restarted or a proxy cut it
                why = str(exc)
            failures += 1
            if failures > STREAM_RETRIES:
                raise DgpoAPIError(0, f"event stream lost: {why}", "GET", path)
            time.sleep(1.0)

    def job_metrics(
        self,
        job_id: str,
        *,
        names: Sequence[str] | None = None,
        min_step: int | None = None,
        max_step: int | None = None,
        max_points: int | None = None,
    ) -> list[Json]:
        """Rows `{step, values: {name: float}, ts}` in step order (downsampled server-side)."""
        params: list[tuple[str, str]] = [("names", n) for n in names or ()]
        params += [
            (k, str(v))
            for k, v in (("min_step", min_step), ("max_step", max_step), ("max_points", max_points))
            if v is not None
        ]
        return self._request("GET", f"/jobs/{job_id}/metrics", params=params)["points"]

    def job_checkpoints(self, job_id: str) -> list[Json]:
        return self._request("GET", f"/jobs/{job_id}/checkpoints")

    def job_results(self, job_id: str, *, benchmark: str | None = None) -> list[Json]:
        params = {"benchmark": benchmark} if benchmark else {}
        return self._request("GET", f"/jobs/{job_id}/results", params=params)

    def wait_for_job(self, job_id: str, *, timeout: float = 3600.0, poll: float = 1.0) -> Json:
        """Poll until the job reaches a terminal status; raises TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout:.0f}s")
            time.sleep(poll)

    # Fleet

    def queue(self) -> Json:
        """GET /queue: queued jobs and requested GPUs per GPU type, oldest wait."""
        return self._request("GET", "/queue")

    def workers(self, *, status: str | None = None) -> list[Json]:
        params = {"status": status} if status else {}
        return self._request("GET", "/workers", params=params)

    def usage(self, *, by: str, since: datetime, until: datetime) -> Json:
        """GET /usage: attempts, wall and GPU seconds per principal, job or queue."""
        params = {"by": by, "since": since.isoformat(), "until": until.isoformat()}
        return self._request("GET", "/usage", params=params)

    def drain_worker(self, worker_id: str, *, preempt: bool = False) -> Json:
        """POST /workers/{id}/drain (admin): the worker stops claiming; its jobs finish, or
        with `preempt` checkpoint and go back to the queue."""
        path = f"/workers/{quote(worker_id, safe='')}/drain"
        return self._request("POST", path, params={"preempt": "true"} if preempt else {})

    def healthz(self) -> Json:
        return self._request("GET", "/healthz")

    def readyz(self) -> Json:
        return self._request("GET", "/readyz")

    # Evals and schedules

    def compare_evals(self, job_a: str, job_b: str) -> Json:
        """GET /evals/compare: per-benchmark score deltas between two eval jobs."""
        return self._request("GET", "/evals/compare", params={"a": job_a, "b": job_b})

    def list_schedules(self) -> list[Json]:
        return self._request("GET", "/schedules")

    def create_schedule(self, body: Mapping[str, Any]) -> Json:
        return self._request("POST", "/schedules", json=dict(body))

    def update_schedule(self, schedule_id: str, patch: Mapping[str, Any]) -> Json:
        """PATCH /schedules/{id}: `enabled`, `cron`, `threshold`, `webhook_url` (None removes)."""
        return self._request("PATCH", f"/schedules/{schedule_id}", json=dict(patch))

    def delete_schedule(self, schedule_id: str) -> None:
        """DELETE /schedules/{id}: the schedule and its runs (its eval jobs stay)."""
        self._request("DELETE", f"/schedules/{schedule_id}")

    def trigger_schedule(self, schedule_id: str) -> Json:
        """Fire a schedule now; returns the run it started."""
        return self._request("POST", f"/schedules/{schedule_id}/trigger")

    def list_schedule_runs(self, schedule_id: str) -> list[Json]:
        return self._request("GET", f"/schedules/{schedule_id}/runs")

    # Studies

    def submit_study(self, body: Mapping[str, Any], idempotency_key: str | None = None) -> Json:
        """POST /studies: arms x seeds as train jobs, each evaluated once it succeeds."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._request("POST", "/studies", json=dict(body), headers=headers)

    def list_studies(self) -> list[Json]:
        return self._request("GET", "/studies")["items"]

    def get_study(self, study_id: str) -> Json:
        return self._request("GET", f"/studies/{study_id}")

    def cancel_study(self, study_id: str) -> Json:
        return self._request("POST", f"/studies/{study_id}/cancel")

    def study_report(self, study_id: str) -> Json:
        return self._request("GET", f"/studies/{study_id}/report")

    def study_report_csv(self, study_id: str) -> str:
        response = self._http.get(f"/studies/{study_id}/report", params={"format": "csv"})
        if not response.is_success:
            self._raise(response, "GET", f"/studies/{study_id}/report")
        return response.text


def _sse_messages(lines: Iterator[str]) -> Iterator[tuple[str, Json]]:
    """`(event, JSON data)` of each Server-Sent Events message; comments are skipped."""
    kind, data = "message", ""
    for line in lines:
        if not line:
            if data:
                yield kind, json.loads(data)
            kind, data = "message", ""
        elif line.startswith("event:"):
            kind = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data += line.removeprefix("data:").strip()


def _many(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
