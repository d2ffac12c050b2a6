"""Submit-time quota: how many jobs a principal, and its group, may have queued at once.

Checked in the group commit's own session just before its insert, so with one batch in
flight per API process (`DGPO_SUBMIT_BATCHES_IN_FLIGHT=1`, the default) a principal
never passes its limit through that process; several API processes may overshoot by
the submissions they accept at the same moment.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import Settings, get_settings
from store.errors import QuotaExceeded
from store.models import Job, JobStatus

Owned = Sequence[str]
"""The owner of each entry of a batch, in batch order."""


@dataclass(frozen=True)
class _Limit:
    """One queued-jobs limit: a principal's own, or its group's."""

    what: str
    """How the refusal names it: `principal 'team-a'`, `group 'research'`."""
    members: tuple[str, ...]
    limit: int
    setting: str


def over_queued_limit(session: Session, owners: Owned) -> list[QuotaExceeded | None]:
    """Per entry of a batch, in order: None if its owner (and its group) may queue one
    more job, else why not (the entries before it in the batch count as queued)."""
    settings = get_settings()
    limits = {o: _limits(o, settings) for o in set(owners)}
    counted = sorted({m for found in limits.values() for limit in found for m in limit.members})
    per_owner: dict[str, int] = {}
    if counted:
        per_owner = dict(
            session.execute(
                select(Job.owner, func.count())
                .where(Job.status == JobStatus.QUEUED, Job.owner.in_(counted))
                .group_by(Job.owner)
            ).all()
        )
    queued = {
        limit: sum(per_owner.get(m, 0) for m in limit.members)
        for found in limits.values()
        for limit in found
    }
    verdicts: list[QuotaExceeded | None] = []
    for owner in owners:
        full = next((limit for limit in limits[owner] if queued[limit] >= limit.limit), None)
        if full is None:
            for limit in limits[owner]:
                queued[limit] += 1
            verdicts.append(None)
            continue
        verdicts.append(
            QuotaExceeded(
                f"{full.what} already has {queued[full]} queued jobs, its limit "
                f"max_queued_jobs={full.limit} ({full.setting}); submit again when some "
                "have started, or ask the operator to raise it"
            )
        )
    return verdicts


def _limits(owner: str, settings: Settings) -> list[_Limit]:
    """The queued-jobs limits `owner`'s submissions count against."""
    found = []
    own = settings.policy(owner).max_queued_jobs
    if own is not None:
        found.append(_Limit(f"principal {owner!r}", (owner,), own, "DGPO_PRINCIPALS"))
    group = settings.group_of(owner)
    if group is not None and (cap := group[1].max_queued_jobs) is not None:
        name, policy = group
        found.append(_Limit(f"group {name!r}", tuple(policy.members), cap, "DGPO_GROUPS"))
    return found
