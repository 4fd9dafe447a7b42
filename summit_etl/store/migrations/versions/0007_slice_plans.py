"""etl_slice_plans: how a pipeline's full read is split into the slices of its partitioned
job, shared by the slice runs of one backfill; pipeline_runs.slice: which slice a run loaded.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE etl_slice_plans (
            pipeline_id  text PRIMARY KEY,
            split_column text NOT NULL,
            parts        integer NOT NULL CHECK (parts >= 1),
            bounds       text[] NOT NULL,
            made_for     text,
            version      integer NOT NULL DEFAULT 1,
            made_at      timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("ALTER TABLE pipeline_runs ADD COLUMN slice text")


def downgrade() -> None:
    op.execute("ALTER TABLE pipeline_runs DROP COLUMN IF EXISTS slice")
    op.execute("DROP TABLE IF EXISTS etl_slice_plans")
