"""Data quality (SPEC §5): Great Expectations rules on every run, six dimensions, quarantine."""
