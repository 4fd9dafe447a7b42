"""Connect, statement and lock timeouts on a run's connections, and what a timed-out run
says about it.

The settings travel in the connection URL (libpq parameters and `options`), so the same
URL bounds psycopg and ADBC connections alike. TCP keepalives make a server that vanished
without closing its sockets an error within about a minute instead of a hang.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from summit_etl.config.timeouts import TimeoutsConfig

_KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
}
_VERBS = {
    "extraction": "extracting from",
    "transformation": "transforming",
    "validation": "validating",
    "loading": "loading into",
}


class RunTimeout(TimeoutError):
    """A run's statement, lock wait or connection attempt took longer than allowed."""


def _ms(seconds: float) -> str:
    return str(max(1, round(seconds * 1000)))


def timed_url(url: str, timeouts: TimeoutsConfig) -> str:
    """`url` with the timeouts and keepalives added; a setting the URL already has wins
    (its `options` come after ours, and PostgreSQL keeps the last `-c` of a name)."""
    params = {
        "connect_timeout": str(timeouts.connect_seconds),
        **_KEEPALIVES,
        "options": f"-c statement_timeout={_ms(timeouts.statement_seconds)} "
        f"-c lock_timeout={_ms(timeouts.lock_seconds)}",
    }
    if url.startswith(("postgresql://", "postgres://")):
        parts = urlsplit(url)
        given = dict(parse_qsl(parts.query))
        if "options" in given:
            given["options"] = f"{params['options']} {given['options']}"
        query = urlencode({**params, **given}, quote_via=quote)  # libpq reads no "+" as space
        return urlunsplit(parts._replace(query=query))
    given = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    if "options" in given:
        given["options"] = f"{params['options']} {given['options']}"
    return make_conninfo("", **{**params, **given})


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _kind(exc: BaseException) -> str | None:
    """Which timeout `exc` reports. Errors raised while Arrow streams rows lose their
    SQLSTATE on the way, so the server's words count too."""
    state = getattr(exc, "sqlstate", None)
    text = str(exc)
    if "due to statement timeout" in text:
        return "statement"
    if state == "55P03" or "due to lock timeout" in text:
        return "lock"
    if "timeout expired" in text:  # libpq's words for connect_timeout
        return "connect"
    return None


def _server_message(text: str) -> str:
    """The server's own sentence (ADBC wraps it in the failed query's text)."""
    found = re.search(r"ERROR:\s+(.+)", text)
    lines = text.strip().splitlines()
    return found.group(1).strip() if found else (lines[0] if lines else "")


def expired(
    cause: BaseException, stage: str, subject: str, timeouts: TimeoutsConfig
) -> RunTimeout | None:
    """A RunTimeout saying which timeout ended the run in `stage` on `subject`, e.g.
    "statement timeout after 30 s while extracting from public.items: ..."; None when
    `cause` is not a timeout."""
    seconds = {
        "statement": timeouts.statement_seconds,
        "lock": timeouts.lock_seconds,
        "connect": timeouts.connect_seconds,
    }
    for exc in _chain(cause):
        # An error of our own already says what went wrong (a quality rule that ran out of
        # its own time, an explained timeout): it is not relabelled as the pipeline's.
        if type(exc).__module__.startswith("summit_etl."):
            return None
        if (kind := _kind(exc)) is not None:
            detail = _server_message(str(cause)) or kind
            return RunTimeout(
                f"{kind} timeout after {seconds[kind]:g} s while "
                f"{_VERBS.get(stage, stage)} {subject} "
                f"(timeouts.{kind}Seconds): {detail}"
            )
    return None
