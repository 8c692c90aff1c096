"""Every benchmark, one after another, and one report: `DIR/report.json` (every figure), `DIR/report.md` (the
figures against their no-op ceilings and the issues' targets, the latency percentiles, the machine and commit)
and `DIR/latency.svg` (the latency percentiles drawn).

    .venv/bin/python -m bench [--size smoke|default|full] [--only NAME ...] [--out DIR]

Each benchmark runs in a process of its own (`python -m bench.NAME ... --json FILE`), as it runs alone: it brings
up its own embedded stack, and one that crashes, hangs past its time or leaks memory does not spoil the others'
figures. Exits 1 when any benchmark's own check of its result failed (or it gave no result)."""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import Report, git_commit, machine, now, write
from bench.result import BenchResult, from_json

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ("proposals", "royalty", "plans", "leads", "qbo_sandbox")
# Each benchmark's arguments per size. full: the sizes the issues state (the modules' defaults). default: about
# 10-15 minutes in all on 2 cores. smoke: tiny, the whole command in about a minute (the test runs it).
SIZES: dict[str, dict[str, list[str]]] = {
    "smoke": {"proposals": ["--proposals", "6", "--realms", "2", "--light", "2", "--timeout", "150"],
              "royalty": ["--franchisees", "6", "--payments", "3", "--timeout", "150"],
              "plans": ["--contacts", "20", "--concurrency", "10", "--timeout", "150"],
              "leads": ["--leads", "6", "--concurrency", "6", "--duplicates", "0.34", "--light", "2",
                        "--timeout", "150"],
              "qbo_sandbox": ["--sizes", "50", "500", "--proposals", "2"]},
    "default": {"proposals": ["--proposals", "300", "--realms", "20", "--light", "20", "--timeout", "900"],
                "royalty": ["--franchisees", "200", "--payments", "40", "--timeout", "900"],
                "plans": ["--contacts", "1000", "--concurrency", "50", "--timeout", "900"],
                "leads": ["--leads", "300", "--concurrency", "50", "--duplicates", "0.1", "--light", "20",
                          "--timeout", "900"],
                "qbo_sandbox": ["--sizes", "50", "5000", "--proposals", "4"]},
    "full": {name: [] for name in BENCHMARKS},
}
GRACE = 300.0  # seconds past a benchmark's own --timeout before its process is killed (setup, checks, teardown)


def own_timeout(args: list[str]) -> float:
    """How long the benchmark's process may run: its --timeout (the module's default if not given) plus GRACE."""
    return (float(args[args.index("--timeout") + 1]) if "--timeout" in args else 3600.0) + GRACE


def failed(name: str, args: list[str], reason: str) -> BenchResult:
    """A benchmark that gave no result: reported, and failing the run."""
    result = BenchResult(name=name, sizes={"args": " ".join(args)}, unit="-", ok=False, reasons=[reason])
    result.text.append(reason)
    return result


def run_one(name: str, args: list[str]) -> BenchResult:
    """`python -m bench.NAME ARGS` in a process of its own, its output passed through; its result."""
    print(f"\n== {name} {' '.join(args)}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        began = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", f"bench.{name}", *args, "--json", str(out)], cwd=ROOT,
                                  timeout=own_timeout(args), check=False)
        except subprocess.TimeoutExpired:
            return failed(name, args, f"killed after {own_timeout(args):.0f} s without a result")
        if not out.exists():
            return failed(name, args, f"exited {done.returncode} without a result")
        result = from_json(json.loads(out.read_text()))
    result.wall_seconds = time.monotonic() - began
    if done.returncode != 0 and result.ok:
        result.fail(f"exited {done.returncode}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="default")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only these ({', '.join(BENCHMARKS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="where the report goes")
    args = parser.parse_args()
    names = [n for n in BENCHMARKS if args.only is None or n in args.only]
    report = Report(size=args.size, started=now(), seconds=0.0, machine=machine(), commit=git_commit(ROOT))
    began = time.monotonic()
    for name in names:
        report.results.append(run_one(name, SIZES[args.size][name]))
    report.seconds = time.monotonic() - began
    paths = write(report, args.out)
    print(f"\n{'all checks passed' if report.ok else 'SOME RESULTS WRONG'} in {report.seconds:.0f} s; report: "
          + ", ".join(str(p) for p in paths), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
