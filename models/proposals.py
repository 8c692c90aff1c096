"""The shapes of a CRM proposal as they cross the workflow boundary: events, workflow input and state,
activity inputs. Ids only, never credentials."""

from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from models.money import Exact, Money, cents


class Stage(StrEnum):
    """Lifecycle stages a CRM sales-cycle step maps to, per account."""

    PROPOSAL = "proposal"
    JOB_COMPLETE = "job_complete"
    LOST = "lost"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CrmContact(_Strict):
    id: str = Field(min_length=1, max_length=64)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    company_name: str | None = Field(default=None, max_length=100)
    email: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=30)

    @property
    def display_name(self) -> str:
        """QBO DisplayName: the company if there is one, else the person. QBO forbids ':' tab and newline."""
        name = self.company_name or f"{self.first_name} {self.last_name}".strip() or f"CRM contact {self.id}"
        for forbidden in (":", "\t", "\n", "\r"):
            name = name.replace(forbidden, " ")
        return " ".join(name.split())


class ProposalLine(_Strict):
    product: str | None = Field(default=None, max_length=100)  # the QBO item; "Services" when not given
    description: str = Field(min_length=1, max_length=4000)
    quantity: Exact = Field(gt=0)
    unit_price: Exact = Field(ge=0)

    @property
    def amount(self) -> Money:
        return cents(self.quantity * self.unit_price)


class Proposal(_Strict):
    id: str = Field(min_length=1, max_length=64)
    number: str = Field(min_length=1, max_length=21)  # QBO DocNumber is at most 21 characters
    lines: list[ProposalLine] = Field(min_length=1)

    @property
    def total(self) -> Money:
        return cents(sum((line.amount for line in self.lines), start=cents(0)))


class SalesCycleChange(_Strict):
    """What the CRM tells us: a contact's sales-cycle step changed, with the proposal it concerns (none when
    the contact has no proposal yet)."""

    event_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=64)
    sales_cycle_step: str = Field(min_length=1, max_length=100)
    occurred_at: AwareDatetime
    contact: CrmContact
    proposal: Proposal | None = None


class CrmPayment(_Strict):
    """A payment recorded on a CRM proposal."""

    id: str = Field(min_length=1, max_length=64)
    amount: Money = Field(gt=0)
    tip: Money = Field(default=Decimal(0), ge=0)
    received_on: date
    method: str = Field(default="card", max_length=30)
    convenience_fee: Money = Field(default=Decimal(0), ge=0)

    @property
    def total(self) -> Money:
        """What the customer paid: the amount, the tip and any convenience fee."""
        return cents(self.amount + self.tip + self.convenience_fee)


class ProposalChanged(_Strict):
    """The CRM says a proposal was edited (lines, prices, number)."""

    event_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=64)
    occurred_at: AwareDatetime
    contact: CrmContact
    proposal: Proposal


class _PaymentNews(_Strict):
    event_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=64)
    occurred_at: AwareDatetime
    contact: CrmContact
    proposal_id: str = Field(min_length=1, max_length=64)
    proposal_number: str = Field(min_length=1, max_length=21)
    payment: CrmPayment


class PaymentAdded(_PaymentNews):
    """The CRM says a payment was recorded on a proposal."""


class PaymentVoided(_PaymentNews):
    """The CRM says a payment was voided, refunded in full or returned (an ACH debit the bank returned): the
    books must no longer count it. The payment travels whole, so a void that overtakes its payment still
    leaves the books right."""

    kind: Literal["void", "refund", "return"] = "void"


class ProposalSynced(_Strict):
    """What reconciliation read from the CRM about one proposal: its lines, its contact's stage when the
    proposal is the contact's current one, and every payment with the ones voided since."""

    event_id: str = Field(min_length=1, max_length=128)
    account_id: str = Field(min_length=1, max_length=64)
    occurred_at: AwareDatetime  # the proposal's last change in the CRM
    contact: CrmContact
    proposal: Proposal
    stage: Stage | None = None
    stage_at: AwareDatetime | None = None
    payments: list[CrmPayment] = Field(default_factory=list)
    voided_payment_ids: list[str] = Field(default_factory=list)


class ProposalEvent(_Strict):
    """A sales-cycle change resolved to a lifecycle stage: the signal a proposal workflow receives."""

    change: SalesCycleChange
    stage: Stage


# Every event a proposal workflow receives. No discriminator: recorded histories hold events without one.
CrmEvent = ProposalEvent | ProposalChanged | PaymentAdded | PaymentVoided | ProposalSynced


class ProposalInput(_Strict):
    """The proposal workflow's input: which proposal, in which account and QBO company, and on
    continue-as-new the state carried over."""

    account_id: str
    proposal_id: str
    realm_id: str
    franchisor_id: str
    idle_timeout: timedelta = timedelta(days=30)
    # How often a step stopped by a final QBO fault is tried again on its own (an event or `retry` sooner).
    stuck_retry_interval: timedelta = timedelta(hours=1)
    # How long one QBO activity may take before it is tried again elsewhere (a worker that died mid-call).
    qbo_timeout: timedelta = timedelta(minutes=2)
    carried: "ProposalState | None" = None


