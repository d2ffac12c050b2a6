"""A study as the API shows it: its members' statuses folded into one status and progress."""

from sqlalchemy.orm import Session

from service.study_schemas import (
    MemberRole,
    PendingStatus,
    StudyMemberOut,
    StudyOut,
    StudyStatus,
)
from store import studies
from store.models import ACTIVE_STATUSES, TERMINAL_STATUSES, Job, JobStatus, Study

FINISHED = frozenset({*TERMINAL_STATUSES, PendingStatus.SKIPPED})


def members_out(study: Study, jobs: list[Job]) -> list[StudyMemberOut]:
    """Every planned member in expansion order (arms, then seeds; train before eval), each
    with its job if it has one."""
    by_key = {(j.metadata_["arm"], j.metadata_["seed"], j.metadata_["role"]): j for j in jobs}
    out = []
    for arm in study.spec["arms"]:
        for seed in study.spec["seeds"]:
            train = by_key.get((arm, str(seed), "train"))
            out.append(_member(arm, seed, "train", train, study))
            evaluation = by_key.get((arm, str(seed), "eval"))
            out.append(_member(arm, seed, "eval", evaluation, study, train))
    return out


NEVER_EVALUATED = (JobStatus.FAILED, JobStatus.CANCELLED)
"""Train job statuses after which the member's eval is never submitted."""


def _member(
    arm: str,
    seed: int,
    role: MemberRole,
    job: Job | None,
    study: Study,
    train: Job | None = None,
) -> StudyMemberOut:
    if job is not None:
        done = job.status in TERMINAL_STATUSES
        return StudyMemberOut(
            arm=arm,
            seed=seed,
            role=role,
            job_id=job.id,
            status=job.status,
            progress=1.0 if done else job.progress or 0.0,
            error_code=job.error_code if job.status == JobStatus.FAILED else None,
        )
    # An eval not submitted yet (`train`: its train job): it will be unless that job or the
    # study ended first.
    skipped = study.cancelled_at is not None or (
        train is not None and train.status in NEVER_EVALUATED
    )
    return StudyMemberOut(
        arm=arm,
        seed=seed,
        role=role,
        job_id=None,
        status=PendingStatus.SKIPPED if skipped else PendingStatus.PENDING,
        progress=1.0 if skipped else 0.0,
    )


def status_of(study: Study, members: list[StudyMemberOut]) -> StudyStatus:
    statuses = [m.status for m in members]
    finished = all(s in FINISHED for s in statuses)
    if study.cancelled_at is not None:
        return StudyStatus.CANCELLED if finished else StudyStatus.CANCELLING
    if all(s == JobStatus.SUCCEEDED for s in statuses):
        return StudyStatus.SUCCEEDED
    if finished:
        return StudyStatus.INCOMPLETE
    started = any(s in ACTIVE_STATUSES or s in FINISHED for s in statuses)
    return StudyStatus.RUNNING if started else StudyStatus.QUEUED


def incomplete_arms(members: list[StudyMemberOut]) -> list[str]:
    """Arms with a member that ended without succeeding, in arm order."""
    bad = {m.arm for m in members if m.status in FINISHED and m.status != JobStatus.SUCCEEDED}
    return [arm for arm in dict.fromkeys(m.arm for m in members) if arm in bad]


def study_out(session: Session, study: Study) -> StudyOut:
    members = members_out(study, studies.members(session, study))
    spec = study.spec
    return StudyOut(
        id=study.id,
        name=study.name,
        owner=study.owner,
        status=status_of(study, members),
        progress=sum(m.progress for m in members) / len(members),
        arms=list(spec["arms"]),
        baseline=spec["baseline"],
        seeds=spec["seeds"],
        incomplete_arms=incomplete_arms(members),
        members=members,
        warnings=study.warnings,
        spec=spec,
        created_at=study.created_at,
        cancelled_at=study.cancelled_at,
    )
