"""What `POST /admin/stop-all` stopped, so that `resume-all` restarts exactly that,
even after the service restarted in between (runbook "Database Failover").

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE etl_admin_stops (
            id          bigserial PRIMARY KEY,
            kind        text NOT NULL CHECK (kind IN ('schedule', 'sensor', 'run')),
            name        text NOT NULL,
            pipeline_id text,
            stopped_at  timestamptz NOT NULL DEFAULT now(),
            resumed_at  timestamptz
        )
        """
    )
    op.execute(
        "CREATE INDEX etl_admin_stops_open ON etl_admin_stops (resumed_at) WHERE resumed_at IS NULL"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS etl_admin_stops")
