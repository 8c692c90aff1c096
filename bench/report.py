"""The benchmark report: every result as JSON, a markdown summary (figures against their no-op ceilings and the
issues' targets, then the latency percentiles), and the latency percentiles drawn as a hand-written SVG (no
plotting library: the project's dependencies stay as they are)."""

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench.result import BenchResult, Percentiles, Target, from_json

PERCENTILES = ("p50", "p95", "max")
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
# The plot's frame, in SVG user units: the plotting area inside the margins, the legend to its right.
WIDTH, HEIGHT = 1000, 420
LEFT, RIGHT, TOP, BOTTOM = 70, 560, 30, 370


@dataclass
class Report:
    """One `python -m bench` run: when, where, at which size, and every benchmark's result."""

    size: str
    started: str
    seconds: float
    machine: dict[str, Any]
    commit: str
    results: list[BenchResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Report":
        fields = {k: v for k, v in data.items() if k != "ok"}
        return cls(**{**fields, "results": [from_json(r) for r in data["results"]]})


# -- where and when ------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What the figures were measured on: they only compare within one machine."""
    return {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def git_commit(root: Path) -> str:
    """The commit measured, marked when the tree had uncommitted changes (the figures are of the tree, not HEAD)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return f"{head} (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else head


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the markdown --------------------------------------------------------------------------------------------
def number(value: float | None) -> str:
    """Three significant figures, thousands separated: enough to compare, no false precision."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def figure(rate: float | None, unit: str, seconds: float | None) -> str:
    text = f"{number(rate)} {unit}" if rate is not None else "-"
    return f"{text} ({number(seconds)} s)" if seconds is not None else text


def sizes(result: BenchResult) -> str:
    return ", ".join(f"{k} {v}" for k, v in result.sizes.items())


def met(target: Target) -> str:
    return {True: "met", False: "**not met**", None: "n/a"}[target.met]


def cells(targets: list[Target]) -> tuple[str, str]:
    """The target and met columns of one benchmark's row: one entry per target, or a dash."""
    if not targets:
        return "none stated", "-"
    said = [t.what + (f" (issue {t.issue})" if t.issue else "") for t in targets]
    return "<br>".join(said), "<br>".join(met(t) for t in targets)


def summary_row(result: BenchResult) -> str:
    target, verdict = cells(result.targets)
    ratio = number(result.ratio) + ("" if result.ratio_basis.startswith("real/no-op") else "*")
    checked = "ok" if result.ok else "**WRONG**"
    return (f"| {result.name} | {sizes(result)} | {figure(result.real_rate, result.unit, result.real_seconds)} | "
            f"{figure(result.noop_rate, result.unit, result.noop_seconds)} | {ratio} | {target} | {verdict} | "
            f"{checked} |")


def summary_table(results: list[BenchResult]) -> list[str]:
    head = ["| benchmark | sizes | real | no-op ceiling | ratio | target | met | books |",
            "|---|---|---|---|---|---|---|---|"]
    return head + [summary_row(r) for r in results]


def latency_table(results: list[BenchResult]) -> list[str]:
    rows = ["| benchmark | series | p50 ms | p95 ms | max ms | n |", "|---|---|---|---|---|---|"]
    for result in results:
        for name, p in result.latency.items():
            rows.append(f"| {result.name} | {name} | {number(p.p50_ms)} | {number(p.p95_ms)} | "
                        f"{number(p.max_ms)} | {p.n} |")
    return rows


def markdown(report: Report) -> str:
    m = report.machine
    lines = [f"# Benchmark report ({report.size})", "",
             f"{report.started}, {m['cores']} cores, Python {m['python']}, {m['platform']}, load average at the start "
             f"{' '.join(map(str, m.get('load_average', [])))}; commit {report.commit}; "
             f"{report.seconds / 60:.1f} min in all. Each benchmark brings up its own embedded stack; its no-op "
             f"ceiling is measured on the same server in the same run.", "",
             "## Figures", "", *summary_table(report.results), "",
             "ratio: real/no-op throughput (1.0 = as fast as the ceiling). * qbo_sandbox has no no-op: its ratio is "
             "the large company's time per write over the small company's, both measured in the same run "
             "(1.0 = flat, the goal); its real and ceiling columns are those two times.", ""]
    wrong = [r for r in report.results if not r.ok]
    if wrong:
        lines += ["## Wrong", ""] + [f"- {r.name}: {reason}" for r in wrong for reason in r.reasons[:20]] + [""]
    lines += ["## Latency percentiles", "", *latency_table(report.results), "",
              "![latency percentiles](latency.svg)", "", "## Each benchmark's own output", ""]
    for result in report.results:
        lines += [f"### {result.name}", "", "```", *result.text, "```", ""]
    return "\n".join(lines)


# -- the plot ------------------------------------------------------------------------------------------------
def series(results: list[BenchResult]) -> list[tuple[str, Percentiles]]:
    """Every latency series, labelled by benchmark: one line of the plot each."""
    return [(f"{r.name}: {name}", p) for r in results for name, p in r.latency.items()]


def decades(values: list[float]) -> tuple[int, int]:
    """The powers of ten the log axis spans (at least one decade), so sub-second and minute-long latencies share
    one plot and each stays readable."""
    positive = [v for v in values if v > 0] or [1.0]
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    return low, max(high, low + 1)


def y_of(ms: float, span: tuple[int, int]) -> float:
    """The SVG y of `ms` on the log axis spanning `span` decades: the top decade at TOP, the bottom at BOTTOM."""
    low, high = span
    where = (math.log10(max(ms, 10.0 ** low)) - low) / (high - low)
    return BOTTOM - where * (BOTTOM - TOP)


def x_of(index: int) -> float:
    """The SVG x of the index-th percentile (p50, p95, max), evenly spread across the plotting area."""
    return LEFT + 40 + index * (RIGHT - LEFT - 80) / (len(PERCENTILES) - 1)


def axes(span: tuple[int, int]) -> list[str]:
    low, high = span
    out = [f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="#333"/>',
           f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="#333"/>',
           f'<text x="15" y="{(TOP + BOTTOM) / 2}" transform="rotate(-90 15 {(TOP + BOTTOM) / 2})" '
           f'text-anchor="middle">latency, ms (log scale)</text>']
    for power in range(low, high + 1):
        y = y_of(10.0 ** power, span)
        out.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{RIGHT}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{number(10.0 ** power)}</text>')
    for i, name in enumerate(PERCENTILES):
        out.append(f'<text x="{x_of(i):.1f}" y="{BOTTOM + 20}" text-anchor="middle">{name}</text>')
    return out


def line(index: int, label: str, p: Percentiles, span: tuple[int, int]) -> list[str]:
    """One series: its polyline through p50, p95 and max, a dot at each, its entry in the legend."""
    colour = COLOURS[index % len(COLOURS)]
    points = [(x_of(i), y_of(v, span)) for i, v in enumerate((p.p50_ms, p.p95_ms, p.max_ms))]
    out = [f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
           f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in points)}"><title>{escape(label)}</title></polyline>']
    out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in points]
    legend_y = TOP + 10 + index * 20
    out.append(f'<rect x="{RIGHT + 20}" y="{legend_y - 8}" width="12" height="4" fill="{colour}"/>')
    out.append(f'<text x="{RIGHT + 38}" y="{legend_y}">{escape(label)} (n={p.n})</text>')
    return out


