"""The API's settings, from the environment, read once at start-up."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from summit_etl.settings import Settings


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 4020
    database_url: str = Settings.from_env().database_url
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    tokens: frozenset[str] = field(default_factory=frozenset)
    allow_insecure_bind: bool = False
    max_body_bytes: int = 1_048_576
    workers: int = 2
    dagster_timeout_seconds: float = 10.0
    health_timeout_seconds: float = 2.0
    wait_timeout_seconds: float = 900.0
    cdc_slot_degraded_bytes: int = 1 << 30  # /health is degraded when a slot retains more

    @classmethod
    def from_env(cls) -> ApiSettings:
        env = os.environ
        return cls(
            host=env.get("ETL_SERVICE_HOST", "127.0.0.1"),
            port=int(env.get("ETL_SERVICE_PORT", "4020")),
            database_url=Settings.from_env().database_url,
            dagster_graphql_url=env.get("DAGSTER_GRAPHQL_URL", "http://127.0.0.1:3000/graphql"),
            tokens=frozenset(
                t.strip() for t in env.get("ETL_API_TOKENS", "").split(",") if t.strip()
            ),
            allow_insecure_bind=env.get("ETL_ALLOW_INSECURE_BIND", "").lower()
            in ("1", "true", "yes"),
            max_body_bytes=int(env.get("ETL_MAX_BODY_BYTES", "1048576")),
            workers=int(env.get("ETL_API_WORKERS", "2")),
            cdc_slot_degraded_bytes=int(env.get("ETL_CDC_SLOT_DEGRADED_BYTES", str(1 << 30))),
        )

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without tokens unless explicitly allowed."""
        if self.tokens or self.allow_insecure_bind or _is_loopback(self.host):
            return
        raise SystemExit(
            f"refusing to listen on {self.host} without authentication: set ETL_API_TOKENS "
            "(comma-separated bearer tokens), or ETL_ALLOW_INSECURE_BIND=1 if something in "
            "front of the service authenticates"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
