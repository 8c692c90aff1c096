"""`python -m bench` end to end at its smoke size (every benchmark on its own embedded stack, one report), and the
report writer's pieces: the log axis of the latency plot and the markdown table."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS, run_one
from bench.report import BOTTOM, TOP, Report, decades, markdown, svg, x_of, y_of
from bench.result import BenchResult, Percentiles, Target

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    done = subprocess.run([sys.executable, "-m", "bench", "--size", "smoke", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, check=False)
    return done, out


def test_smoke_run_reports_every_benchmark(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    done, out = smoke
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    data = json.loads((out / "report.json").read_text())
    assert data["ok"] is True
    results = {r["name"]: r for r in data["results"]}
    assert sorted(results) == sorted(BENCHMARKS)
    for name, result in results.items():
        assert result["ok"] is True, (name, result["reasons"])
        assert result["ratio"] is not None and result["ratio"] > 0, name
        assert result["real_rate"] and result["noop_rate"], name
    assert results["proposals"]["latency"] and results["leads"]["latency"]
    assert data["machine"]["cores"] and data["commit"]

    text = (out / "report.md").read_text()
    assert "| benchmark | sizes | real | no-op ceiling | ratio | target | met | books |" in text
    for name in BENCHMARKS:
        assert f"| {name} |" in text

    plot = ET.parse(out / "latency.svg").getroot()
    lines = plot.findall(f"{SVG}polyline") + plot.findall(f"{SVG}path")
    assert len(lines) == sum(len(r["latency"]) for r in data["results"])


def test_log_axis_puts_decades_at_the_frame() -> None:
    span = decades([250.0, 1_500.0, 320_000.0])
    assert span == (2, 6)
    assert y_of(100.0, span) == BOTTOM
    assert y_of(1_000_000.0, span) == TOP
    assert y_of(10_000.0, span) == pytest.approx((TOP + BOTTOM) / 2)
    assert y_of(0.0, span) == BOTTOM  # below the axis: drawn on it, not off the plot
    assert decades([5.0, 5.0]) == (0, 1)  # at least one decade
    assert x_of(0) < x_of(1) < x_of(2)


def example() -> Report:
    proposals = BenchResult(name="proposals", sizes={"proposals": 10}, unit="lifecycles/s", real_rate=2.0,
                            real_seconds=5.0, noop_rate=4.0, noop_seconds=2.5, ratio=0.5,
                            latency={"light": Percentiles(300.0, 900.0, 1_200.0, 20)},
                            targets=[Target("p95 under 1 s at light load", True, 5)])
    wrong = BenchResult(name="royalty", sizes={"franchisees": 3}, unit="franchisees/s", ok=False,
                        reasons=["bench-0001: 2 check(s)"])
    return Report(size="smoke", started="2026-12-02T00:00:00+00:00", seconds=60.0,
                  machine={"cores": 2, "python": "3.11", "platform": "Linux"}, commit="abc", results=[proposals, wrong])


def test_markdown_table_has_a_row_per_benchmark_and_says_what_is_wrong() -> None:
    text = markdown(example())
    assert ("| proposals | proposals 10 | 2 lifecycles/s (5 s) | 4 lifecycles/s (2.5 s) | 0.5 | "
            "p95 under 1 s at light load (issue 5) | met | ok |") in text
    assert "| royalty | franchisees 3 | - | - | - | none stated | - | **WRONG** |" in text
    assert "- royalty: bench-0001: 2 check(s)" in text
    assert "| proposals | light | 300 | 900 | 1,200 | 20 |" in text


def test_svg_has_one_polyline_per_series() -> None:
    plot = ET.fromstring(svg(example().results, "t"))
    assert len(plot.findall(f"{SVG}polyline")) == 1
    assert Report.from_json(json.loads(json.dumps(example().to_json()))).results[0].latency["light"].n == 20


def test_a_benchmark_without_a_result_fails_the_run() -> None:
    result = run_one("no_such_benchmark", [])
    assert result.ok is False and "without a result" in result.reasons[0]
