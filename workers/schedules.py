"""Nightly regression: fire due schedules (beat) and settle runs when their eval job ends.

`tick` runs on beat: it fires each due schedule once and settles any run whose job ended
without the hook (worker crash, job cancelled while queued). `settle_job` is the hook the
worker calls after an eval job finishes; on a regression it POSTs the schedule's webhook,
retrying transient failures within a bound (`DGPO_WEBHOOK_TRIES`, `DGPO_WEBHOOK_BACKOFF_S`).
Settling is idempotent and never raises. The database side is `store.schedule_runs`.
"""

import logging
import time
from datetime import datetime

import httpx

from config import outbound
from config.settings import Settings, get_settings
from store import schedule_runs
from store.schedule_runs import Settled
from workers import studies

log = logging.getLogger(__name__)

FIRE_SCHEDULES_TASK = "dgpo.fire_schedules"
TICK_S = 30.0
"""How often beat looks for due schedules (cron has minute resolution)."""
WEBHOOK_TIMEOUT_S = 5.0
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""Answers a later try may turn into a 2xx; other 4xx (and 501, 505) will not change."""


def tick(now: datetime | None = None) -> list[int]:
    """Fire every due schedule, settle orphaned runs and submit missed study evals;
    returns the new run ids."""
    fired = schedule_runs.fire_due(now)
    settle_pending()
    studies.submit_missed()
    return fired


def settle_pending() -> None:
    """Settle runs still open whose job is finished (the worker hook missed them)."""
    for job_id in schedule_runs.unsettled_finished_jobs():
        settle_job(job_id)


def settle_job(job_id: str) -> None:
    """Completion hook for a finished eval job; a no-op unless a schedule submitted it."""
    try:
        settled = schedule_runs.settle(job_id)
        if settled is not None and settled.verdict == "regression" and settled.webhook_url:
            _post_webhook(job_id, settled)
    except Exception:
        log.exception("job %s: settling its schedule run failed; beat retries", job_id)


def _post_webhook(job_id: str, settled: Settled) -> None:
    """POST the regression, retrying transient failures (5xx, 408, 429, network errors)
    `webhook_tries` times at most with doubling backoff; every try is a job event
    (`webhook_sent` or `webhook_failed`, with its number), so a lost alert shows why."""
    assert settled.webhook_url is not None
    settings = get_settings()
    url, tries, wait = settled.webhook_url, settings.webhook_tries, settings.webhook_backoff_s
    for attempt in range(1, tries + 1):
        kind, outcome, transient = _try_post(url, settled, settings)
        again = transient and attempt < tries
        if again:
            outcome += f"; retrying in {wait:g}s"
        elif transient:
            outcome += "; giving up"
        message = f"try {attempt}/{tries}: {outcome}"
        if kind == "webhook_failed":
            log.warning("job %s: %s", job_id, message)
        schedule_runs.record_webhook(job_id, settled.run_id, kind, message, attempt)
        if not again:
            return
        time.sleep(wait)
        wait *= 2


def _try_post(url: str, settled: Settled, settings: Settings) -> tuple[str, str, bool]:
    """One POST: (event kind, what happened, whether another try may succeed)."""
    try:
        status = outbound.post_json(url, settled.payload, settings, WEBHOOK_TIMEOUT_S)
        return "webhook_sent", f"POST {url}: {status}", False
    except outbound.OutboundRefused as exc:
        return "webhook_failed", f"POST {url} refused: {exc}", False
    except httpx.HTTPStatusError as exc:  # the status only: the body never reaches an event
        code = exc.response.status_code
        return "webhook_failed", f"POST {url} failed: HTTP {code}", code in RETRIED_STATUSES
    except httpx.HTTPError as exc:
        return "webhook_failed", f"POST {url} failed ({type(exc).__name__})", True
