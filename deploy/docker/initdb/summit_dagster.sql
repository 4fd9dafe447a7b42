-- Dagster's own storage, beside the summit database that POSTGRES_DB creates.
CREATE DATABASE summit_dagster;
