"""Holding a cancel back while a run's committed work is being recorded.

Dagster cancels a run by interrupting its worker (SIGINT, or SIGTERM mapped onto it); its
handler raises inside whatever the run is doing. Once the target has committed, that work
stays whatever happens next, so from just before the commit to the end of the run's record
the interrupt is only noted: the run then records what really happened.

The ADBC driver catches SIGINT itself during a blocking call: it cancels the statement and
raises its own error. That error is turned back into the interrupt it was, so a cancel
mid-COPY or mid-read reads as a cancel, not as a failed stage.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import adbc_driver_manager

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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

    def release(self) -> int | None:
        """Restore the handlers; the signal that arrived meanwhile, if any."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return self.received

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signum


def interrupted_statement(exc: BaseException) -> bool:
    """`exc` (or what caused it) is the ADBC driver's answer to a SIGINT: the statement
    it cancelled. A statement timeout or another session's cancel is not."""
    seen: BaseException | None = exc
    while seen is not None:
        if (
            isinstance(seen, adbc_driver_manager.Error)
            and seen.status_code == adbc_driver_manager.AdbcStatusCode.CANCELLED
            and "due to user request" in str(seen)
        ):
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
