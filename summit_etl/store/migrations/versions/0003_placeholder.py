"""Pipeline lifecycle: what a pipeline owns is retired with it (filled in by the lifecycle work).

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
