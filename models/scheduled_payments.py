"""A payment scheduled for a date (`scheduled:{account}:{schedule id}`): the shapes its workflow takes, is
told and answers. The charge time is worked out by whoever schedules (the account's local payment time on
the day), so the workflow only waits for an instant."""

from datetime import date
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.collections import KEY, CollectionResult, PaymentMethodKind
from models.money import Money


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchedulePayment(_Shape):
    """Pay up to `amount` toward the proposal on `pay_on`. What is paid is what is still due then, never more:
    a payment made before the day lowers it (to nothing, when the invoice is paid)."""

    account_id: str = Field(min_length=1, max_length=64)
    schedule_id: str = Field(min_length=1, max_length=80, pattern=KEY.pattern)
    proposal_id: str = Field(min_length=1, max_length=64)
    payment_method_id: str = Field(min_length=1, max_length=64)
    method: PaymentMethodKind
    amount: Money = Field(gt=0)
    pay_on: date
    charge_at: AwareDatetime
    ach_poll_interval_seconds: float = Field(default=86_400.0, gt=0)


class Reschedule(_Shape):
    pay_on: date
    charge_at: AwareDatetime
    amount: Money | None = Field(default=None, gt=0)  # None: the amount stays


class ScheduleStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    COLLECTING = "collecting"
    DONE = "done"  # the collection ran: its result says how it ended


class ScheduledPaymentState(BaseModel):
    status: ScheduleStatus
    pay_on: date
    charge_at: AwareDatetime
    amount: Money
    result: CollectionResult | None = None


def scheduled_workflow_id(account_id: str, schedule_id: str) -> str:
    return f"scheduled:{account_id}:{schedule_id}"


def scheduled_collection_key(schedule_id: str) -> str:
    return f"scheduled-{schedule_id}"
