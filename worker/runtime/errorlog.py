"""Errors that hit many slices at once, logged once per kind per second with a count.

A failure of the database or the pool fails every slice in flight the same way; a traceback
per slice then costs more CPU than the slices themselves (the overload that showed it logged
13,509). A kind is the log event and the exception's class. Its first occurrence is logged
with the traceback; further ones within the window are counted, and one line per window says
how many there were, with the last message. A kind quiet for a whole window starts afresh.
Every occurrence counts in `twap_errors` (by event and error class).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.observability.metrics import WorkerMetrics

WINDOW_SECONDS = 1.0


@dataclass(slots=True)
class _Kind:
    since: float  # monotonic start of the current window
    repeats: int = 0  # occurrences since the window's start, not logged yet
    last: str = ""  # the last repeat's message
    flush: asyncio.TimerHandle | None = None


class ErrorLog:
    def __init__(
        self,
        logger: logging.Logger,
        metrics: WorkerMetrics,
        *,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.metrics = metrics
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, str], _Kind] = {}

    def error(self, event: str, exc: BaseException, extra: dict[str, object]) -> None:
        """Log `exc` under `event` (called from an `except` block or with the exception)."""
        error = type(exc).__name__
        self.metrics.error(event, error)
        key = (event, error)
        now = self.clock()
        kind = self._kinds.get(key)
        if kind is not None and kind.repeats == 0 and now - kind.since >= self.window:
            self._flush(key, rearm=False)  # quiet for a whole window: a new episode
            kind = None
        if kind is None:
            self._kinds[key] = _Kind(since=now)
            self.logger.error(event, exc_info=exc, extra={**extra, "error": _text(exc)})
            return
        kind.repeats += 1
        kind.last = _text(exc)
        if now - kind.since >= self.window:
            self._flush(key, rearm=True)
        elif kind.flush is None:
            self._arm(key, kind, kind.since + self.window - now)

    def _arm(self, key: tuple[str, str], kind: _Kind, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next occurrence after the window flushes
            return
        kind.flush = loop.call_later(max(delay, 0.0), self._flush, key, True)

    def _flush(self, key: tuple[str, str], rearm: bool) -> None:
        kind = self._kinds.get(key)
        if kind is None:
            return
        if kind.flush is not None:
            kind.flush.cancel()
            kind.flush = None
        if kind.repeats == 0:  # a quiet window: the next occurrence gets its traceback again
            del self._kinds[key]
            return
        event, error = key
        self.logger.error(f"{event}.repeated", extra={
            "error_class": error, "count": kind.repeats, "window_s": self.window,
            "error": kind.last})
        kind.repeats = 0
        kind.since = self.clock()
        if rearm:  # closes the next window: quiet (forgotten), or one more count
            self._arm(key, kind, self.window)

    def close(self) -> None:
        """Log what is still counted (at shutdown)."""
        for key in list(self._kinds):
            self._flush(key, rearm=False)
        self._kinds.clear()


def _text(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:300]
