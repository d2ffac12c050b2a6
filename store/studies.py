"""Studies in the database: create one with its train jobs, list, read, cancel, and submit
each member's eval once its train job succeeded.

Members are ordinary jobs tagged with the study (`trainer.spec.study.tags_of`), each
submitted under an Idempotency-Key derived from the study and (arm, seed, role), so a
replayed or half-finished submission completes without duplicates and an eval is
submitted once however many hooks (worker, beat) ask for it.
"""

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import jobs, quotas
from store.errors import IdempotencyMismatch, NotFound
from store.models import (
    TERMINAL_STATUSES,
    AttemptUsage,
    Job,
    JobStatus,
    Metric,
    Study,
    new_id,
    utcnow,
)
from store.serialize import dumps
from trainer.spec.study import StudyRequest, eval_request, expand

MAX_MEMBERS = 10_000
"""More jobs than any study the operator bound allows; the member query's limit."""


def member_key(study_id: str, arm: str, seed: int, role: str) -> str:
    """The Idempotency-Key of a member job (unique per owner, like every key)."""
    return f"study:{study_id}:{arm}:{seed}:{role}"


def request_hash(request: StudyRequest) -> str:
    return hashlib.sha256(
        dumps(request.model_dump(mode="json"), sort_keys=True).encode()
    ).hexdigest()


def create(
    session: Session,
    request: StudyRequest,
    warnings: list[str],
    idempotency_key: str | None,
    owner: str,
) -> tuple[Study, list[jobs.Submitted | Exception], bool]:
    """Insert the study (or find the one this key created) and submit its train jobs;
    (study, one outcome per member in expansion order, replayed)."""
    digest = request_hash(request)
    study = _by_key(session, owner, idempotency_key)
    replayed = study is not None
    if study is None:
        members = expand(request, "0" * 36)  # the size is all the quota needs
        refused = quotas.over_queued_limit(session, [owner] * len(members))
        session.rollback()
        if any(refused):
            raise next(r for r in refused if r is not None)
        study = Study(
            id=new_id(),
            owner=owner,
            name=request.name,
            spec=request.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            request_hash=digest,
            warnings=warnings,
            created_at=utcnow(),
        )
        session.add(study)
        try:
            session.commit()
        except IntegrityError:  # a concurrent submission with the same key won
            session.rollback()
            study = _by_key(session, owner, idempotency_key)
            replayed = True
    assert study is not None
    if study.request_hash != digest:
        raise IdempotencyMismatch(
            f"Idempotency-Key {idempotency_key!r} was already used for study {study.id} with "
            "a different body; send the original body, or use a new key for a new study"
        )
    members = expand(request, study.id)
    batch = [
        jobs.new_job(m.train, member_key(study.id, m.arm, m.seed, "train"), owner) for m in members
    ]
    outcomes = jobs.submit_jobs(session, batch)
    return study, outcomes, replayed


def _by_key(session: Session, owner: str, key: str | None) -> Study | None:
    if key is None:
        return None
    return session.scalar(select(Study).where(Study.owner == owner, Study.idempotency_key == key))


def get(session: Session, study_id: str, owner: str | None = None) -> Study:
    """The study if `owner` (None: anyone) owns it; another principal's is unknown."""
    stmt = select(Study).where(Study.id == study_id)
    if owner is not None:
        stmt = stmt.where(Study.owner == owner)
    study = session.scalar(stmt) if len(study_id) <= 36 and "\x00" not in study_id else None
    if study is None:
        raise NotFound(f"no study with id {study_id!r}")
    return study


def list_all(session: Session, owner: str | None = None, limit: int = 100) -> list[Study]:
    stmt = select(Study).order_by(Study.created_at.desc(), Study.id.desc()).limit(limit)
    if owner is not None:
        stmt = stmt.where(Study.owner == owner)
    return list(session.scalars(stmt))


def members(session: Session, study: Study) -> list[Job]:
    """The study's jobs, train and eval, oldest first."""
    rows, _ = jobs.list_jobs(
        session, owner=study.owner, metadata={"study": study.id}, limit=MAX_MEMBERS
    )
    return rows[::-1]


def cancel(session: Session, study_id: str, owner: str | None = None) -> Study:
    """Mark the study cancelled (no eval is submitted after this) and cancel every member
    not yet finished; repeated cancels are no-ops."""
    study = get(session, study_id, owner)
    if study.cancelled_at is None:
        study.cancelled_at = utcnow()
        session.commit()
    for job in members(session, study):
        if job.status not in TERMINAL_STATUSES:
            jobs.cancel(session, job.id)
    return study


def submit_eval(session: Session, train_job_id: str) -> Job | None:
    """Submit the eval of a study's train job that succeeded (its final checkpoint); None
    when the job is no study member, did not succeed, or its study was cancelled."""
    job = session.get(Job, train_job_id)
    if job is None or job.metadata_.get("role") != "train" or job.status != JobStatus.SUCCEEDED:
        return None
    study = session.get(Study, job.metadata_["study"])
    if study is None or study.cancelled_at is not None:
        return None
    request = StudyRequest.model_validate(study.spec)
    arm, seed = job.metadata_["arm"], int(job.metadata_["seed"])
    body = eval_request(request, study.id, arm, seed, job.id)
    key = member_key(study.id, arm, seed, "eval")
    (outcome,) = jobs.submit_jobs(session, [jobs.new_job(body, key, study.owner)])
    if isinstance(outcome, Exception):
        raise outcome
    return session.get(Job, outcome[0]["id"])


def train_jobs_without_eval(session: Session) -> Sequence[str]:
    """Succeeded train members of live studies whose eval was not submitted (a worker's
    hook missed it): beat submits them."""
    live = select(Study.id).where(Study.cancelled_at.is_(None))
    trained = session.scalars(
        jobs.metadata_filter(session, select(Job), {"role": "train"}).where(
            Job.status == JobStatus.SUCCEEDED, Job.metadata_["study"].as_string().in_(live)
        )
    ).all()
    keys = {
        member_key(j.metadata_["study"], j.metadata_["arm"], int(j.metadata_["seed"]), "eval"): j.id
        for j in trained
    }
    if not keys:
        return []
    done = set(session.scalars(select(Job.idempotency_key).where(Job.idempotency_key.in_(keys))))
    return [job_id for key, job_id in keys.items() if key not in done]


def member_metrics(session: Session, job_ids: list[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """Job id -> step -> the metrics reported at that step (every step, for the report)."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for job_id, step, values in session.execute(
        select(Metric.job_id, Metric.step, Metric.values).where(Metric.job_id.in_(job_ids))
    ):
        found.setdefault(job_id, {})[step] = values
    return found


def member_usage(session: Session, job_ids: list[str]) -> dict[str, tuple[int, float, float]]:
    """Job id -> (ended attempts, wall seconds, GPU seconds) from the usage accounting."""
    rows = session.execute(
        select(
            AttemptUsage.job_id,
            func.count(),
            func.sum(AttemptUsage.wall_seconds),
            func.sum(AttemptUsage.gpu_seconds),
        )
        .where(AttemptUsage.job_id.in_(job_ids))
        .group_by(AttemptUsage.job_id)
    )
    return {job_id: (n, float(w or 0), float(g or 0)) for job_id, n, w, g in rows}
