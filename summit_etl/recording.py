"""Where `quality/run.py` imports the run's request and outcome from; they live in
`summit_etl.runs.context` (the run's record is kept by `summit_etl.runs.lifecycle`)."""

from summit_etl.runs.context import RunOutcome, RunRequest

__all__ = ["RunOutcome", "RunRequest"]
