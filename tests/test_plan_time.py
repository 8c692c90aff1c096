"""When texts may go out and when waits end: TCPA hours where the contact is, business hours, DST."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.area_codes import AREA_CODE_ZONES
from models.plan_context import PlanAccount, PlanContact, PlanContext, contact_time_zone
from models.plan_time import WaitFault, in_business_hours, plan_time_zone, text_allowed_at, wait_ends_at
from models.plans import BusinessHours, PlanSettings, QuietHours, WaitEvent, WaitStep, Weekday

CHICAGO, NEW_YORK, LOS_ANGELES = "America/Chicago", "America/New_York", "America/Los_Angeles"
TCPA = QuietHours()
HOURS = BusinessHours()  # Monday to Friday, 09:00 to 17:00


def local(zone: str, year: int, month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A local wall time, as the UTC instant the functions take."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def context(**contact: Any) -> PlanContext:
    return PlanContext(contact=PlanContact(id="c-1", **contact),
                       account=PlanAccount(id="acme-austin", name="Acme Home Services of Austin",
                                           time_zone=CHICAGO))


def test_a_text_at_2130_in_chicago_goes_out_at_8_the_next_morning() -> None:
    assert text_allowed_at(local(CHICAGO, 2026, 11, 19, 21, 30), CHICAGO, TCPA) == local(CHICAGO, 2026, 11, 20, 8)
    assert text_allowed_at(local(CHICAGO, 2026, 11, 19, 21, 0), CHICAGO, TCPA) == local(CHICAGO, 2026, 11, 20, 8)
    assert text_allowed_at(local(CHICAGO, 2026, 11, 20, 6, 15), CHICAGO, TCPA) == local(CHICAGO, 2026, 11, 20, 8)
    inside = local(CHICAGO, 2026, 11, 20, 8, 0)
    assert text_allowed_at(inside, CHICAGO, TCPA) == inside
    assert text_allowed_at(local(CHICAGO, 2026, 11, 20, 20, 59), CHICAGO, TCPA) == local(CHICAGO, 2026, 11, 20, 20, 59)


def test_quiet_hours_are_the_contacts_own() -> None:
    # 02:30 UTC is 21:30 in New York (too late) but 18:30 in Los Angeles (fine).
    moment = datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
    assert text_allowed_at(moment, NEW_YORK, TCPA) == local(NEW_YORK, 2026, 11, 20, 8)
    assert text_allowed_at(moment, LOS_ANGELES, TCPA) == moment
    # 13:30 UTC is 08:30 in New York (fine) but 07:30 in Chicago (too early).
    morning = datetime(2026, 11, 20, 13, 30, tzinfo=UTC)
    assert text_allowed_at(morning, NEW_YORK, TCPA) == morning
    assert text_allowed_at(morning, CHICAGO, TCPA) == datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def test_a_narrower_window_is_kept() -> None:
    window = QuietHours(start=time(9, 30), end=time(19, 0))
    assert text_allowed_at(local(CHICAGO, 2026, 11, 20, 19, 0), CHICAGO, window) == local(CHICAGO, 2026, 11, 21, 9, 30)


@pytest.mark.parametrize(("late", "opens"), [
    # Spring forward (2026-03-08 02:00 -> 03:00): 08:00 CDT is 13:00 UTC, not 14:00.
    (local(CHICAGO, 2026, 3, 7, 22, 0), datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),
    # Fall back (2026-11-01 02:00 -> 01:00): 08:00 CST is 14:00 UTC, not 13:00.
    (local(CHICAGO, 2026, 10, 31, 22, 0), datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),
])
def test_quiet_hours_end_at_8_local_across_dst(late: datetime, opens: datetime) -> None:
    assert text_allowed_at(late, CHICAGO, TCPA) == opens
    assert opens.astimezone(ZoneInfo(CHICAGO)).time() == time(8, 0)


def test_arizona_keeps_standard_time() -> None:
    assert text_allowed_at(datetime(2026, 7, 1, 4, 0, tzinfo=UTC), "America/Phoenix", TCPA) == \
        datetime(2026, 7, 1, 15, 0, tzinfo=UTC)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        text_allowed_at(datetime(2026, 11, 20, 12, 0), CHICAGO, TCPA)  # noqa: DTZ001


@pytest.mark.parametrize(("moment", "opens"), [
    (local(CHICAGO, 2026, 11, 20, 10, 0), local(CHICAGO, 2026, 11, 20, 10, 0)),  # Friday, open
    (local(CHICAGO, 2026, 11, 20, 7, 0), local(CHICAGO, 2026, 11, 20, 9, 0)),  # Friday, before opening
    (local(CHICAGO, 2026, 11, 20, 17, 30), local(CHICAGO, 2026, 11, 23, 9, 0)),  # Friday, closed: Monday
    (local(CHICAGO, 2026, 11, 21, 12, 0), local(CHICAGO, 2026, 11, 23, 9, 0)),  # Saturday: Monday
    (local(CHICAGO, 2026, 11, 25, 17, 0), local(CHICAGO, 2026, 11, 27, 9, 0)),  # Wednesday, then Thanksgiving
])
def test_business_hours_skip_evenings_weekends_and_holidays(moment: datetime, opens: datetime) -> None:
    assert in_business_hours(moment, CHICAGO, HOURS, [date(2026, 11, 26)]) == opens


def test_business_hours_open_on_the_days_given() -> None:
    saturdays = BusinessHours(days=[Weekday.SAT], start=time(10, 0), end=time(14, 0))
    assert in_business_hours(local(CHICAGO, 2026, 11, 20, 10, 0), CHICAGO, saturdays, []) == \
        local(CHICAGO, 2026, 11, 21, 10, 0)
    with pytest.raises(ValueError, match="never open"):
        in_business_hours(local(CHICAGO, 2026, 11, 20, 10, 0), CHICAGO, saturdays,
                          [date(2026, 11, 21) + timedelta(weeks=n) for n in range(200)])


SETTINGS = PlanSettings(holidays=[date(2026, 11, 26)])


def ends(step: WaitStep, started: datetime, ctx: PlanContext | None = None) -> datetime | None:
    return wait_ends_at(step, started, CHICAGO, ctx or context(), SETTINGS)


def test_a_days_wait_keeps_the_local_time_across_dst() -> None:
    one_day = WaitStep(id="w", duration=timedelta(days=1))
    assert ends(one_day, local(CHICAGO, 2026, 3, 7, 10, 0)) == local(CHICAGO, 2026, 3, 8, 10, 0)
    assert ends(one_day, local(CHICAGO, 2026, 10, 31, 10, 0)) == local(CHICAGO, 2026, 11, 1, 10, 0)
    # Hours elapse: two hours after 01:30 on spring-forward night is 04:30 CDT.
    two_hours = WaitStep(id="w", duration=timedelta(hours=2))
    assert ends(two_hours, local(CHICAGO, 2026, 3, 8, 1, 30)) == local(CHICAGO, 2026, 3, 8, 4, 30)


def test_a_wait_in_business_hours_ends_when_the_business_opens() -> None:
    step = WaitStep(id="w", duration=timedelta(days=1), business_hours=True)
    # Wednesday 15:00 + 1 day is Thanksgiving: Friday at 09:00.
    assert ends(step, local(CHICAGO, 2026, 11, 25, 15, 0)) == local(CHICAGO, 2026, 11, 27, 9, 0)


def test_until_time_is_the_next_time_that_hour_comes() -> None:
    step = WaitStep(id="w", until_time=time(10, 0))
    assert ends(step, local(CHICAGO, 2026, 11, 20, 9, 0)) == local(CHICAGO, 2026, 11, 20, 10, 0)
    assert ends(step, local(CHICAGO, 2026, 11, 20, 10, 0)) == local(CHICAGO, 2026, 11, 20, 10, 0)
    assert ends(step, local(CHICAGO, 2026, 11, 20, 11, 0)) == local(CHICAGO, 2026, 11, 21, 10, 0)
    assert ends(step.model_copy(update={"business_hours": True}), local(CHICAGO, 2026, 11, 20, 11, 0)) == \
        local(CHICAGO, 2026, 11, 23, 9, 0)  # Saturday 10:00 is closed: Monday at opening


def test_until_field_with_an_offset() -> None:
    appointment = local(CHICAGO, 2026, 11, 24, 15, 0)  # Tuesday 15:00
    ctx = context(appointment_at=appointment)
    day_before = WaitStep(id="w", until_field="contact.appointment_at", offset=timedelta(days=-1))
    started = local(CHICAGO, 2026, 11, 20, 12, 0)
    assert ends(day_before, started, ctx) == local(CHICAGO, 2026, 11, 23, 15, 0)
    two_hours_before = WaitStep(id="w", until_field="client.appointmentAt", offset=timedelta(hours=-2))
    assert ends(two_hours_before, started, ctx) == local(CHICAGO, 2026, 11, 24, 13, 0)
    # Two days before is Sunday: with business hours, Monday at 09:00.
    sunday = WaitStep(id="w", until_field="contact.appointment_at", offset=timedelta(days=-2), business_hours=True)
    assert ends(sunday, started, ctx) == local(CHICAGO, 2026, 11, 23, 9, 0)
    # Already past: the wait ends at once.
    assert ends(day_before, local(CHICAGO, 2026, 11, 24, 9, 0), ctx) == local(CHICAGO, 2026, 11, 24, 9, 0)


def test_until_field_without_a_value_is_a_fault() -> None:
    step = WaitStep(id="wait-for-visit", until_field="contact.appointment_at")
    with pytest.raises(WaitFault, match=r"contact\.appointment_at is empty for contact c-1"):
        ends(step, local(CHICAGO, 2026, 11, 20, 12, 0))


def test_until_event_ends_only_at_its_timeout() -> None:
    started = local(CHICAGO, 2026, 11, 20, 16, 30)
    assert ends(WaitStep(id="w", until_event=WaitEvent.REPLY), started) is None
    with_timeout = WaitStep(id="w", until_event=WaitEvent.REPLY, timeout=timedelta(days=3))
    assert ends(with_timeout, started) == local(CHICAGO, 2026, 11, 23, 16, 30)
    in_hours = with_timeout.model_copy(update={"timeout": timedelta(hours=1), "business_hours": True})
    assert ends(in_hours, started) == local(CHICAGO, 2026, 11, 23, 9, 0)


@pytest.mark.parametrize(("contact", "zone"), [
    ({"phone": "3035550100"}, "America/Denver"),
    ({"phone": "+12125550100"}, NEW_YORK),
    ({"phone": "(415) 555-0100"}, LOS_ANGELES),
    ({"phone": "8085550100"}, "Pacific/Honolulu"),
    ({"phone": "9075550100"}, "America/Anchorage"),
    ({"phone": "6025550100"}, "America/Phoenix"),
    ({"phone": "+12125550100", "time_zone": "America/Denver"}, "America/Denver"),  # the CRM's zone wins
    ({"phone": "+442071838750"}, CHICAGO),  # not a US number: the account's zone
    ({"phone": "8005550100"}, CHICAGO),  # toll-free: nowhere in particular
    ({}, CHICAGO),
])
def test_the_contacts_time_zone(contact: dict[str, str], zone: str) -> None:
    ctx = context(**contact)
    assert contact_time_zone(ctx.contact, CHICAGO) == zone == ctx.time_zone()


def test_every_area_code_has_a_us_zone() -> None:
    assert len(AREA_CODE_ZONES) > 300
    assert all(len(code) == 3 and code.isdigit() for code in AREA_CODE_ZONES)
    zones = {ZoneInfo(zone).key for zone in AREA_CODE_ZONES.values()}
    assert zones <= {NEW_YORK, CHICAGO, "America/Denver", "America/Boise", "America/Phoenix", LOS_ANGELES,
                     "America/Anchorage", "Pacific/Honolulu"}
    assert AREA_CODE_ZONES["512"] == CHICAGO and AREA_CODE_ZONES["720"] == "America/Denver"


def test_a_texts_hours_follow_the_contact_while_waits_may_follow_the_account() -> None:
    ctx = context(phone="2125550100")  # a New York number on the Austin account
    assert plan_time_zone(PlanSettings(), ctx) == NEW_YORK
    assert plan_time_zone(PlanSettings(time_zone_source="account"), ctx) == CHICAGO
    # 07:30 in Austin is 08:30 in New York: the text may go.
    moment = local(CHICAGO, 2026, 11, 20, 7, 30)
    assert text_allowed_at(moment, ctx.time_zone(), TCPA) == moment
