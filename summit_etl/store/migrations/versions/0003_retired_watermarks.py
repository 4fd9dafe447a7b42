"""Pipeline lifecycle: a deleted pipeline's watermark history stays for audit but is
retired, so a pipeline created later with the same id never reads it.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE etl_watermarks ADD COLUMN retired_at timestamptz")
    # Runs read only the live history: the index covers just that.
    op.execute("DROP INDEX IF EXISTS etl_watermarks_current")
    op.execute(
        "CREATE INDEX etl_watermarks_current ON etl_watermarks (pipeline_id, source_table, id DESC) "
        "WHERE retired_at IS NULL"
    )


def downgrade() -> None:
    # Without the marker retired rows would be read as current again: remove them.
    op.execute("DELETE FROM etl_watermarks WHERE retired_at IS NOT NULL")
    op.execute("DROP INDEX IF EXISTS etl_watermarks_current")
    op.execute("ALTER TABLE etl_watermarks DROP COLUMN retired_at")
    op.execute(
        "CREATE INDEX etl_watermarks_current ON etl_watermarks (pipeline_id, source_table, id DESC)"
    )
