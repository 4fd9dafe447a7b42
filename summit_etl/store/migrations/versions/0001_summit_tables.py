"""The operator-facing summit tables of SPEC §4.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

RUN_STATUSES = "'pending','running','success','partial_success','failed','cancelled'"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE pipelines (
            pipeline_id text PRIMARY KEY,
            name        text NOT NULL,
            enabled     boolean NOT NULL DEFAULT true,
            config      jsonb NOT NULL,
            origin      text NOT NULL DEFAULT 'api' CHECK (origin IN ('file', 'api')),
            version     integer NOT NULL DEFAULT 1,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        f"""
        CREATE TABLE pipeline_runs (
            id                   text PRIMARY KEY,
            pipeline_id          text NOT NULL,
            status               text NOT NULL CHECK (status IN ({RUN_STATUSES})),
            trigger              text NOT NULL DEFAULT 'manual',
            full_reload          boolean NOT NULL DEFAULT false,
            created_at           timestamptz NOT NULL DEFAULT now(),
            start_time           timestamptz,
            end_time             timestamptz,
            records_extracted    bigint NOT NULL DEFAULT 0,
            records_transformed  bigint NOT NULL DEFAULT 0,
            records_filtered     bigint NOT NULL DEFAULT 0,
            records_loaded       bigint NOT NULL DEFAULT 0,
            records_failed       bigint NOT NULL DEFAULT 0,
            records_quarantined  bigint NOT NULL DEFAULT 0,
            bytes_processed      bigint NOT NULL DEFAULT 0,
            watermark_from       text,
            watermark_to         text,
            quality_score        double precision,
            errors               jsonb NOT NULL DEFAULT '[]'::jsonb,
            metrics              jsonb NOT NULL DEFAULT '{{}}'::jsonb
        )
        """
    )
    op.execute(
        "CREATE INDEX pipeline_runs_by_pipeline ON pipeline_runs (pipeline_id, created_at DESC)"
    )
    op.execute("CREATE INDEX pipeline_runs_by_status ON pipeline_runs (status, created_at)")
    op.execute(
        """
        CREATE TABLE etl_watermarks (
            id                bigserial PRIMARY KEY,
            pipeline_id       text NOT NULL,
            source_table      text NOT NULL,
            watermark_column  text NOT NULL,
            last_loaded_value text NOT NULL,
            last_load_time    timestamptz NOT NULL DEFAULT now(),
            records_loaded    bigint NOT NULL DEFAULT 0,
            status            text NOT NULL DEFAULT 'success',
            run_id            text
        )
        """
    )
    op.execute(
        "CREATE INDEX etl_watermarks_current ON etl_watermarks (pipeline_id, source_table, id DESC)"
    )
    op.execute(
        """
        CREATE TABLE etl_cdc_watermarks (
            pipeline_id          text NOT NULL,
            source_table         text NOT NULL,
            last_processed_value text,
            last_processed_lsn   text,
            last_processed_time  timestamptz NOT NULL DEFAULT now(),
            updated_at           timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (pipeline_id, source_table)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE data_quality_reports (
            id              bigserial PRIMARY KEY,
            pipeline_run_id text NOT NULL UNIQUE,
            pipeline_id     text NOT NULL,
            "timestamp"     timestamptz NOT NULL DEFAULT now(),
            overall_score   double precision NOT NULL,
            dimensions      jsonb NOT NULL,
            issues          jsonb NOT NULL DEFAULT '[]'::jsonb,
            statistics      jsonb NOT NULL DEFAULT '{}'::jsonb
        )
        """
    )
    op.execute(
        'CREATE INDEX data_quality_reports_latest ON data_quality_reports (pipeline_id, "timestamp" DESC)'
    )
    op.execute(
        """
        CREATE TABLE etl_quarantine (
            id            bigserial PRIMARY KEY,
            run_id        text NOT NULL,
            pipeline_id   text NOT NULL,
            record        jsonb NOT NULL,
            failed_rules  jsonb NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            replayed_at   timestamptz,
            replay_run_id text
        )
        """
    )
    op.execute("CREATE INDEX etl_quarantine_by_run ON etl_quarantine (run_id)")


def downgrade() -> None:
    for table in (
        "etl_quarantine",
        "data_quality_reports",
        "etl_cdc_watermarks",
        "etl_watermarks",
        "pipeline_runs",
        "pipelines",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
