"""An IANA time zone name, checked when a config file or a CRM record is read; an account's local today."""

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def _valid_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {value!r}") from error
    return value


TimeZoneName = Annotated[str, AfterValidator(_valid_zone)]


def local_today(time_zone: str) -> date:
    """Today where the account is: the day invoices are issued, payments received and autopay cycles run."""
    return datetime.now(ZoneInfo(time_zone)).date()
