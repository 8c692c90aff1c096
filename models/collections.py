"""Collecting a payment through the gateway: what a collection asks for, what it comes to, and the ledger row
that holds it from before the charge until the CRM, QBO and the bank are done with it.

A collection is keyed by the caller's idempotency key (`collect:{account}:{key}` is its workflow id), so a
double click, a retried API call or an autopay cycle started twice charges once. The row is written before
the charge, holding its amount against what the proposal still owes, so two collections at once can never
take more than is due (models/collection_ledger.py, models/receivables.py)."""

import re
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from models.money import Money, cents

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
# Keys Ledgerflow makes for its own collections (models/scheduled_payments.py, models/autopay_cycles.py).
INTERNAL_KEY_PREFIXES = ("scheduled-", "autopay-")
PaymentMethodKind = Literal["card", "bank"]


class CollectionSource(StrEnum):
    API = "api"
    SCHEDULED = "scheduled"
    AUTOPAY = "autopay"


class CollectionStatus(StrEnum):
    RESERVED = "reserved"  # held against what is due; the charge is about to be (or was just) sent
    CHARGED = "charged"  # the gateway took it (an ACH debit: its initial checks passed)
    SETTLED = "settled"  # an ACH debit past its return window
    DECLINED = "declined"
    REFUSED = "refused"  # the gateway would not take it (an unknown payment method), or more than is due
    NOTHING_DUE = "nothing_due"  # scheduled or autopay, and an earlier payment paid it all
    RETURNED = "returned"  # the bank sent an ACH debit back: reversed everywhere
    REFUNDED = "refunded"  # given back in full by the merchant (voided before settlement, refunded after)
    FAILED = "failed"  # a cycle's report only: the collection's run failed (its row says where it got to)


# Where a collection may go from each status: never back, never out of an end. A late or repeated update (a
# collection recording its CRM payment after a refund, a watch after a refund) cannot undo what happened.
NEXT: dict[CollectionStatus, set[CollectionStatus]] = {
    CollectionStatus.RESERVED: set(CollectionStatus),
    CollectionStatus.CHARGED: {CollectionStatus.CHARGED, CollectionStatus.SETTLED, CollectionStatus.RETURNED,
                               CollectionStatus.REFUNDED},
    CollectionStatus.SETTLED: {CollectionStatus.SETTLED, CollectionStatus.RETURNED, CollectionStatus.REFUNDED},
}

# What no longer holds money against the proposal.
RELEASED = (CollectionStatus.DECLINED, CollectionStatus.REFUSED, CollectionStatus.NOTHING_DUE,
            CollectionStatus.RETURNED, CollectionStatus.REFUNDED)


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CollectPayment(_Shape):
    """Charge a customer's payment method for a proposal (or the invoice made from it). `amount` goes toward
    what is owed; the tip and any convenience fee come on top. With `up_to_due` (scheduled payments and
    autopay) the amount is lowered to what is still due when the charge is made, and nothing is charged when
    nothing is."""

    account_id: str = Field(min_length=1, max_length=64)
    collection_key: str = Field(min_length=1, max_length=100)
    proposal_id: str = Field(min_length=1, max_length=64)
    payment_method_id: str = Field(min_length=1, max_length=64)
    method: PaymentMethodKind
    amount: Money = Field(gt=0)
    tip: Money = Field(default=cents(0), ge=0)
    up_to_due: bool = False
    source: CollectionSource = CollectionSource.API
    note: str | None = Field(default=None, max_length=200)
    ach_poll_interval_seconds: float = Field(default=86_400.0, gt=0)  # a bank debit's status, looked at again

    @field_validator("collection_key")
    @classmethod
    def _key(cls, key: str) -> str:
        if not KEY.match(key):
            raise ValueError("an idempotency key is 1 to 100 letters, digits and . _ : - (starting with a letter "
                             "or digit)")
        return key


class Reservation(_Shape):
    """What the collection will charge, held against the proposal: zero when nothing is due (up_to_due)."""

    amount: Money
    tip: Money
    convenience_fee: Money
    received_on: date
    proposal_number: str
    customer_name: str
    ach_return_window_days: int = 5
    # A key seen before: where its collection got to. Only a reserved one (or one charged but not yet on the
    # CRM) goes on; any other answers with what it did.
    status: CollectionStatus = CollectionStatus.RESERVED
    transaction_id: str | None = None
    crm_payment_id: str | None = None
    surcharge: Money = cents(0)
    message: str | None = None

    @property
    def total(self) -> Money:
        """What is sent to the gateway; a card surcharge, if the merchant adds one, comes on top of it."""
        return cents(self.amount + self.tip + self.convenience_fee)


class CollectionUpdate(_Shape):
    account_id: str
    collection_key: str
    status: CollectionStatus
    transaction_id: str | None = None
    crm_payment_id: str | None = None
    surcharge: Money | None = None
    message: str | None = None


class RecordCollectedPayment(_Shape):
    """The charge as a payment on the CRM proposal; `reference` (the gateway transaction) finds it again."""

    account_id: str
    proposal_id: str
    amount: Money
    tip: Money
    convenience_fee: Money
    method: str
    received_on: date
    reference: str


class VoidCollectedPayment(_Shape):
    account_id: str
    crm_payment_id: str
    kind: Literal["void", "refund", "return"]


class CollectionResult(BaseModel):
    """What the caller is told. A decline is an answer, not a failure: it changed no books."""

    status: CollectionStatus
    collection_key: str
    amount: Money = cents(0)
    tip: Money = cents(0)
    convenience_fee: Money = cents(0)
    surcharge: Money = cents(0)
    transaction_id: str | None = None
    crm_payment_id: str | None = None
    message: str | None = None

    @property
    def charged(self) -> Money:
        return cents(self.amount + self.tip + self.convenience_fee + self.surcharge)


class RefundPayment(_Shape):
    """Give a collected payment back in full: `refund:{account}:{collection key}`, so a second request joins the
    first and nothing is given back twice."""

    account_id: str = Field(min_length=1, max_length=64)
    collection_key: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=200)


class CollectedCharge(_Shape):
    """What a refund needs of the collection: its gateway transaction and its CRM payment."""

    transaction_id: str
    crm_payment_id: str | None
    status: CollectionStatus


class AchWatch(_Shape):
    """An ACH debit to watch until it settles and its return window passes, or the bank returns it."""

    account_id: str
    collection_key: str
    transaction_id: str
    crm_payment_id: str
    poll_interval_seconds: float = Field(gt=0)
    return_window_seconds: float = Field(ge=0)


class GatewayNews(_Shape):
    """A gateway webhook about the transaction: only a nudge to look (Stax signs nothing), never trusted."""

    event_name: str = Field(max_length=64)
    received_at: AwareDatetime


def collection_workflow_id(account_id: str, collection_key: str) -> str:
    return f"collect:{account_id}:{collection_key}"


def refund_workflow_id(account_id: str, collection_key: str) -> str:
    return f"refund:{account_id}:{collection_key}"


def ach_workflow_id(account_id: str, transaction_id: str) -> str:
    return f"ach:{account_id}:{transaction_id}"
