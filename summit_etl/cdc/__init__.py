"""Change data capture: changes read from a source, applied to the target exactly once.

A CDC run reads the changes a source recorded since the target's committed offset
(`sources.ChangeSource`: polled by timestamp or version, captured by a trigger, or
decoded from a logical replication slot), applies each batch to the target together
with its change log and its offset in one target transaction (`apply`), then tells the
source the batch is safe to forget (prune captured rows, advance the slot) and mirrors
the offset to `etl_cdc_watermarks` for operators (`run`).
"""
