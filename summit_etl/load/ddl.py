"""DDL and TRUNCATE that give way to readers: a lock wait bounded by the session's
`lock_timeout`, retried a few times with a pause in between.

Statements that must hold their locks together run as one attempt: a lock not granted
undoes the attempt and releases every lock it took, so none is held while another waits.

A TRUNCATE queued behind a long reader blocks every reader that arrives after it. Here
the wait ends at `lock_timeout`, the queue moves on while we pause, and we try again.
The retry loop runs server-side in one statement (each attempt a subtransaction), so it
works inside the load's transaction with no savepoint of the client's.
"""

from __future__ import annotations

from psycopg import sql

ATTEMPTS = 3
PAUSE_SECONDS = 0.5  # times the attempt number

_BODY = """
DECLARE
  attempt int := 1;
BEGIN
  LOOP
    BEGIN
      {statements}
      RETURN;
    EXCEPTION WHEN lock_not_available THEN
      IF attempt >= {attempts} THEN
        RAISE lock_not_available USING MESSAGE = format(
          '%s: lock not granted within lock_timeout (%s) in %s attempts',
          {what}, current_setting('lock_timeout'), attempt);
      END IF;
      PERFORM pg_sleep({pause} * attempt);
      attempt := attempt + 1;
    END;
  END LOOP;
END
"""


def with_lock_retry(*statements: sql.Composable, what: str) -> sql.Composed:
    """A `DO` block that runs `statements` (DDL or TRUNCATE) as one attempt, retrying lock
    timeouts; after the last attempt it fails with SQLSTATE 55P03 and a message naming
    `what`."""
    body = sql.SQL(_BODY).format(
        statements=sql.SQL(" ").join(
            sql.SQL("EXECUTE {};").format(sql.Literal(s.as_string(None))) for s in statements
        ),
        attempts=sql.Literal(ATTEMPTS),
        what=sql.Literal(what),
        pause=sql.Literal(PAUSE_SECONDS),
    )
    return sql.SQL("DO {}").format(sql.Literal(body.as_string(None)))
