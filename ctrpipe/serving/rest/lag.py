"""How late the event loop runs, and how many requests it answered since it last looked:
the shedding's measure of the wait and the queue a request cannot see.

A request's bytes wait in the kernel's socket buffers until the loop gets to their
connection, and under overload that is where most of the queue is: the loop reads every
ready connection in turn, so a connection that became ready just after the loop passed it
waits a whole round. A timer due every `PERIOD` seconds fires late by about one round;
its lateness is that wait. The requests answered since the last look are those ahead of
this one in the round: its place in the queue. (Under light load a look comes every
`PERIOD`, so the count is the requests of that period: a queue of 512 is only reached
past 100,000 requests/s.) One timer, not one per request: about a microsecond of work
every `PERIOD`.
"""

from __future__ import annotations

import asyncio
import time

PERIOD = 0.005  # seconds between looks
DECAY = 0.5  # a quiet look halves the estimate: one slow round does not shed for long


class Lag:
    """`seconds`: how late the loop ran at the last look (0 until `start`); `ahead`: the
    requests answered since (the caller counts them)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.ahead = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the loop's own thread."""
        self._loop = loop
        self._schedule()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        self._due = time.perf_counter() + PERIOD
        self._handle = self._loop.call_later(PERIOD, self._look)

    def _look(self) -> None:
        late = time.perf_counter() - self._due
        self.seconds = max(late, self.seconds * DECAY)
        self.ahead = 0
        self._schedule()
