"""etl_schema_changes: every source schema change a run detected, and what was done.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE etl_schema_changes (
            id           bigserial PRIMARY KEY,
            pipeline_id  text NOT NULL,
            run_id       text,
            target_table text NOT NULL,
            column_name  text NOT NULL,
            change       text NOT NULL CHECK (change IN ('added', 'dropped', 'retyped')),
            source_type  text,
            target_type  text,
            action       text NOT NULL,
            detected_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX etl_schema_changes_pipeline ON etl_schema_changes (pipeline_id, id)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS etl_schema_changes")
