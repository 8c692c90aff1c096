"""An autopay cycle of one account (`autopay:{account}:{cycle date}`): what it is started with, what it plans
and what it reports."""

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from models.autopay import AutopayChoice
from models.collections import CollectionResult


class AutopayCycleInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: str = Field(min_length=1, max_length=64)
    cycle_date: date | None = None  # None: the account's local today (a scheduled cycle)
    ach_poll_interval_seconds: float = Field(default=86_400.0, gt=0)
    concurrency: int = Field(default=10, ge=1, le=100)


class AutopayPlan(BaseModel):
    cycle_date: date
    choices: list[AutopayChoice]


class AutopayOutcome(BaseModel):
    invoice_number: str
    proposal_id: str
    config_id: str
    result: CollectionResult


class AutopayCycleResult(BaseModel):
    account_id: str
    cycle_date: date
    outcomes: list[AutopayOutcome]


def autopay_workflow_id(account_id: str, cycle_date: date) -> str:
    return f"autopay:{account_id}:{cycle_date.isoformat()}"


def autopay_schedule_id(account_id: str) -> str:
    """The account's daily schedule (its runs are this id and the time Temporal started them)."""
    return f"autopay:{account_id}"


def autopay_collection_key(cycle_date: date, proposal_id: str) -> str:
    """One collection per invoice per cycle; across cycles, the reservation keeps an invoice from being paid
    twice (what one cycle holds or paid is no longer due for the next)."""
    return f"autopay-{cycle_date.isoformat()}-{proposal_id}"
