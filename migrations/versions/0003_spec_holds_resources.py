"""The spec is the one record of a job's resources and steps: drop the columns that copied it.

`resources`, `gpus`, `gpu_type` and `total_steps` repeated `spec.resources` and
`spec.total_steps`; the API and the fleet queries now read the spec. `queue` stays: the
indexed routing key the claim and fleet queries filter on, derived once at insert.
Rows whose spec lacks a copied value (none written by the service) get it from the
column before the column goes; the downgrade fills the columns back from the spec.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
COPIES: dict[str, sa.types.TypeEngine] = {
    "resources": JSON,
    "gpus": sa.Integer(),
    "gpu_type": sa.String(length=32),
    "total_steps": sa.Integer(),
}
"""The columns that copied the spec, as 0001 created them."""
NOT_NULL = ("resources", "gpus", "gpu_type")
"""Of `COPIES`, those 0001 made NOT NULL (an eval job has no total_steps)."""
JOBS = sa.table(
    "jobs",
    sa.column("id", sa.String()),
    sa.column("spec", JSON),
    *(sa.column(name, type_) for name, type_ in COPIES.items()),
)


def upgrade() -> None:
    _copy_missing_values_into_specs()
    with op.batch_alter_table("jobs") as batch:
        for name in COPIES:
            batch.drop_column(name)


def _copy_missing_values_into_specs() -> None:
    spec = JOBS.c.spec
    lacking = sa.or_(
        spec[("resources",)].as_string().is_(None),
        sa.and_(JOBS.c.total_steps.is_not(None), spec[("total_steps",)].as_string().is_(None)),
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(JOBS.c.id, spec, JOBS.c.resources, JOBS.c.total_steps).where(lacking)
    ).all()
    for job_id, old, resources, total_steps in rows:
        new = {"resources": resources, **old}
        if total_steps is not None:
            new.setdefault("total_steps", total_steps)
        bind.execute(sa.update(JOBS).where(JOBS.c.id == job_id).values(spec=new))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        for name, type_ in COPIES.items():
            batch.add_column(sa.Column(name, type_, nullable=True))
    spec = JOBS.c.spec
    op.execute(
        sa.update(JOBS).values(
            resources=spec[("resources",)],
            gpus=spec[("resources", "gpus")].as_integer(),
            gpu_type=spec[("resources", "gpu_type")].as_string(),
            total_steps=spec[("total_steps",)].as_integer(),
        )
    )
    with op.batch_alter_table("jobs") as batch:
        for name in NOT_NULL:
            batch.alter_column(name, nullable=False)
