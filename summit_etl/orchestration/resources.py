"""The one resource every pipeline asset uses: the summit database."""

from __future__ import annotations

from dagster import ConfigurableResource

from summit_etl.store import db


class SummitDatabase(ConfigurableResource):
    """The summit database (`DATABASE_URL`): run records, watermarks, the pipelines table."""

    url: str

    def prepared_url(self) -> str:
        db.prepare(self.url)
        return self.url
