"""Extraction: PostgreSQL sources streamed as Arrow batches."""
