"""The operators' REST API on port 4020 (Starlette), translated onto Dagster GraphQL.

Built by its own issue ("The operators' API on port 4020"); nothing is served yet.
"""
