"""`/usage`: wall and GPU seconds of ended attempts, summed per job, principal or queue."""

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from service.api.deps import ReadToken, SessionDep
from service.schemas import UsageOut, UsageRowOut
from store import usage
from store.errors import BadRequest
from store.models import utcnow

router = APIRouter(tags=["fleet"])


@router.get("/usage", response_model=UsageOut)
def get_usage(
    session: SessionDep,
    token: ReadToken,
    by: Annotated[Literal["principal", "job", "queue"], Query()] = "principal",
    since: Annotated[datetime | None, Query(description="default: 24 hours before `until`")] = None,
    until: Annotated[datetime | None, Query(description="default: now")] = None,
) -> UsageOut:
    """Attempts that ended in [since, until), summed per `by`: attempts, wall seconds, GPU
    seconds (wall × GPUs held). A principal sees its own; an admin sees everyone's."""
    end = until or utcnow()
    start = since or end - timedelta(days=1)
    for name, stamp in (("since", start), ("until", end)):
        if stamp.tzinfo is None:
            raise BadRequest(
                f"{name} needs a time zone, e.g. 2026-12-07T00:00:00Z", ("query", name)
            )
    rows = usage.summed(session, by, start, end, owner=token.visible_owner)
    return UsageOut(
        by=by,
        since=start,
        until=end,
        rows=[UsageRowOut.model_validate(row, from_attributes=True) for row in rows],
    )
