"""QBO's per-company limits: 10 requests in flight, 10 a second, 500 a minute, 40 batch requests a minute."""

import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class Throttled(Exception):
    """The request is over a limit; QBO answers 429 with an XML body."""


@dataclass
class Limits:
    in_flight: int = 10
    per_second: int = 10
    per_minute: int = 500
    batch_per_minute: int = 40


@dataclass
class _Realm:
    in_flight: int = 0
    recent: deque[float] = field(default_factory=deque)
    batches: deque[float] = field(default_factory=deque)


class RealmThrottle:
    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._realms: dict[str, _Realm] = {}
        self.peak_in_flight: dict[str, int] = {}
        self.throttled: dict[str, int] = {}
        self.served: dict[str, int] = {}  # requests let through, per company

    @contextmanager
    def admit(self, realm_id: str, batch: bool = False) -> Iterator[None]:
        now = time.monotonic()
        with self._lock:
            realm = self._realms.setdefault(realm_id, _Realm())
            while realm.recent and realm.recent[0] < now - 60:
                realm.recent.popleft()
            while realm.batches and realm.batches[0] < now - 60:
                realm.batches.popleft()
            last_second = sum(1 for t in realm.recent if t >= now - 1)
            over = (realm.in_flight >= self.limits.in_flight or last_second >= self.limits.per_second
                    or len(realm.recent) >= self.limits.per_minute
                    or (batch and len(realm.batches) >= self.limits.batch_per_minute))
            if over:
                self.throttled[realm_id] = self.throttled.get(realm_id, 0) + 1
                raise Throttled
            realm.recent.append(now)
            if batch:
                realm.batches.append(now)
            realm.in_flight += 1
            self.served[realm_id] = self.served.get(realm_id, 0) + 1
            self.peak_in_flight[realm_id] = max(self.peak_in_flight.get(realm_id, 0), realm.in_flight)
        try:
            yield
        finally:
            with self._lock:
                realm.in_flight -= 1
