"""The operators' REST API on port 4020 (Starlette), translated onto Dagster GraphQL."""
