"""Fault injection per company, set at run time: queued faults for exact tests, rates for chaos runs."""

import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    SERVER_ERROR = "500"  # SystemFault, HTTP 500
    THROTTLE = "429"  # the XML 429
    TIMEOUT = "timeout"  # nothing happens and no answer comes before the client gives up
    DROP = "drop"  # the write is committed, then the answer never comes


@dataclass
class FaultPlan:
    queued: list[Fault] = field(default_factory=list)
    rates: dict[Fault, float] = field(default_factory=dict)
    hold_seconds: float = 35.0  # how long TIMEOUT and DROP keep the client waiting
    latency_seconds: float = 0.0  # added to every call, so calls overlap as they do over a real network
    seed: int | None = None
    injected: dict[Fault, int] = field(default_factory=dict)  # what this plan has answered with, by fault
    _random: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._random.seed(self.seed)

    def next_fault(self, write: bool) -> Fault | None:
        """The fault for this call, if any. DROP is about writes: a read leaves a queued DROP for the next
        write and is never dropped by the rate."""
        with self._lock:
            fault = self._draw(write)
            if fault is not None:
                self.injected[fault] = self.injected.get(fault, 0) + 1
            return fault

    def _draw(self, write: bool) -> Fault | None:
        if self.queued and (write or self.queued[0] != Fault.DROP):
            return self.queued.pop(0)
        if self.queued:
            return None
        roll = self._random.random()
        for fault, rate in self.rates.items():
            if roll < rate:
                return fault if write or fault != Fault.DROP else None
            roll -= rate
        return None

    def describe(self) -> dict[str, object]:
        return {"queued": [f.value for f in self.queued], "rates": {f.value: r for f, r in self.rates.items()},
                "hold_seconds": self.hold_seconds, "latency_seconds": self.latency_seconds,
                "injected": {f.value: n for f, n in self.injected.items()}}
