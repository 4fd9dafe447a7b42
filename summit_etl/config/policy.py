"""What the operator lets a pipeline configuration do beyond plain settings.

Two settings, read from the environment when a configuration is validated:

- `SUMMIT_CONFIG_ENV_ALLOW`: the environment variables that `${VAR}` may read in a
  connection URL, as comma-separated names or shell patterns (`SUMMIT_*`, `*_URL`).
  Default `*_URL`: every variable whose name ends in `_URL` (DATABASE_URL,
  SOURCE_DATABASE_URL, DEMO_SOURCE_URL, ...), so that a configuration cannot read
  other secrets such as tokens or cloud keys.
- `SUMMIT_CUSTOM_MODULES`: the module prefixes (`acme_etl`, `acme_etl.steps`) whose
  functions `custom` steps of pipelines created over the API may call. Default: none.
  YAML files in the pipelines folder are the operator's own and may name any module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

ENV_ALLOW_SETTING = "SUMMIT_CONFIG_ENV_ALLOW"
CUSTOM_MODULES_SETTING = "SUMMIT_CUSTOM_MODULES"
DEFAULT_ENV_ALLOW = ("*_URL",)


def _items(text: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (text or "").split(",") if item.strip())


@dataclass(frozen=True)
class ConfigPolicy:
    """`trusted`: the configuration is an operator's file, not a request body."""

    trusted: bool = False
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)
    env_allow: tuple[str, ...] = DEFAULT_ENV_ALLOW
    custom_modules: tuple[str, ...] = ()

    @classmethod
    def from_env(
        cls, *, trusted: bool = False, environ: Mapping[str, str] | None = None
    ) -> ConfigPolicy:
        """The policy the operator set in the service's environment; `environ` (default
        the process environment) is what `${VAR}` reads."""
        env = os.environ if environ is None else environ
        allow = os.environ.get(ENV_ALLOW_SETTING)
        return cls(
            trusted=trusted,
            environ=env,
            env_allow=DEFAULT_ENV_ALLOW if allow is None else _items(allow),
            custom_modules=_items(os.environ.get(CUSTOM_MODULES_SETTING)),
        )

    def allows_variable(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.env_allow)

    def allows_function(self, path: str) -> bool:
        """`package.module:function` in an allowed module, and no private (`_x`, `__x__`)
        part through which a module's internals could be reached."""
        if self.trusted:
            return True
        module, _, function = path.partition(":")
        if any(part.startswith("_") for part in [*module.split("."), function]):
            return False
        return any(module == p or module.startswith(p + ".") for p in self.custom_modules)

    def context(self) -> dict[str, Any]:
        """The pydantic validation context that carries this policy to the validators."""
        return {"policy": self}


def policy_of(context: Any) -> ConfigPolicy:
    """The policy a validation runs under: the one passed in its context, else the
    operator's settings for an untrusted (request) configuration."""
    policy = context.get("policy") if isinstance(context, dict) else None
    return policy if isinstance(policy, ConfigPolicy) else ConfigPolicy.from_env()
