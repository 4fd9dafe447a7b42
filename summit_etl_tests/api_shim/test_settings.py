"""Token roles and host names from the environment's settings."""

from __future__ import annotations

import pytest

from api_shim.settings import ApiSettings, Role, allowed_hosts, parse_tokens


def test_tokens_carry_roles_and_bare_tokens_are_admin() -> None:
    assert parse_tokens("admin:a, operate:o ,read:r") == {"a": Role.admin, "o": Role.operate, "r": Role.read}
    assert parse_tokens("one,two") == {"one": Role.admin, "two": Role.admin}
    assert parse_tokens("") == {}
    assert Role.read < Role.operate < Role.admin


@pytest.mark.parametrize(("value", "says"), [("amdin:tok", "unknown role 'amdin'"), ("read:", "empty token")])
def test_a_misspelt_role_stops_the_service(value: str, says: str) -> None:
    with pytest.raises(SystemExit, match=says):
        parse_tokens(value)


def test_a_named_bind_host_is_served_and_a_wildcard_adds_nothing() -> None:
    assert "etl.lan" in allowed_hosts("etl.lan", "")
    assert "[fd00::1]" in allowed_hosts("fd00::1", "")
    assert allowed_hosts("0.0.0.0", " Ops.Example ,") == {"localhost", "127.0.0.1", "[::1]", "ops.example"}  # noqa: S104


def test_a_public_bind_without_tokens_is_refused() -> None:
    with pytest.raises(SystemExit, match="refusing to listen on 0.0.0.0"):
        ApiSettings(host="0.0.0.0").check_bind()  # noqa: S104
    ApiSettings(host="0.0.0.0", tokens={"t": Role.read}).check_bind()  # noqa: S104
