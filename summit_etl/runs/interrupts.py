"""Holding a cancel back while a run's committed work is being recorded.

Dagster cancels a run by interrupting its worker (SIGINT, or SIGTERM mapped onto it); its
handler raises inside whatever the run is doing. Once the target has committed, that work
stays whatever happens next, so from just before the commit to the end of the run's record
the interrupt is only noted: the run then records what really happened.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

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
