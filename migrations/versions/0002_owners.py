"""Owners: tokens act for a principal; jobs and schedules belong to one; list indexes.

Existing tokens, jobs and schedules go to the `default` principal, so nothing changes
for a deployment that never names one. Idempotency-Keys and schedule names become unique
per owner. Three indexes serve `GET /jobs` pages (newest first, by owner and/or kind).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_PRINCIPAL = "default"
# SQLite's constraints from 0001 have no name; batch mode reflects them under these.
NAMING = {"uq": "%(table_name)s_%(column_0_name)s_key"}
LIST_INDEXES = {
    "ix_jobs_owner_created": ["owner", "created_at", "id"],
    "ix_jobs_kind_created": ["kind", "created_at", "id"],
    "ix_jobs_owner_kind_created": ["owner", "kind", "created_at", "id"],
}


def _owner_column(name: str) -> sa.Column:
    return sa.Column(name, sa.String(255), nullable=False, server_default=DEFAULT_PRINCIPAL)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(_owner_column("principal"))
    with op.batch_alter_table("jobs", naming_convention=NAMING) as batch:
        batch.add_column(_owner_column("owner"))
        batch.drop_constraint("jobs_idempotency_key_key", type_="unique")
        batch.create_unique_constraint(
            "uq_jobs_owner_idempotency_key", ["owner", "idempotency_key"]
        )
    for name, columns in LIST_INDEXES.items():
        op.create_index(name, "jobs", columns)
    with op.batch_alter_table("schedules", naming_convention=NAMING) as batch:
        batch.add_column(_owner_column("owner"))
        batch.drop_constraint("schedules_name_key", type_="unique")
        batch.create_unique_constraint("uq_schedules_owner_name", ["owner", "name"])


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_constraint("uq_schedules_owner_name", type_="unique")
        batch.create_unique_constraint("schedules_name_key", ["name"])
        batch.drop_column("owner")
    for name in LIST_INDEXES:
        op.drop_index(name, table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint("uq_jobs_owner_idempotency_key", type_="unique")
        batch.create_unique_constraint("jobs_idempotency_key_key", ["idempotency_key"])
        batch.drop_column("owner")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("principal")
