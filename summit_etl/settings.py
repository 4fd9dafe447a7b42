"""Process-wide settings read from the environment, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_DATABASE_URL = "postgresql://localhost:5432/summit"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    database_url: str
    pipelines_dir: Path
    log_file: Path
    log_level: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            pipelines_dir=Path(os.environ.get("SUMMIT_PIPELINES_DIR", PROJECT_ROOT / "pipelines")),
            log_file=Path(
                os.environ.get("SUMMIT_LOG_FILE", PROJECT_ROOT / "logs" / "etl-service.log")
            ),
            log_level=os.environ.get("LOG_LEVEL", "info").upper(),
        )
