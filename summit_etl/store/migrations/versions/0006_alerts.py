"""etl_alerts: the alerts of the monitoring rules (runbook "Monitoring Alerts").

One row per alert: opened when its rule first fires for a subject (`dedup_key`), kept open
(never duplicated) while it keeps firing, resolved when it stops. `deliveries` records every
attempt to tell a sink about it.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE etl_alerts (
            id              bigserial PRIMARY KEY,
            rule            text NOT NULL,
            severity        text NOT NULL CHECK (severity IN ('critical', 'warning', 'info')),
            pipeline_id     text,
            dedup_key       text NOT NULL,
            status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
            message         text NOT NULL,
            details         jsonb NOT NULL DEFAULT '{}'::jsonb,
            link            text,
            opened_at       timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            resolved_at     timestamptz,
            acknowledged_at timestamptz,
            acknowledged_by text,
            deliveries      jsonb NOT NULL DEFAULT '[]'::jsonb
        )
        """
    )
    # At most one open alert per rule and subject: a firing rule updates it, never repeats it.
    op.execute(
        "CREATE UNIQUE INDEX etl_alerts_one_open ON etl_alerts (dedup_key) WHERE status = 'open'"
    )
    op.execute("CREATE INDEX etl_alerts_status ON etl_alerts (status, severity, opened_at DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS etl_alerts")
