"""`${VAR}` and `${VAR:-default}` in connection URLs, so secrets stay out of configurations.

Only the URL fields (source.url, loading.targetUrl, a join's url) are interpolated, and
only from variables the operator allows (see `policy`): anywhere else `${VAR}` stays
text, so a variable can never surface in a name, a description or an error message.
Messages name the variable, never its value.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo

from summit_etl.config.policy import ENV_ALLOW_SETTING, policy_of

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class MissingEnvironmentVariable(ValueError):
    pass


class ForbiddenEnvironmentVariable(ValueError):
    pass


def _interpolate(value: str, info: ValidationInfo) -> str:
    policy = policy_of(info.context)

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if not policy.allows_variable(name):
            raise ForbiddenEnvironmentVariable(
                f"environment variable {name} may not be read by a configuration "
                f"(allowed: {', '.join(policy.env_allow) or 'none'}; the operator sets "
                f"{ENV_ALLOW_SETTING})"
            )
        if name in policy.environ:
            return policy.environ[name]
        if default is not None:
            return default
        raise MissingEnvironmentVariable(
            f"environment variable {name} is not set (and no default was given "
            f"with ${{{name}:-default}})"
        )

    return _ENV_REF.sub(substitute, value)


# A non-empty connection URL whose `${VAR}` references are replaced when it is validated.
ConnectionUrl = Annotated[str, Field(min_length=1), AfterValidator(_interpolate)]
