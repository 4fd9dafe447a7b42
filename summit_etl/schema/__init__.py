"""What a pipeline can do with its source's schema: transformations that fit the column
types, and (later) the contract for source schema changes."""
