"""JSON-lines logging to `logs/etl-service.log` and stdout, one object a line.

Context such as `pipelineId`, `runId`, `stage`, `recordsLoaded` or `durationMs` travels
in `extra=` and lands as top-level keys, so `jq 'select(.pipelineId == "x")'` works.
Passwords in connection URLs and key=value DSNs, and values under secret-sounding
keys, are masked before anything is written, however deeply a field nests them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from summit_etl.settings import Settings

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
# `scheme://user:password@`, also with no user (`postgresql://:pw@host`).
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
# `password=...` in key=value DSNs and PGPASSWORD=..., the value quoted or bare.
_KV_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# Keys whose values are secrets whatever they look like.
_SECRET_KEY = re.compile(r"password|passwd|secret|token|api_?key", re.IGNORECASE)
MASK = "***"


def redact_text(text: str) -> str:
    return _KV_PASSWORD.sub(rf"\1{MASK}", _URL_PASSWORD.sub(rf"\1{MASK}\3", text))


def redact_value(value: object) -> object:
    """`value` with secrets masked, however deeply it nests them in mappings and lists."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_KEY.search(str(key)) else redact_value(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(item) for item in value]
    return value


def _as_text(value: object) -> str:
    """How json.dumps writes what it cannot encode (exceptions, paths, configs)."""
    return redact_text(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = MASK if _SECRET_KEY.search(key) else redact_value(value)
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=_as_text)


_configured: set[str] = set()


def configure_logging(settings: Settings) -> None:
    """Attach the JSON handlers to the `summit_etl` logger (once per log file)."""
    logger = logging.getLogger("summit_etl")
    level = logging.getLevelName(settings.log_level)
    logger.setLevel(level if isinstance(level, int) else logging.INFO)
    logger.propagate = False
    key = str(settings.log_file)
    if key in _configured:
        return
    settings.log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = JsonFormatter()
    for handler in (logging.FileHandler(settings.log_file), logging.StreamHandler(sys.stdout)):
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    _configured.add(key)
