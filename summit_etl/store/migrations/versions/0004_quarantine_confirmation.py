"""Quarantine confirmed with the target's commit: each row's status, identity and schema.

`status` (see summit_etl/store/quarantine.py): pending → quarantined | discarded, then
replaying → replayed, or superseded by a later run's copy. `row_key` identifies the row
across runs (its key, or its whole record); `record_schema` is the Arrow schema the
record had, so that replay restores its types (NaN and infinities included).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"

STATUSES = "'pending','quarantined','discarded','superseded','replaying','replayed'"


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE etl_quarantine
            ADD COLUMN status text NOT NULL DEFAULT 'quarantined' CHECK (status IN ({STATUSES})),
            ADD COLUMN row_key text,
            ADD COLUMN record_schema bytea
        """
    )
    op.execute("UPDATE etl_quarantine SET status = 'replayed' WHERE replayed_at IS NOT NULL")
    op.execute(
        "CREATE INDEX etl_quarantine_waiting ON etl_quarantine (pipeline_id, row_key)"
        " WHERE status = 'quarantined'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS etl_quarantine_waiting")
    op.execute(
        "ALTER TABLE etl_quarantine DROP COLUMN status, DROP COLUMN row_key,"
        " DROP COLUMN record_schema"
    )
