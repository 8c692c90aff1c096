"""The calendar of a royalty run: which business date a nightly run covers, the last date a payment may be
received on to be charged in it, and which local run times Temporal's schedules fire exactly once a day.
Pure functions: workflows call them too."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def business_date(run_at: datetime, time_zone: str) -> date:
    """The business date a run starting at `run_at` covers: the franchisor's last full local day, whatever
    the local time of the run and whatever DST did that night."""
    return run_at.astimezone(ZoneInfo(time_zone)).date() - timedelta(days=1)


def eligible_through(business: date, waiting_period_days: int) -> date:
    """The last local date of receipt a payment may have to be charged in the run for `business`. Payment dates
    are the franchisee's own local dates (the CRM records them so), so the cut-off is a date, not an instant:
    a franchisee west of its franchisor whose day is not over yet loses nothing, since a payment dated later
    is still uncharged on the next run."""
    return business - timedelta(days=waiting_period_days)


def local_date(instant: datetime, time_zone: str) -> date:
    """The franchisee's local date of an instant (a gateway's UTC timestamp, say)."""
    return instant.astimezone(ZoneInfo(time_zone)).date()


def dst_unsafe_days(run_time: time, time_zone: str, start: date, days: int = 3 * 366) -> list[tuple[date, str]]:
    """The days within `days` of `start` on which `run_time` does not exist (spring forward: Temporal's
    schedule skips the day) or exists twice (fall back: the schedule fires twice) in `time_zone`."""
    zone = ZoneInfo(time_zone)
    unsafe: list[tuple[date, str]] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        wall = datetime.combine(day, run_time, tzinfo=zone)
        if wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
            unsafe.append((day, "does not exist"))
        elif wall.utcoffset() != wall.replace(fold=1).utcoffset():
            unsafe.append((day, "happens twice"))
    return unsafe
