"""Admission to the pool: a fair FIFO queue that sheds only what cannot be
served within the client's patience.

Requests wait for one of the pool's `permits` (its max size) in strict
arrival order: a released connection is handed to the oldest waiter, never
to a request that arrives just then. (asyncpg's pool alone lets a newcomer
take a connection a woken waiter was about to get, and that waiter goes to
the back: under 1000 concurrent clients the oldest requests starve into the
acquire timeout while the mean wait is a fraction of it.)

Shedding: while requests queue, the pool's drain rate is measured from
the last hand-overs of a connection to a waiter (up to 512; a burst that
empties the queue starts a fresh measurement, so an idle hour never counts
as a slow pool). A request arriving behind `n` waiters can expect to wait
about `(n + 1) / rate`. If that is more than `patience` (the acquire
timeout) it is answered at once with 503 and a `Retry-After` of that
estimate, instead of waiting for a connection it would not get in time;
otherwise it queues, and keeps its place: a request that has waited long is
near the head, about to be served, the worst one to turn away. Only a stall
the estimate could not see (connections held far longer than usual, e.g.
all blocked on locks) sheds a queued request, after twice the patience.
Until 32 hand-overs are measured nothing is shed on the estimate. So the
queue is never longer than it can drain within the patience, and while it
can, nobody is refused.

The patience should be what clients will wait (the default, 10 s, is a
common client timeout; wrk's in bench/): shed too early and a closed-loop
client that ignores Retry-After turns cheap 503s into a storm that takes
CPU from the requests being served.

Connections in use never exceed `permits`, the pool's max size.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque


class Overloaded(Exception):
    """No connection within the patience: answer 503 with Retry-After."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class Admission:
    # A queued request is shed only after this many patiences (a stall).
    STALL_FACTOR = 2.0
    # Hand-overs the drain rate is measured over (about a second at the rates
    # one worker reaches: a GC pause or one slow query must not look like a
    # slow pool), and the fewest it trusts.
    WINDOW = 512
    EVIDENCE = 32

    def __init__(self, permits: int, patience: float) -> None:
        if permits < 1:
            raise ValueError("permits must be at least 1")
        self.permits = permits
        self.patience = patience
        self._free = permits
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._handovers: deque[float] = deque(maxlen=self.WINDOW)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def in_use(self) -> int:
        return self.permits - self._free

    def drain_rate(self) -> float | None:
        """Connections handed to waiters per second lately; None without enough evidence."""
        if len(self._handovers) < self.EVIDENCE:
            return None
        elapsed = time.perf_counter() - self._handovers[0]
        return len(self._handovers) / elapsed if elapsed > 0 else None

    def estimated_wait(self) -> float:
        """Seconds a request arriving now would wait for a connection."""
        if self._free > 0 and not self._waiters:
            return 0.0
        rate = self.drain_rate()
        return 0.0 if rate is None else (len(self._waiters) + 1) / rate

    async def enter(self) -> None:
        """Wait for a connection permit in arrival order, or raise Overloaded."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        wait = self.estimated_wait()
        if wait > self.patience:
            raise Overloaded(_seconds(wait))
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        try:
            await asyncio.wait_for(asyncio.shield(granted), self.STALL_FACTOR * self.patience)
        except asyncio.TimeoutError:
            self._withdraw(granted)
            raise Overloaded(_seconds(max(self.estimated_wait(), self.patience))) from None
        except BaseException:
            self._withdraw(granted)
            raise

    def leave(self) -> None:
        """Give the permit back: to the oldest waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._handovers.append(time.perf_counter())
                return
        self._free += 1
        self._handovers.clear()  # the queue drained: the next one is measured afresh

    def _withdraw(self, granted: asyncio.Future[None]) -> None:
        """A waiter gives up (timeout, cancellation): if the permit reached
        it in the meantime, pass it on; else leave the queue."""
        if granted.done() and not granted.cancelled():
            self.leave()
            return
        granted.cancel()
        try:
            self._waiters.remove(granted)
        except ValueError:
            pass


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
