"""Submit-time quota: how many jobs a principal may have queued at once.

Checked in the group commit's own session just before its insert, so with one batch in
flight per API process (`DGPO_SUBMIT_BATCHES_IN_FLIGHT=1`, the default) a principal
never passes its limit through that process; several API processes may overshoot by
the submissions they accept at the same moment.
"""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.settings import get_settings
from store.errors import QuotaExceeded
from store.models import Job, JobStatus

Owned = Sequence[str]
"""The owner of each entry of a batch, in batch order."""


def over_queued_limit(session: Session, owners: Owned) -> list[QuotaExceeded | None]:
    """Per entry of a batch, in order: None if its owner may queue one more job, else why
    not (the entries before it in the batch count as queued)."""
    settings = get_settings()
    limits = {o: settings.policy(o).max_queued_jobs for o in set(owners)}
    limited = [o for o, limit in limits.items() if limit is not None]
    queued: dict[str, int] = {}
    if limited:
        queued = dict(
            session.execute(
                select(Job.owner, func.count())
                .where(Job.status == JobStatus.QUEUED, Job.owner.in_(limited))
                .group_by(Job.owner)
            ).all()
        )
    verdicts: list[QuotaExceeded | None] = []
    for owner in owners:
        limit = limits[owner]
        if limit is None:
            verdicts.append(None)
        elif queued.get(owner, 0) >= limit:
            verdicts.append(
                QuotaExceeded(
                    f"principal {owner!r} already has {queued.get(owner, 0)} queued jobs, its "
                    f"limit max_queued_jobs={limit} (DGPO_PRINCIPALS); submit again when some "
                    "have started, or ask the operator to raise it"
                )
            )
        else:
            queued[owner] = queued.get(owner, 0) + 1
            verdicts.append(None)
    return verdicts