class PaymentState(BaseModel):
    """One CRM payment and what the books hold for it."""

    payment: CrmPayment
    qbo_id: str | None = None
    applied: Money | None = None  # set once applied to the invoice (0 when the invoice had no balance left)
    voided: Literal["void", "refund", "return"] | None = None
    voided_at: AwareDatetime | None = None
    voided_in_qbo: bool = False

    @property
    def unapplied(self) -> Money:
        return cents(0) if self.voided else cents(self.payment.total - (self.applied or 0))


class StuckStep(BaseModel):
    """A step a final QBO fault stopped; it is tried again on the next event, `retry`, or the retry timer."""

    step: str
    error: str
    since: AwareDatetime
    attempts: int = 1


class StageReport(BaseModel):
    """A step change as the CRM reported it: the stage and its CRM time."""

    at: AwareDatetime
    stage: Stage


class LineReport(BaseModel):
    """The proposal's lines as one event carried them, at its CRM time; `completing` when the job-complete event
    itself carried them."""

    at: AwareDatetime
    proposal: "Proposal"
    completing: bool = False


class ProposalState(BaseModel):
    """What the proposal workflow has done so far; its query result and its continue-as-new carry-over."""

    stage: Stage | None = None
    customer_id: str | None = None
    estimate_id: str | None = None
    events_seen: list[str] = Field(default_factory=list)
    # Events whose stage the first version did not act on, kept whole so a later version can, and
    # events a final QBO fault stopped (first version only).
    deferred_events: list["CrmEvent"] = Field(default_factory=list)
    failed_events: list[str] = Field(default_factory=list)
    # The lifecycle: what the CRM says (newest wins, by the CRM's own times) and what the books hold.
    contact: CrmContact | None = None
    contact_at: AwareDatetime | None = None
    proposal: Proposal | None = None
    proposal_at: AwareDatetime | None = None
    proposal_version: int = 0  # counts changes to the proposal's lines or number
    stage_at: AwareDatetime | None = None
    # When the job became complete, by the CRM's time: the invoice bills the proposal as it stood then.
    completed_at: AwareDatetime | None = None
    lines_as_completed: bool = False  # the proposal's lines are the ones the job-complete event carried
    # What the CRM reported, oldest first, for runs that work stage and lines out from all of it (fold-from-reports).
    stage_reports: list[StageReport] = Field(default_factory=list)
    line_reports: list[LineReport] = Field(default_factory=list)
    estimate_version: int | None = None  # the proposal_version the estimate was written with
    estimate_status: str | None = None  # the TxnStatus we set: Rejected when lost, Pending when reopened
    invoice_id: str | None = None
    payments: list[PaymentState] = Field(default_factory=list)
    stuck: list[StuckStep] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)  # what an operator should know: ignored or late changes

    def payment(self, payment_id: str) -> PaymentState | None:
        return next((p for p in self.payments if p.payment.id == payment_id), None)

    @property
    def contact_id(self) -> str | None:
        return self.contact.id if self.contact else None

    @property
    def unapplied_total(self) -> Money:
        return cents(sum((p.unapplied for p in self.payments), start=cents(0)))


class EnsureCustomerInput(_Strict):
    account_id: str
    realm_id: str
    contact: CrmContact


class EnsureEstimateInput(_Strict):
    account_id: str
    realm_id: str
    customer_id: str
    proposal: Proposal


class InvoiceFromEstimateInput(_Strict):
    account_id: str
    realm_id: str
    customer_id: str
    estimate_id: str
    proposal: Proposal


class RecordPaymentInput(_Strict):
    account_id: str
    realm_id: str
    customer_id: str
    payment: CrmPayment


class ApplyPaymentInput(_Strict):
    account_id: str
    realm_id: str
    payment_id: str
    invoice_id: str


class UpdateEstimateInput(_Strict):
    account_id: str
    realm_id: str
    estimate_id: str
    proposal: Proposal


class EstimateStatusInput(_Strict):
    realm_id: str
    estimate_id: str
    status: str  # QBO TxnStatus: Pending, Accepted, Rejected


class VoidPaymentInput(_Strict):
    realm_id: str
    payment_id: str


class ProposalRef(_Strict):
    """Which proposal, for activities that read or write its ledger record."""

    account_id: str
    proposal_id: str
    realm_id: str


class SaveProposalInput(_Strict):
    ref: ProposalRef
    state: "ProposalState"


def for_step(mapping: dict[str, str], step: str) -> str | None:
    """What an account maps a sales-cycle step to (a stage, a plan), the step's name matched as CRM staff type
    it: case and surrounding spaces aside."""
    wanted = step.strip().casefold()
    return next((value for name, value in mapping.items() if name.strip().casefold() == wanted), None)


def stage_for_step(sales_cycle: dict[str, str], step: str) -> Stage | None:
    """The lifecycle stage an account's sales-cycle step maps to; None when the step means nothing to us."""
    stage = for_step(sales_cycle, step)
    return Stage(stage) if stage is not None else None


def proposal_workflow_id(account_id: str, proposal_id: str) -> str:
    return f"proposal:{account_id}:{proposal_id}"


ProposalInput.model_rebuild()
SaveProposalInput.model_rebuild()
