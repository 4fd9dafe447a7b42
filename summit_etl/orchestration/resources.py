"""The one resource every pipeline asset uses: the summit database."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar

from summit_etl.store import db


class SummitDatabase(ConfigurableResource):
    """The summit database (`DATABASE_URL`): run records, watermarks, the pipelines table."""

    url: str

    @classmethod
    def for_url(cls, url: str) -> SummitDatabase:
        """Through `EnvVar` when the URL is DATABASE_URL's, so that the Dagster UI shows
        the variable's name and never its password; the built-in default URL has none."""
        if os.environ.get("DATABASE_URL") == url:
            return cls(url=EnvVar("DATABASE_URL"))
        return cls(url=url)

    def prepared_url(self) -> str:
        db.prepare(self.url)
        return self.url
