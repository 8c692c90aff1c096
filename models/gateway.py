"""The shapes of a gateway payment as they cross the workflow boundary: what to charge, void or refund, and what
the gateway says about a transaction. Account ids, payment method ids and exact amounts only: the merchant's
API key is loaded by the activity, never carried here."""

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.money import Exact, Money, cents


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChargeLineItem(_Shape):
    item: str = Field(min_length=1, max_length=255)
    details: str = Field(default="", max_length=255)
    quantity: Exact = Field(gt=0)
    price: Money = Field(ge=0)


class ChargeMeta(_Shape):
    """What the gateway keeps with the charge for people to read (Stax's `meta`); never added to the total."""

    payment_note: str | None = Field(default=None, max_length=255)
    tax: Money | None = Field(default=None, ge=0)
    subtotal: Money | None = Field(default=None, ge=0)
    fee: Money | None = Field(default=None, ge=0)
    line_items: list[ChargeLineItem] = []


class ChargeRequest(_Shape):
    """Charge `total` to a payment method through the gateway account of `account_id` (the merchant that is
    paid: a franchisor collecting royalty, a franchisee collecting from its customer). The idempotency_id is
    derived from the business key and the step, so every retry of the step charges at most once."""

    account_id: str = Field(min_length=1, max_length=64)
    payment_method_id: str = Field(min_length=1, max_length=64)
    total: Money = Field(gt=0)
    idempotency_id: str = Field(min_length=1, max_length=255)
    meta: ChargeMeta = ChargeMeta()
    invoice_id: str | None = Field(default=None, max_length=64)
    pre_auth: bool = False


class TransactionRef(_Shape):
    """One transaction of the gateway account of `account_id`."""

    account_id: str = Field(min_length=1, max_length=64)
    transaction_id: str = Field(min_length=1, max_length=64)


class VoidOrRefundRequest(_Shape):
    """Void a charge before it settles (in full: `total` is then None or the whole amount), or refund it after
    (all that is left when `total` is None). The idempotency_id makes a retry change nothing."""

    account_id: str = Field(min_length=1, max_length=64)
    transaction_id: str = Field(min_length=1, max_length=64)
    idempotency_id: str = Field(min_length=1, max_length=255)
    total: Money | None = Field(default=None, gt=0)


class GatewayCharge(_Shape):
    """A charge as the gateway reports it. An ACH debit is `success` after its initial checks only: it counts
    once `settled` and not `returned` (a return is a child void on a settled charge; a `voided` charge was
    voided before settlement and never moved money)."""

    transaction_id: str
    success: bool
    method: Literal["card", "bank"]
    total: Money
    total_refunded: Money = cents(0)
    surcharge: Money = cents(0)  # a card surcharge the gateway added on top of `total`
    settled: bool = False
    settled_at: AwareDatetime | None = None
    voided: bool = False
    returned: bool = False
    message: str | None = None
