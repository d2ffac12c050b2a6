"""The dashboard: server-rendered pages under /ui for people (the JSON API is for programs).

Authentication uses the same bearer tokens as the API (any scope can read). A browser
cannot send an Authorization header from the address bar: the token page's form posts
the token (`service.ui.login`), which comes back as an HttpOnly cookie scoped to /ui.
`/ui?token=...` still works (stored the same way, then the same page without it), but
puts the secret in a URL (the access log redacts it, `service.access_log`).
"""

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from service.api.deps import SessionDep
from service.schemas import progress_percent, progress_text
from service.study_schemas import SETTLED_STUDY_STATUSES, CurvePoint
from service.study_views import study_out as study_view
from service.ui.charts import MAX_POINTS, grouped_charts, line_chart, series_by_name
from service.ui.login import COOKIE, TokenNeeded, token_cookie
from store import fleet, job_data, studies
from store import jobs as store_jobs
from store.event_levels import event_level
from store.models import ACTIVE_STATUSES, Job, JobStatus, utcnow
from store.tokens import TokenInfo, verify_token
from trainer.results import EVAL_METRIC_PREFIX

PAGE_SIZE = 100
EVENTS_SHOWN = 500
ERROR_CHARS = 200
"""Of a failed job's error in the job list (the job's page shows all of it)."""
DEAD_WORKERS_SHOWN = timedelta(hours=24)
"""A dead worker stays listed this long after its last heartbeat, then only `GET /workers`
lists it: a stopped stack's workers would otherwise stay on the page for ever."""

SECURITY_HEADERS = {
    # Pages are static HTML with inline CSS and SVG: no script, frame or outside fetch.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
templates.env.globals["job_statuses"] = list(JobStatus)
templates.env.globals["live_statuses"] = [JobStatus.QUEUED, *ACTIVE_STATUSES]
templates.env.globals["settled_study_statuses"] = list(SETTLED_STUDY_STATUSES)
templates.env.globals["event_level"] = event_level
router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)


def ui_token(request: Request, session: SessionDep) -> TokenInfo:
    """The caller's token from `?token=`, the cookie, or the Authorization header."""
    from_query = request.query_params.get("token")
    header = request.headers.get("authorization", "")
    raw = (
        from_query
        or request.cookies.get(COOKIE)
        or (header[7:] if header.lower().startswith("bearer ") else None)
    )
    info = verify_token(session, raw) if raw else None
    if info is None:
        raise TokenNeeded(bool(raw))
    if from_query:
        # Swap the secret in the URL for a cookie, then reload the clean URL.
        clean = request.url.remove_query_params("token")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "token stored",
            {"Location": str(clean), "Set-Cookie": token_cookie(from_query, request)},
        )
    return info


UiToken = Annotated[TokenInfo, Depends(ui_token)]


def token_page(request: Request, exc: Exception) -> HTMLResponse:
    """401 as a page: how to get a token, and a form that posts it and comes back here."""
    assert isinstance(exc, TokenNeeded)
    here = request.url.remove_query_params("token")
    goes_to = exc.goes_to or (f"{here.path}?{here.query}" if here.query else here.path)
    context = {"rejected": exc.rejected, "token_name": None, "next": goes_to}
    response = _page(request, "token.html", context)
    response.status_code = status.HTTP_401_UNAUTHORIZED
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _page(request: Request, name: str, context: dict[str, Any]) -> HTMLResponse:
    """A rendered template that no other site can frame or inject scripts into."""
    return templates.TemplateResponse(request, name, context, headers=SECURITY_HEADERS)


def _progress(job: Job) -> dict[str, Any]:
    total_steps = job.spec.get("total_steps")
    return {
        "percent": round(progress_percent(job.status, job.progress), 1),
        "text": progress_text(job.status, job.progress, job.current_step, total_steps),
    }


@router.get("", response_class=HTMLResponse)
def jobs_page(
    request: Request, session: SessionDep, token: UiToken, status: str | None = None
) -> HTMLResponse:
    """Jobs (newest first) with status and progress, then the queue and the workers."""
    jobs, _ = store_jobs.list_jobs(
        session, owner=token.visible_owner, statuses=[status] if status else (), limit=PAGE_SIZE
    )
    now = utcnow()
    workers, hidden = fleet.recent_workers(session, dead_since=now - DEAD_WORKERS_SHOWN)
    return _page(
        request,
        "jobs.html",
        {
            "jobs": [(job, _progress(job)) for job in jobs],
            "status_filter": status,
            "queues": fleet.queue_summary(session).queues,
            "workers": workers,
            "workers_hidden": hidden,
            "dead_shown_hours": int(DEAD_WORKERS_SHOWN.total_seconds() // 3600),
            "error_chars": ERROR_CHARS,
            "now": now,
            "token_name": token.name,
        },
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, session: SessionDep, token: UiToken) -> HTMLResponse:
    """One job: metric curves, checkpoints, eval results and its event log."""
    job = store_jobs.get_job(session, job_id, owner=token.visible_owner)
    _, points = job_data.metric_series(session, job_id, max_points=MAX_POINTS)
    series = series_by_name([(p["step"], p["values"]) for p in points])
    charts = [
        line_chart(group.title, members, flat_zero_note=group.flat_zero_note)
        for group, members in grouped_charts(series)
    ]
    waiting = job.status == JobStatus.QUEUED
    return _page(
        request,
        "job.html",
        {
            "job": job,
            "lease_owner": job.lease_owner if token.sees_hosts else None,
            "progress": _progress(job),
            "warnings": fleet.queue_warnings(
                [(job.queue, job.spec["resources"]["gpus"], job.spec["resources"].get("nodes", 1))],
                fleet.served_slots(session),
            )
            if waiting
            else [],
            "charts": charts,
            "latest": points[-1] if points else None,
            "checkpoints": job_data.checkpoints(session, job_id),
            "results": job_data.results(session, job_id, None),
            "events": job_data.events(session, job_id, after_id=0, limit=EVENTS_SHOWN),
            "token_name": token.name,
        },
    )


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(
    request: Request, study_id: str, session: SessionDep, token: UiToken
) -> HTMLResponse:
    """One study: each metric's arm curves with their CI bands across seeds (one chart per
    metric, so one unit per chart), the periodic evals' scores the same way, then the final
    evals, the verdicts and the members."""
    from service import study_report  # numpy: loaded on the first study page

    found = studies.get(session, study_id, owner=token.visible_owner)
    report = study_report.build(session, found)
    training = [p for p in report.curves if not p.metric.startswith(EVAL_METRIC_PREFIX)]
    evals = [p for p in report.curves if p.metric.startswith(EVAL_METRIC_PREFIX)]
    return _page(
        request,
        "study.html",
        {
            "study": study_view(session, found),
            "report": report,
            "charts": _arm_charts(training),
            "eval_charts": _arm_charts(evals),
            "token_name": token.name,
        },
    )


def _arm_charts(curves: list[CurvePoint]) -> list[Markup]:
    """One chart per metric, in the report's order: each arm's seed mean and CI band."""
    charts = []
    for metric in dict.fromkeys(p.metric for p in curves):
        series: dict[str, list[tuple[float, float]]] = {}
        bands: dict[str, list[tuple[float, float, float]]] = {}
        for p in curves:
            if p.metric != metric:
                continue
            series.setdefault(p.arm, []).append((p.step, p.mean))
            if p.ci_low is not None and p.ci_high is not None:
                bands.setdefault(p.arm, []).append((p.step, p.ci_low, p.ci_high))
        charts.append(line_chart(metric, series, bands=bands))
    return charts
