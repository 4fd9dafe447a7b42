"""JSON-lines logging to `logs/etl-service.log` and stdout, one object a line.

Context such as `pipelineId`, `runId`, `stage`, `recordsLoaded` or `durationMs` travels
in `extra=` and lands as top-level keys, so `jq 'select(.pipelineId == "x")'` works.
Passwords in connection URLs are masked before anything is written.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from summit_etl.settings import Settings

_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]+:)([^@\s]+)(@)")
_KV_PASSWORD = re.compile(r"(password\s*=\s*)(\S+)", re.IGNORECASE)


def redact_text(text: str) -> str:
    return _KV_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", text))


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
                entry[key] = redact_text(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


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
