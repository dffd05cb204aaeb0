"""Slowing down guessing: a sliding window of failed authentications per remote address."""

import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_FAILURES = 10
WINDOW_S = 60.0
MAX_ADDRESSES = 10_000


class FailureLimiter:
    """After ``max_failures`` failures within ``window_s`` seconds, an address is refused
    (HTTP 429) until its oldest failure in the window ages out.

    In memory, per process; at most ``max_addresses`` addresses are tracked, the least
    recently failing forgotten first, so a flood of addresses cannot exhaust memory.
    """

    # Limitation: behind a reverse proxy every client shares the proxy's address, so one
    # guesser locks out everyone; the fix is a trusted X-Forwarded-For setting.

    def __init__(
        self,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now_s: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and now_s - times[0] >= self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after_s(self, address: str) -> float | None:
        """Seconds until ``address`` may try again, or None if it may try now."""
        now_s = self.clock()
        times = self._recent(address, now_s)
        if times is None or len(times) < self.max_failures:
            return None
        return self.window_s - (now_s - times[0])

    def record_failure(self, address: str) -> bool:
        """Counts one failure; True when this failure reached the limit."""
        now_s = self.clock()
        times = self._recent(address, now_s) or deque()
        times.append(now_s)
        self._failures[address] = times
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        return len(times) == self.max_failures
