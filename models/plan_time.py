"""When a plan's texts may go out and when its waits end. Pure and deterministic: the workflow passes
workflow.now(), so nothing here reads a clock or does I/O. Every datetime is tz-aware, UTC in and out; the
local calendar (DST included) is worked out in the zone given."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from models.plan_context import PlanContext, token_value
from models.plans import BusinessHours, PlanSettings, QuietHours, WaitStep

_SEARCH_DAYS = 800  # a business-hours search finding no open day in two years has a plan with no open day


class WaitFault(Exception):
    """A wait that cannot be timed for this contact (its date field is empty)."""


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"{moment} has no time zone: plan times are tz-aware UTC")
    return moment


def _wall(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`at` on `day` in the zone, as UTC. A wall time lost to spring-forward maps to the moment after the gap
    (02:30 on the change day is 03:30), one repeated at fall-back to its first occurrence."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def plan_time_zone(settings: PlanSettings, context: PlanContext) -> str:
    """The zone a plan's waits and business hours are in (settings.time_zone_source). Texts' quiet hours
    always use the contact's zone: TCPA hours are the called party's."""
    return context.time_zone() if settings.time_zone_source == "contact" else context.account.time_zone


def text_allowed_at(moment: datetime, time_zone: str, quiet: QuietHours) -> datetime:
    """When a text due at `moment` may go out: then, if it is inside the quiet-hours window where the contact
    is (`time_zone`, the contact's), else when the window next opens. A text is delayed, never dropped."""
    zone = ZoneInfo(time_zone)
    local = _aware(moment).astimezone(zone)
    if quiet.start <= local.time() < quiet.end:
        return moment.astimezone(UTC)
    day = local.date() if local.time() < quiet.start else local.date() + timedelta(days=1)
    return _wall(day, quiet.start, zone)


def _open_on(day: date, hours: BusinessHours, holidays: list[date]) -> bool:
    return any(day.weekday() == weekday.number for weekday in hours.days) and day not in holidays


def in_business_hours(moment: datetime, time_zone: str, hours: BusinessHours, holidays: list[date]) -> datetime:
    """`moment` if the business is open then, else its next opening: weekends (any day not in hours.days) and
    holidays (local dates) skipped."""
    zone = ZoneInfo(time_zone)
    local = _aware(moment).astimezone(zone)
    if _open_on(local.date(), hours, holidays):
        if hours.start <= local.time() < hours.end:
            return moment.astimezone(UTC)
        if local.time() < hours.start:
            return _wall(local.date(), hours.start, zone)
    for offset in range(1, _SEARCH_DAYS):
        day = local.date() + timedelta(days=offset)
        if _open_on(day, hours, holidays):
            return _wall(day, hours.start, zone)
    raise ValueError(f"business hours {[d.value for d in hours.days]} never open within {_SEARCH_DAYS} days")


def _later(moment: datetime, span: timedelta, zone: ZoneInfo) -> datetime:
    """`moment` plus `span`: whole days on the local calendar (a wait of 1d from 10:00 ends at 10:00 the next
    day across a DST change), the rest as elapsed time."""
    days = timedelta(days=span.days)
    local = moment.astimezone(zone).replace(tzinfo=None) + days
    return datetime.combine(local.date(), local.time(), tzinfo=zone).astimezone(UTC) + (span - days)


def _ends(step: WaitStep, started: datetime, zone: ZoneInfo, context: PlanContext) -> datetime | None:
    if step.duration is not None:
        return _later(started, step.duration, zone)
    if step.until_time is not None:
        local = started.astimezone(zone)
        today = _wall(local.date(), step.until_time, zone)
        return today if today >= started else _wall(local.date() + timedelta(days=1), step.until_time, zone)
    if step.until_field is not None:
        value = token_value(context, step.until_field)
        if value is None:
            raise WaitFault(f"{step.until_field} is empty for contact {context.contact.id}: "
                            f"wait {step.id} cannot be timed")
        if not isinstance(value, datetime):
            raise WaitFault(f"{step.until_field} is not a date field (wait {step.id})")
        return max(_later(value, step.offset, zone), started)
    return None if step.timeout is None else _later(started, step.timeout, zone)


def wait_ends_at(step: WaitStep, started: datetime, time_zone: str, context: PlanContext,
                 settings: PlanSettings) -> datetime | None:
    """When a wait begun at `started` ends, in the plan's zone (plan_time_zone): None for an event with no
    timeout (it waits for the event alone); for an event with one, when the timeout runs out. A date field
    already past ends the wait at once. With step.business_hours the end moves into the plan's hours."""
    zone = ZoneInfo(time_zone)
    ends = _ends(step, _aware(started).astimezone(UTC), zone, context)
    if ends is None or not step.business_hours:
        return ends
    return in_business_hours(ends, time_zone, settings.business_hours, settings.holidays)
