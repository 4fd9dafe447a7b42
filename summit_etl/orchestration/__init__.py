"""Dagster: pipelines as assets, jobs, schedules and sensors."""
