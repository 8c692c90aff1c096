"""What one benchmark run returns: its figures as data, so the module's own CLI and `python -m bench`'s report
print the same numbers from one measurement. Kept free of Temporal and the ORM so the report writer and its
tests import it alone."""

import argparse
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Percentiles:
    """A latency series in milliseconds: p50, p95 and max over `n` samples."""

    p50_ms: float
    p95_ms: float
    max_ms: float
    n: int

    @classmethod
    def of(cls, seconds: list[float]) -> "Percentiles | None":
        """From samples in seconds (the p95 as bench.histories.percentile takes it); None without samples."""
        if not seconds:
            return None
        ordered = sorted(seconds)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return cls(statistics.median(ordered) * 1000, p95 * 1000, ordered[-1] * 1000, len(ordered))


@dataclass(frozen=True)
class Target:
    """A target an issue states for this benchmark, and whether this run met it (None: not measured)."""

    what: str
    met: bool | None
    issue: int | None = None


@dataclass
class BenchResult:
    """One benchmark's run. `ratio` is real/no-op throughput (1.0 = as fast as the ceiling) unless `ratio_basis`
    says otherwise (the QBO sandbox has no no-op: its own small company is its baseline). `ok` is the
    benchmark's own correctness check; `reasons` says what was wrong. `text` is what the module's CLI prints."""

    name: str
    sizes: dict[str, Any]
    unit: str
    real_rate: float | None = None
    real_seconds: float | None = None
    noop_rate: float | None = None
    noop_seconds: float | None = None
    ratio: float | None = None
    ratio_basis: str = "real/no-op throughput, measured on the same server in the same run"
    latency: dict[str, Percentiles] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    ok: bool = True
    reasons: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    wall_seconds: float | None = None

    def fail(self, *reasons: str) -> None:
        self.ok = False
        self.reasons.extend(reasons)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rate(count: int, seconds: float | None) -> float | None:
    """`count` per second over `seconds`, None when there is no time (a run that did not finish)."""
    return count / seconds if seconds else None


def ratio_of(real_seconds: float | None, noop_seconds: float | None) -> float | None:
    """Real throughput over the no-op's for the same work: the no-op's time over the real time."""
    return noop_seconds / real_seconds if real_seconds and noop_seconds else None


def from_json(data: dict[str, Any]) -> BenchResult:
    """A result back from its JSON (what a benchmark's process hands `python -m bench`)."""
    fields = dict(data)
    fields["latency"] = {name: Percentiles(**p) for name, p in (data.get("latency") or {}).items()}
    fields["targets"] = [Target(**t) for t in data.get("targets") or []]
    return BenchResult(**fields)


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, metavar="FILE",
                        help="also write the result as JSON to FILE (how `python -m bench` collects it)")


def finish(result: BenchResult, json_path: Path | None) -> int:
    """A module's CLI: print its lines, write the JSON if asked, and the exit status its checks give (1 when the
    result is wrong)."""
    print("\n".join(result.text), flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps(result.to_json(), indent=2, default=str))
    return 0 if result.ok else 1
