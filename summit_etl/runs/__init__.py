"""A run's life in one place: its context, its clock, its record, and the batch and CDC
drivers. `summit_etl.engine.run_pipeline` is the entry point."""
