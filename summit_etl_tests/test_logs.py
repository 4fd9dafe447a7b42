"""Log lines never carry a password: in URLs (with or without a user), key=value DSNs,
secret-named fields, or nested deep inside structured fields."""

from __future__ import annotations

import json
import logging

import pytest

from summit_etl.logs import JsonFormatter, redact_text
from summit_etl.store.db import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://etl:s3cret@h:5432/d", "postgresql://etl:***@h:5432/d"),
        ("postgresql://:s3cret@h/d", "postgresql://:***@h/d"),
        ("host=h password=s3cret dbname=d", "host=h password=*** dbname=d"),
        ("host=h password = 's3 cret' dbname=d", "host=h password = *** dbname=d"),
        ("PGPASSWORD=s3cret psql", "PGPASSWORD=*** psql"),
        ("postgresql://h:5432/d and http://example.com:8080/x", None),
    ],
)
def test_passwords_in_text_are_masked(text: str, expected: str | None) -> None:
    assert redact_text(text) == (text if expected is None else expected)


def line(message: str, **extra: object) -> str:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", **extra})
    return JsonFormatter().format(record)


def test_nested_and_secret_named_fields_are_masked() -> None:
    class Config:
        def __str__(self) -> str:
            return "Config(url='postgresql://u:s3cret@h/d')"

    text = line(
        "connecting to postgresql://u:s3cret@h/d",
        pipelineId="p",
        details={"sources": [{"url": "postgresql://:s3cret@h/d"}], "dsn": "password=s3cret"},
        auth={"apiToken": "s3cret", "password": ["s3cret"]},
        config=Config(),
        recordsLoaded=5,
    )
    assert "s3cret" not in text
    entry = json.loads(text)
    assert entry["pipelineId"] == "p" and entry["recordsLoaded"] == 5
    assert entry["details"]["sources"][0]["url"] == "postgresql://:***@h/d"
    assert entry["auth"] == {"apiToken": "***", "password": "***"}


def test_redact_masks_urls_and_never_echoes_what_it_cannot_parse() -> None:
    assert "s3cret" not in redact("postgresql://:s3cret@h/d")
    assert "s3cret" not in redact("host='unclosed password=s3cret")