def svg(results: list[BenchResult], title: str) -> str:
    lines = series(results)
    span = decades([v for _, p in lines for v in (p.p50_ms, p.p95_ms, p.max_ms)])
    body = [f'<text x="{LEFT}" y="18" font-weight="bold">{escape(title)}</text>', *axes(span)]
    for i, (label, p) in enumerate(lines):
        body += line(i, label, p, span)
    if not lines:
        body.append(f'<text x="{LEFT + 20}" y="{(TOP + BOTTOM) / 2}">no benchmark measured latency</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">\n'
            + "\n".join(body) + "\n</svg>\n")


# -- writing it ----------------------------------------------------------------------------------------------
def write(report: Report, out: Path) -> list[Path]:
    """report.json, report.md and latency.svg in `out`: the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "md": out / "report.md", "svg": out / "latency.svg"}
    paths["json"].write_text(json.dumps(report.to_json(), indent=2, default=str))
    paths["md"].write_text(markdown(report))
    paths["svg"].write_text(svg(report.results, f"Latency percentiles ({report.size}, {report.started})"))
    return list(paths.values())


if __name__ == "__main__":  # re-render the markdown and plot from a report.json: python -m bench.report DIR
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    write(Report.from_json(json.loads((folder / "report.json").read_text())), folder)
