"""The API's settings, from the environment, read once at start-up."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

from summit_etl.settings import Settings

# Names a request's Host header may carry on loopback; ETL_ALLOWED_HOSTS adds to them.
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")  # noqa: S104 - names to recognise, not to bind


class Role(IntEnum):
    """What a bearer token may do; each role includes the ones below it."""

    read = 1
    operate = 2  # execute, cancel, CDC start/stop, backfill, replay
    admin = 3  # pipeline create/replace/delete, stop-all/resume-all


@dataclass(frozen=True)
class ApiSettings:
    host: str = "127.0.0.1"
    port: int = 4020
    database_url: str = Settings.from_env().database_url
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    tokens: Mapping[str, Role] = field(default_factory=dict)
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_HOSTS)
    allowed_origins: frozenset[str] = frozenset()
    allow_insecure_bind: bool = False
    max_body_bytes: int = 1_048_576
    workers: int = 2
    dagster_timeout_seconds: float = 10.0
    health_timeout_seconds: float = 2.0
    refresh_seconds: float = 1.0  # how old /health and /metrics may be (api_shim/snapshot.py)
    wait_timeout_seconds: float = 900.0
    cdc_slot_degraded_bytes: int = 1 << 30  # /health is degraded when a slot retains more
    cache_bytes: int = 32 << 20  # each process's store of database answers; 0 turns it off

    @classmethod
    def from_env(cls) -> ApiSettings:
        env = os.environ
        host = env.get("ETL_SERVICE_HOST", "127.0.0.1")
        return cls(
            host=host,
            port=int(env.get("ETL_SERVICE_PORT", "4020")),
            database_url=Settings.from_env().database_url,
            dagster_graphql_url=env.get("DAGSTER_GRAPHQL_URL", "http://127.0.0.1:3000/graphql"),
            tokens=parse_tokens(env.get("ETL_API_TOKENS", "")),
            allowed_hosts=allowed_hosts(host, env.get("ETL_ALLOWED_HOSTS", "")),
            allowed_origins=frozenset(
                o.strip().rstrip("/").lower()
                for o in env.get("ETL_ALLOWED_ORIGINS", "").split(",")
                if o.strip()
            ),
            allow_insecure_bind=env.get("ETL_ALLOW_INSECURE_BIND", "").lower()
            in ("1", "true", "yes"),
            max_body_bytes=int(env.get("ETL_MAX_BODY_BYTES", "1048576")),
            workers=int(env.get("ETL_API_WORKERS", "2")),
            refresh_seconds=float(env.get("ETL_API_REFRESH_SECONDS", "1")),
            cdc_slot_degraded_bytes=int(env.get("ETL_CDC_SLOT_DEGRADED_BYTES", str(1 << 30))),
            cache_bytes=int(float(env.get("ETL_API_CACHE_MB", "32")) * (1 << 20)),
        )

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback without tokens unless explicitly allowed."""
        if self.tokens or self.allow_insecure_bind or _is_loopback(self.host):
            return
        raise SystemExit(
            f"refusing to listen on {self.host} without authentication: set ETL_API_TOKENS "
            "(role:token pairs, comma-separated), or ETL_ALLOW_INSECURE_BIND=1 if something "
            "in front of the service authenticates"
        )


def parse_tokens(value: str) -> dict[str, Role]:
    """`admin:tok1,operate:tok2,read:tok3`; a bare `tok` (the older form) is an admin token.

    A prefix that is not a role is refused rather than read as part of a bare token, so a
    misspelt role never turns into an admin token.
    """
    tokens: dict[str, Role] = {}
    for item in (i.strip() for i in value.split(",")):
        if not item:
            continue
        role_name, sep, token = item.partition(":")
        if not sep:
            role_name, token = "admin", item
        if role_name not in Role.__members__:
            raise SystemExit(
                f"ETL_API_TOKENS: unknown role {role_name!r} (use read, operate or admin)"
            )
        if not token.strip():
            raise SystemExit(f"ETL_API_TOKENS: the {role_name} entry has an empty token")
        tokens[token.strip()] = Role[role_name]
    return tokens


def allowed_hosts(bind_host: str, extra: str) -> frozenset[str]:
    """Loopback names, the bound host (unless a wildcard), and the configured names."""
    names = {*LOOPBACK_HOSTS, *(h.strip().lower() for h in extra.split(",") if h.strip())}
    if bind_host not in _WILDCARD_BINDS:
        names.add(f"[{bind_host}]" if ":" in bind_host else bind_host.lower())
    return frozenset(names)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
