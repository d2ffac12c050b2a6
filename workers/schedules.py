"""Nightly regression: fire due schedules (beat) and settle runs when their eval job ends.

`tick` runs on beat: it fires each due schedule once and settles any run whose job ended
without the hook (worker crash, job cancelled while queued). `settle_job` is the hook the
worker calls after an eval job finishes; on a regression it POSTs the schedule's webhook.
Settling is idempotent and never raises. The database side is `store.schedule_runs`.
"""

import logging
from datetime import datetime

import httpx

from config import outbound
from config.settings import get_settings
from store import schedule_runs
from store.schedule_runs import Settled

log = logging.getLogger(__name__)

FIRE_SCHEDULES_TASK = "dgpo.fire_schedules"
TICK_S = 30.0
"""How often beat looks for due schedules (cron has minute resolution)."""
WEBHOOK_TIMEOUT_S = 5.0


def tick(now: datetime | None = None) -> list[int]:
    """Fire every due schedule, then settle orphaned runs; returns the new run ids."""
    fired = schedule_runs.fire_due(now)
    settle_pending()
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
    """POST the regression; the outcome (sent or why not) is recorded as a job event."""
    assert settled.webhook_url is not None
    url = settled.webhook_url
    try:
        status = outbound.post_json(url, settled.payload, get_settings(), WEBHOOK_TIMEOUT_S)
        kind, message = "webhook_sent", f"POST {url}: {status}"
    except outbound.OutboundRefused as exc:
        kind, message = "webhook_failed", f"POST {url} refused: {exc}"
        log.warning("job %s: %s", job_id, message)
    except httpx.HTTPStatusError as exc:  # the status only: the body never reaches an event
        kind = "webhook_failed"
        message = f"POST {url} failed: HTTP {exc.response.status_code}"
        log.warning("job %s: %s", job_id, message)
    except httpx.HTTPError as exc:
        kind, message = "webhook_failed", f"POST {url} failed ({type(exc).__name__})"
        log.warning("job %s: %s: %s", job_id, message, exc)
    schedule_runs.record_webhook(job_id, settled.run_id, kind, message)
