"""Loading: Arrow batches into PostgreSQL targets by COPY BINARY and set-based SQL."""
