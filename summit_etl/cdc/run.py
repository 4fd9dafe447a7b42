"""Where the CDC sensor imports `mirror` from; CDC runs live in `summit_etl.runs.cdc`."""

from summit_etl.runs.cdc import mirror

__all__ = ["mirror"]
