"""Fleet policy: retry back-off, classified errors, attempt start, and usage per attempt.

`not_before` holds a transiently failed job until its back-off ends (the claim and the
reconciler respect it); `error_code`/`error_attempt` make the job's error an object;
`attempt_started_at` and `last_failed_on` let the attempt's end be accounted and the
retry prefer another worker; `attempt_usage` is one row per ended attempt (`GET /usage`,
recent usage for fair share).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JOB_COLUMNS: tuple[tuple[str, sa.types.TypeEngine], ...] = (
    ("not_before", TS),
    ("error_code", sa.String(length=32)),
    ("error_attempt", sa.Integer()),
    ("attempt_started_at", TS),
    ("last_failed_on", sa.String(length=255)),
)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, type_ in JOB_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    op.create_table(
        "attempt_usage",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column(
            "job_id",
            sa.String(length=36),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("gpu_type", sa.String(length=32), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=255), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=False),
        sa.Column("wall_seconds", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
    )
    op.create_index("ix_attempt_usage_ended", "attempt_usage", ["ended_at"])
    op.create_index("ix_attempt_usage_job", "attempt_usage", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_attempt_usage_job", table_name="attempt_usage")
    op.drop_index("ix_attempt_usage_ended", table_name="attempt_usage")
    op.drop_table("attempt_usage")
    with op.batch_alter_table("jobs") as batch:
        for name, _ in reversed(JOB_COLUMNS):
            batch.drop_column(name)
