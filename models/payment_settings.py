"""How an account takes payments (config/network.yaml `payments`): the fee it adds, its invoice terms, when
its autopay cycle runs, and how long an ACH debit is watched for a return."""

from datetime import date, datetime, time
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.money import CENT, Exact, Money, cents


class PaymentSettings(BaseModel):
    """`fee`: "none"; "convenience" (the account adds `convenience_fee_flat` plus `convenience_fee_percent`
    of the amount to every collection); or "surcharge" (the gateway adds its card surcharge itself, never to
    the total sent; bank debits carry none). Tips never bear a fee."""

    model_config = ConfigDict(extra="forbid")

    fee: Literal["none", "convenience", "surcharge"] = "none"
    convenience_fee_flat: Money = Field(default=cents(0), ge=0)
    convenience_fee_percent: Exact = Field(default=Decimal(0), ge=0, le=10)
    terms_days: int = Field(default=30, ge=0, le=365)  # an invoice is due this long after it is issued
    autopay_time: time = time(6, 0)  # the daily autopay cycle, account-local time
    scheduled_payment_time: time = time(8, 0)  # a scheduled payment is charged at this local time on its day
    ach_return_window_days: int = Field(default=5, ge=0, le=60)  # after settlement, a return can still come

    @model_validator(mode="after")
    def _fee_parts_only_for_convenience(self) -> "PaymentSettings":
        has_parts = self.convenience_fee_flat > 0 or self.convenience_fee_percent > 0
        if has_parts and self.fee != "convenience":
            raise ValueError(f"convenience_fee_flat and convenience_fee_percent apply only when fee is "
                             f"'convenience', not {self.fee!r}")
        return self

    def charge_at(self, pay_on: date, time_zone: str) -> datetime:
        """When a payment scheduled for `pay_on` is charged: the account's local payment time that day."""
        return datetime.combine(pay_on, self.scheduled_payment_time, ZoneInfo(time_zone))

    def convenience_fee(self, amount: Decimal) -> Decimal:
        """The account's own fee on `amount` (the part toward what is owed), half-up to the cent."""
        if self.fee != "convenience" or amount <= 0:
            return cents(0)
        return cents(self.convenience_fee_flat + amount * self.convenience_fee_percent / 100)

    def amount_within(self, limit: Decimal) -> Decimal:
        """The largest amount whose total with its fee stays within `limit`: what a scheduled payment or autopay
        charges toward a balance of `limit`, so that (the fee applied with it) the invoice is never overpaid."""
        amount = cents(max((limit - self.convenience_fee_flat) / (1 + self.convenience_fee_percent / 100),
                           Decimal(0)))
        while amount > 0 and amount + self.convenience_fee(amount) > limit:
            amount -= CENT
        while amount + CENT + self.convenience_fee(amount + CENT) <= limit:
            amount += CENT
        return amount
