"""The one exception type of the transform package."""

from __future__ import annotations


class TransformError(ValueError):
    """A transformation spec is invalid, or a batch cannot be transformed as configured."""
