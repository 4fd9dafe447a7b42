"""`${VAR}` and `${VAR:-default}` in configurations, so secrets stay out of them."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingEnvironmentVariable(ValueError):
    pass


def interpolate_env(value: Any, environ: Mapping[str, str] | None = None, path: str = "") -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of a parsed config."""
    env = os.environ if environ is None else environ
    if isinstance(value, dict):
        return {
            k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise MissingEnvironmentVariable(
                f"{path}: environment variable {name} is not set (and no default was given "
                f"with ${{{name}:-default}})"
            )

        return _ENV_REF.sub(substitute, value)
    return value
