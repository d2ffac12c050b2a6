"""Gang members: the K workers a multi-node job's attempt runs on, one lease each.

One row per member of the current attempt (`store.gangs`): the worker it was placed on,
whether it has started, its own lease (renewed by that worker), and for member 0 the
c10d rendezvous endpoint the others join.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gang_members",
        sa.Column(
            "job_id",
            sa.String(length=36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("member", sa.Integer(), primary_key=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("endpoint", sa.String(length=255), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gang_members_worker_state", "gang_members", ["worker", "state"])


def downgrade() -> None:
    op.drop_index("ix_gang_members_worker_state", table_name="gang_members")
    op.drop_table("gang_members")
