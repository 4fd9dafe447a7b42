"""The monitoring rules (runbook "Monitoring Alerts"): each reads the summit tables (or asks a
source or the API) and says what fires now. Thresholds come from AlertSettings.

A rule returns every subject it fires for; the store opens, keeps and resolves alerts from
that. A rule that cannot be evaluated (a source down) raises, and its open alerts are then
left as they are rather than resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import psycopg
from psycopg import Connection

from summit_etl.alerts.settings import AlertSettings
from summit_etl.cdc.logical import slot_name
from summit_etl.config import CdcStrategy, ExtractionStrategy, PipelineConfig
from summit_etl.orchestration.keys import job_name
from summit_etl.store.alerts import Finding


@dataclass(frozen=True)
class RuleContext:
    conn: Connection  # the summit database
    settings: AlertSettings
    pipelines: Mapping[str, PipelineConfig]

    def pipeline_link(self, pipeline_id: str) -> str:
        return f"{self.settings.dagster_ui_url}/jobs/{job_name(pipeline_id)}"

    def run_link(self, run_id: str) -> str:
        return f"{self.settings.dagster_ui_url}/runs/{run_id}"


Rule = Callable[[RuleContext], Iterator[Finding]]


def failure_rate(ctx: RuleContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        """
        SELECT pipeline_id, count(*) FILTER (WHERE status = 'failed'), count(*)
          FROM pipeline_runs
         WHERE created_at > now() - make_interval(secs => %s)
           AND status IN ('success', 'partial_success', 'failed', 'cancelled')
         GROUP BY pipeline_id
        HAVING count(*) FILTER (WHERE status = 'failed')::float / count(*) > %s
        """,
        (ctx.settings.window_hours * 3600, ctx.settings.failure_rate),
    ).fetchall()
    for pipeline_id, failed, total in rows:
        yield Finding(
            "failure_rate",
            "critical",
            pipeline_id,
            f"pipeline {pipeline_id}: {failed} of {total} runs failed in the last "
            f"{ctx.settings.window_hours:g} h (over {ctx.settings.failure_rate:.0%})",
            pipeline_id,
            {"failed": failed, "runs": total},
            ctx.pipeline_link(pipeline_id),
        )


def _cdc_lag(ctx: RuleContext, rule: str, severity: str, limit: float) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        """
        SELECT pipeline_id, source_table, extract(epoch FROM now() - last_processed_time)
          FROM etl_cdc_watermarks
         WHERE last_processed_time < now() - make_interval(secs => %s)
        """,
        (limit,),
    ).fetchall()
    for pipeline_id, source_table, lag in rows:
        yield Finding(
            rule,
            severity,
            pipeline_id,
            f"CDC of {source_table} for {pipeline_id} is {float(lag) / 60:.0f} min behind "
            f"(limit {limit / 60:.0f} min)",
            pipeline_id,
            {"lagSeconds": round(float(lag), 1), "sourceTable": source_table},
            ctx.pipeline_link(pipeline_id),
        )


def cdc_lag_critical(ctx: RuleContext) -> Iterator[Finding]:
    yield from _cdc_lag(ctx, "cdc_lag_critical", "critical", ctx.settings.cdc_lag_critical_seconds)


def cdc_lag_warning(ctx: RuleContext) -> Iterator[Finding]:
    yield from _cdc_lag(ctx, "cdc_lag_warning", "warning", ctx.settings.cdc_lag_warning_seconds)


def service_health(ctx: RuleContext) -> Iterator[Finding]:
    url = ctx.settings.health_url
    if not url:
        return
    import httpx  # here: every run worker loads this module with the code location, none sends

    try:
        response = httpx.get(url, timeout=5)
        status = response.json().get("status") if response.status_code in (200, 503) else None
    except (httpx.HTTPError, ValueError) as exc:
        status, problem = None, f"did not answer: {type(exc).__name__}"
    else:
        problem = f"answered HTTP {response.status_code}, status {status}"
    if status in ("healthy", "degraded"):
        return
    yield Finding(
        "service_health", "critical", "service", f"the service's health check {problem}",
        None, {"url": url}, ctx.settings.dagster_ui_url,
    )


def _latest_scores(ctx: RuleContext) -> dict[str, list[tuple[float, str]]]:
    """Each pipeline's two newest quality scores (newest first) with their run ids."""
    rows = ctx.conn.execute(
        """
        SELECT pipeline_id, overall_score, pipeline_run_id FROM (
            SELECT pipeline_id, overall_score, pipeline_run_id,
                   row_number() OVER (PARTITION BY pipeline_id ORDER BY "timestamp" DESC, id DESC)
              FROM data_quality_reports) newest
         WHERE row_number <= 2
         ORDER BY pipeline_id, row_number
        """
    ).fetchall()
    scores: dict[str, list[tuple[float, str]]] = {}
    for pipeline_id, score, run_id in rows:
        scores.setdefault(pipeline_id, []).append((float(score), run_id))
    return scores


