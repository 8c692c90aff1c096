"""The royalty calendar: the business date a run covers whatever DST did that night, the receipt cut-off,
and the run times the network file refuses because Temporal would skip them or fire them twice."""

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import ValidationError

from config.network import load_network
from config.settings import Settings
from models.royalty_dates import business_date, dst_unsafe_days, eligible_through, local_date

CHICAGO = "America/Chicago"


@pytest.mark.parametrize("day", [
    date(2026, 3, 8),  # spring forward (02:00 -> 03:00)
    date(2026, 3, 9),
    date(2026, 11, 1),  # fall back (02:00 -> 01:00)
    date(2026, 11, 2),
    date(2026, 12, 31),
])
def test_a_4am_run_covers_the_day_before_across_dst(day: date) -> None:
    scheduled = datetime.combine(day, time(4, 0), tzinfo=ZoneInfo(CHICAGO)).astimezone(UTC)
    assert business_date(scheduled, CHICAGO) == day - timedelta(days=1)


def test_the_business_date_is_the_franchisors_not_utcs() -> None:
    # 04:00 in Honolulu on 22 November is already 14:00 UTC: still 21 November's business there.
    scheduled = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    assert business_date(scheduled, "Pacific/Honolulu") == date(2026, 11, 21)
    # 04:00 in Sydney on 22 November is 17:00 UTC on the 21st: its business date is the 21st, not the 20th.
    assert business_date(datetime(2026, 11, 21, 17, 0, tzinfo=UTC), "Australia/Sydney") == date(2026, 11, 21)


def test_the_waiting_period_counts_local_dates() -> None:
    assert eligible_through(date(2026, 11, 21), 3) == date(2026, 11, 18)
    assert eligible_through(date(2026, 3, 9), 3) == date(2026, 3, 6)  # no hour lost to DST matters
    assert eligible_through(date(2026, 11, 21), 0) == date(2026, 11, 21)
    # A card payment taken at 23:30 in Denver is received that day there, the next day in UTC.
    assert local_date(datetime(2026, 11, 19, 6, 30, tzinfo=UTC), "America/Denver") == date(2026, 11, 18)


def test_run_times_inside_the_dst_change_are_found() -> None:
    start = date(2026, 1, 1)
    assert dst_unsafe_days(time(2, 30), CHICAGO, start, 365) == [(date(2026, 3, 8), "does not exist")]
    assert dst_unsafe_days(time(1, 30), CHICAGO, start, 365) == [(date(2026, 11, 1), "happens twice")]
    assert dst_unsafe_days(time(4, 0), CHICAGO, start, 365) == []
    assert dst_unsafe_days(time(2, 30), "Asia/Kolkata", start, 365) == []  # no DST there
    assert dst_unsafe_days(time(1, 30), "Europe/London", start, 365) == [(date(2026, 3, 29), "does not exist"),
                                                                           (date(2026, 10, 25), "happens twice")]


@pytest.mark.parametrize("run_time", ["02:30", "01:15"])
def test_the_network_file_refuses_a_run_time_dst_would_skip_or_repeat(tmp_path: Path, settings: Settings,
                                                                      run_time: str) -> None:
    data = yaml.safe_load(settings.network_file.read_text())
    data["franchisor"]["royalty"]["run_time"] = run_time
    path = tmp_path / "network.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError, match=f"run_time {run_time} .* in America/Chicago"):
        load_network(path)


def test_the_example_network_runs_at_4am() -> None:
    network = load_network(Settings().network_file)
    assert network.franchisor.royalty.run_time == time(4, 0)
    assert network.franchisor.royalty.waiting_period_days == 3
