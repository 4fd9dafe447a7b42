"""Holding a cancel back while a run's committed work is being recorded.

Dagster cancels a run by interrupting its worker (SIGINT, or SIGTERM mapped onto it); its
handler raises inside whatever the run is doing. Once the target has committed, that work
stays whatever happens next, so from just before the commit to the end of the run's record
the interrupt is only noted: the run then records what really happened.

The ADBC driver catches SIGINT itself during a blocking call: it cancels the statement and
an error comes back instead of the interrupt. That error is turned back into the interrupt
it was, so a cancel mid-COPY or mid-read reads as a cancel, not as a failed stage.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# What the server answers a cancel request with (ADBC sends one on SIGINT); the error may
# reach us as the driver's or as Arrow's reader error, so its words are what is checked.
_CANCELLED = "canceling statement due to user request"


class InterruptHold:
    """Notes interrupts instead of raising them, between `hold()` and `release()`; only
    the main thread receives signals, so elsewhere (a run in a thread) it does nothing."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def hold(self) -> None:
        if self._previous or threading.current_thread() is not threading.main_thread():
            return
        for signum in _SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._note)

    @property
    def holding(self) -> bool:
        return bool(self._previous)

    def release(self) -> int | None:
        """Restore the handlers; the signal that arrived meanwhile, if any."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return self.received

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signum


def interrupted_statement(exc: BaseException) -> bool:
    """`exc` (or what caused it) is a statement the driver cancelled on a SIGINT, as
    PostgreSQL words it; a statement or lock timeout is worded otherwise."""
    seen: BaseException | None = exc
    while seen is not None:
        if _CANCELLED in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def redeliver_interrupt() -> None:
    """Hand the SIGINT a driver consumed to the handler in place (Dagster's raises its
    interrupt; Python's own raises KeyboardInterrupt)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, None)
    raise KeyboardInterrupt