def quality_low(ctx: RuleContext) -> Iterator[Finding]:
    for pipeline_id, ((score, run_id), *_) in _latest_scores(ctx).items():
        if score < ctx.settings.quality_critical:
            yield Finding(
                "quality_low", "critical", pipeline_id,
                f"pipeline {pipeline_id}: quality score {score:.1f} is below "
                f"{ctx.settings.quality_critical:g}",
                pipeline_id, {"score": score, "runId": run_id}, ctx.run_link(run_id),
            )


def quality_drop(ctx: RuleContext) -> Iterator[Finding]:
    for pipeline_id, scores in _latest_scores(ctx).items():
        if len(scores) < 2:
            continue
        (score, run_id), (previous, _) = scores
        if previous - score > ctx.settings.quality_drop:
            yield Finding(
                "quality_drop", "warning", pipeline_id,
                f"pipeline {pipeline_id}: quality score fell from {previous:.1f} to {score:.1f}",
                pipeline_id, {"score": score, "previous": previous, "runId": run_id},
                ctx.run_link(run_id),
            )


def slot_retention(ctx: RuleContext) -> Iterator[Finding]:
    for pipeline_id, config in ctx.pipelines.items():
        if config.cdc is None or config.cdc.strategy is not CdcStrategy.log_based:
            continue
        with psycopg.connect(config.source.url, connect_timeout=5) as source:
            row = source.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) "
                "FROM pg_replication_slots WHERE slot_name = %s",
                (slot_name(pipeline_id),),
            ).fetchone()
        retained = float(row[0]) if row and row[0] is not None else 0.0
        if retained > ctx.settings.slot_retained_bytes:
            yield Finding(
                "slot_retention", "critical", pipeline_id,
                f"replication slot of {pipeline_id} retains {retained / 1024**2:.0f} MiB of WAL "
                f"(limit {ctx.settings.slot_retained_bytes / 1024**2:.0f} MiB): start its CDC "
                "again or drop the slot",
                pipeline_id, {"retainedBytes": retained, "slot": slot_name(pipeline_id)},
                ctx.pipeline_link(pipeline_id),
            )


def sla_exceeded(ctx: RuleContext) -> Iterator[Finding]:
    for pipeline_id, config in ctx.pipelines.items():
        limit = config.sla.max_duration_seconds
        if limit is None:
            continue
        rows = ctx.conn.execute(
            """
            SELECT id, extract(epoch FROM coalesce(end_time, now()) - start_time), status
              FROM pipeline_runs
             WHERE pipeline_id = %s AND start_time > now() - make_interval(secs => %s)
               AND extract(epoch FROM coalesce(end_time, now()) - start_time) > %s
            """,
            (pipeline_id, ctx.settings.window_hours * 3600, limit),
        ).fetchall()
        for run_id, seconds, status in rows:
            yield Finding(
                "sla_exceeded", "warning", run_id,
                f"run {run_id} of {pipeline_id} took {float(seconds):.0f} s "
                f"({status}), over its SLA of {limit:g} s",
                pipeline_id, {"seconds": round(float(seconds), 1), "slaSeconds": limit},
                ctx.run_link(run_id),
            )


