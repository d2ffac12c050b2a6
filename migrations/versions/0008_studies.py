"""Studies: one request that trains every (arm, seed) and compares the arms.

A study row keeps the validated request and its idempotency key; its members are jobs
tagged with the study's id in their metadata (`study`, `arm`, `seed`, `role`), found
through the metadata GIN index, so the jobs table is unchanged.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(length=36), primary_key=True),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("warnings", JSON, nullable=False),
        sa.Column("cancelled_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("owner", "idempotency_key", name="uq_studies_owner_idempotency_key"),
    )
    op.create_index("ix_studies_owner_created", "studies", ["owner", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_studies_owner_created", table_name="studies")
    op.drop_table("studies")
