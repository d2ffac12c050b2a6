"""Preemption: when a running job was asked to give its slot up.

`preempt_requested_at` is set on a running job that the reconciler preempts for a
waiting one (`store.preemption`), or whose worker drains with `--preempt` or got SIGTERM;
its slot stops it at the next step boundary and puts it back in the queue. The time
measures the preemption's latency (request to slot free) and bounds its grace.

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("preempt_requested_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("preempt_requested_at")
