"""etl_schema_changes: every source schema change a run detected (filled in by the schema work).

Revision ID: 0005
Revises: 0004
"""

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