def watermark_stuck(ctx: RuleContext) -> Iterator[Finding]:
    runs = ctx.settings.stale_watermark_runs
    for pipeline_id, config in ctx.pipelines.items():
        if config.extraction.strategy is not ExtractionStrategy.incremental:
            continue
        marks = [
            row[0]
            for row in ctx.conn.execute(
                """
                SELECT watermark_to FROM pipeline_runs
                 WHERE pipeline_id = %s AND status IN ('success', 'partial_success')
                 ORDER BY created_at DESC LIMIT %s
                """,
                (pipeline_id, runs),
            ).fetchall()
        ]
        if len(marks) == runs and len(set(marks)) == 1:
            yield Finding(
                "watermark_stuck", "warning", pipeline_id,
                f"pipeline {pipeline_id}: the watermark has not moved for {runs} runs "
                f"(still {marks[0]}): is the source still written?",
                pipeline_id, {"watermark": marks[0], "runs": runs},
                ctx.pipeline_link(pipeline_id),
            )


def quarantine_growing(ctx: RuleContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        """
        SELECT pipeline_id,
               count(*) FILTER (WHERE created_at > now() - make_interval(secs => %(w)s)),
               count(*) FILTER (WHERE created_at <= now() - make_interval(secs => %(w)s))
          FROM etl_quarantine
         WHERE replayed_at IS NULL AND created_at > now() - make_interval(secs => 2 * %(w)s)
         GROUP BY pipeline_id
        """,
        {"w": ctx.settings.window_hours * 3600},
    ).fetchall()
    for pipeline_id, recent, before in rows:
        if recent > before:
            yield Finding(
                "quarantine_growing", "warning", pipeline_id,
                f"pipeline {pipeline_id}: {recent} rows quarantined in the last "
                f"{ctx.settings.window_hours:g} h, {before} in the window before",
                pipeline_id, {"recent": recent, "before": before},
                ctx.pipeline_link(pipeline_id),
            )


def pipeline_changed(ctx: RuleContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        "SELECT pipeline_id, version, updated_at FROM pipelines "
        "WHERE updated_at > now() - make_interval(secs => %s)",
        (ctx.settings.info_window_minutes * 60,),
    ).fetchall()
    for pipeline_id, version, _ in rows:
        change = "created" if version == 1 else f"changed (version {version})"
        yield Finding(
            "pipeline_changed", "info", f"{pipeline_id}@{version}",
            f"pipeline {pipeline_id} {change}", pipeline_id, {"version": version},
            ctx.pipeline_link(pipeline_id),
        )


def quality_report(ctx: RuleContext) -> Iterator[Finding]:
    rows = ctx.conn.execute(
        'SELECT pipeline_id, pipeline_run_id, overall_score FROM data_quality_reports '
        'WHERE "timestamp" > now() - make_interval(secs => %s)',
        (ctx.settings.info_window_minutes * 60,),
    ).fetchall()
    for pipeline_id, run_id, score in rows:
        yield Finding(
            "quality_report", "info", run_id,
            f"quality report of run {run_id} ({pipeline_id}): score {float(score):.1f}",
            pipeline_id, {"score": float(score), "runId": run_id}, ctx.run_link(run_id),
        )


RULES: dict[str, Rule] = {
    rule.__name__: rule
    for rule in (
        failure_rate, cdc_lag_critical, service_health, quality_low, slot_retention,
        sla_exceeded, quality_drop, cdc_lag_warning, watermark_stuck, quarantine_growing,
        pipeline_changed, quality_report,
    )
}
