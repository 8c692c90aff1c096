"""Stand-ins for activities, registered under the real activity names, to test workflow logic alone.

`StubBooks` keeps a small model of one QBO company and the ledger, with QBO's rules that matter to the
proposal lifecycle (an invoice closes its estimate, applying lowers the invoice balance and the payment's
unapplied amount, voiding zeroes a payment and reopens what it paid), so tests can assert on the books."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.gateway import ChargeRequest, GatewayCharge
from models.money import cents
from models.proposals import (
    ApplyPaymentInput,
    EnsureCustomerInput,
    EnsureEstimateInput,
    EstimateStatusInput,
    InvoiceFromEstimateInput,
    Proposal,
    ProposalRef,
    ProposalState,
    RecordPaymentInput,
    SaveProposalInput,
    UpdateEstimateInput,
    VoidPaymentInput,
)
from models.reconcile import CrmChangesPage, CursorInput, FeedInput, ReadChangesInput
from models.royalty import EnsureVendorInput, RoyaltyCheckInput

BAD_ITEM = "Bad Item"  # an item QBO refuses with a final fault until `bad_items` is cleared


@dataclass
class Document:
    id: str
    number: str
    customer_id: str
    total: Decimal
    status: str = "Pending"
    linked_estimate: str | None = None


@dataclass
class StubPayment:
    id: str
    customer_id: str
    total: Decimal
    applied: dict[str, Decimal] = field(default_factory=dict)
    voided: bool = False

    @property
    def unapplied(self) -> Decimal:
        return self.total - sum(self.applied.values(), start=Decimal(0))


def _invalid(message: str) -> ApplicationError:
    return ApplicationError(message, type="QboValidationError", non_retryable=True)


class StubBooks:
    """Counts every write; refuses proposals numbered 'BAD' and lines with a bad item."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.customers: dict[str, str] = {}
        self.estimates: dict[str, Document] = {}  # by proposal id
        self.invoices: dict[str, Document] = {}  # by proposal id
        self.payments: dict[str, StubPayment] = {}  # by CRM payment id
        self.records: dict[tuple[str, str], str] = {}  # the ledger's proposal records (state JSON)
        self.bad_items = {BAD_ITEM}
        self._ids = 0

    def _next(self, kind: str) -> str:
        self._ids += 1
        return f"{kind}-{self._ids}"

    def _check(self, proposal: Proposal) -> None:
        if proposal.number == "BAD":
            raise _invalid("QBO 2500: Invalid Reference Id")
        if any(line.product in self.bad_items for line in proposal.lines):
            raise _invalid("QBO 6000: the item is a category and cannot be sold")

    def _invoice_by_id(self, invoice_id: str) -> Document:
        return next(d for d in self.invoices.values() if d.id == invoice_id)

    def balance(self, proposal_id: str) -> Decimal:
        invoice = self.invoices[proposal_id]
        paid = sum((p.applied.get(invoice.id, Decimal(0)) for p in self.payments.values()), start=Decimal(0))
        return invoice.total - paid

    @activity.defn(name="ensure_customer")
    async def ensure_customer(self, input: EnsureCustomerInput) -> str:
        if input.contact.id not in self.customers:
            self.calls["customer"] += 1
            self.customers[input.contact.id] = f"cust-{input.contact.id}"
        return self.customers[input.contact.id]

    @activity.defn(name="ensure_estimate")
    async def ensure_estimate(self, input: EnsureEstimateInput) -> str:
        if input.proposal.id not in self.estimates:
            self._check(input.proposal)
            self.calls["estimate"] += 1
            self.estimates[input.proposal.id] = Document(
                id=f"est-{input.proposal.number}", number=input.proposal.number, customer_id=input.customer_id,
                total=input.proposal.total)
        return self.estimates[input.proposal.id].id

    @activity.defn(name="update_estimate")
    async def update_estimate(self, input: UpdateEstimateInput) -> str:
        estimate = next(e for e in self.estimates.values() if e.id == input.estimate_id)
        if estimate.status == "Closed":
            return "closed"
        if (estimate.number, estimate.total) == (input.proposal.number, input.proposal.total):
            return "unchanged"
        self._check(input.proposal)
        self.calls["estimate update"] += 1
        estimate.number, estimate.total = input.proposal.number, input.proposal.total
        return "updated"

    @activity.defn(name="set_estimate_status")
    async def set_estimate_status(self, input: EstimateStatusInput) -> str:
        estimate = next(e for e in self.estimates.values() if e.id == input.estimate_id)
        if estimate.status not in (input.status, "Closed"):
            self.calls["estimate status"] += 1
            estimate.status = input.status
        return estimate.status

    @activity.defn(name="create_invoice_from_estimate")
    async def create_invoice_from_estimate(self, input: InvoiceFromEstimateInput) -> str:
        if input.proposal.id not in self.invoices:
            self.calls["invoice"] += 1
            self.invoices[input.proposal.id] = Document(
                id=self._next("inv"), number=input.proposal.number, customer_id=input.customer_id,
                total=input.proposal.total, linked_estimate=input.estimate_id)
            next(e for e in self.estimates.values() if e.id == input.estimate_id).status = "Closed"
        return self.invoices[input.proposal.id].id

    @activity.defn(name="record_unapplied_payment")
    async def record_unapplied_payment(self, input: RecordPaymentInput) -> str:
        if input.payment.id not in self.payments:
            self.calls["payment"] += 1
            self.payments[input.payment.id] = StubPayment(self._next("pay"), input.customer_id, input.payment.total)
        return self.payments[input.payment.id].id

    @activity.defn(name="apply_payment")
    async def apply_payment(self, input: ApplyPaymentInput) -> Decimal:
        payment = next(p for p in self.payments.values() if p.id == input.payment_id)
        if input.invoice_id in payment.applied:
            return payment.applied[input.invoice_id]
        invoice = self._invoice_by_id(input.invoice_id)
        proposal_id = next(k for k, v in self.invoices.items() if v is invoice)
        amount = cents(min(payment.unapplied, self.balance(proposal_id)))
        if amount > 0:
            self.calls["apply"] += 1
            payment.applied[input.invoice_id] = amount
        return amount

    @activity.defn(name="void_payment")
    async def void_payment(self, input: VoidPaymentInput) -> None:
        payment = next(p for p in self.payments.values() if p.id == input.payment_id)
        if not payment.voided:
            self.calls["void"] += 1
            payment.voided, payment.total, payment.applied = True, Decimal("0.00"), {}

    @activity.defn(name="save_proposal_record")
    async def save_proposal_record(self, input: SaveProposalInput) -> None:
        self.records[(input.ref.account_id, input.ref.proposal_id)] = input.state.model_dump_json()

    @activity.defn(name="load_proposal_record")
    async def load_proposal_record(self, ref: ProposalRef) -> ProposalState | None:
        saved = self.records.get((ref.account_id, ref.proposal_id))
        return None if saved is None else ProposalState.model_validate_json(saved)

    def activities(self) -> list[Any]:
        return [self.ensure_customer, self.ensure_estimate, self.update_estimate, self.set_estimate_status,
                self.create_invoice_from_estimate, self.record_unapplied_payment, self.apply_payment,
                self.void_payment, self.save_proposal_record, self.load_proposal_record]


class StubCrmSync:
    """Reconciliation's activities: the CRM pages given, the proposals fed and the cursor, in memory."""

    def __init__(self, pages: list[CrmChangesPage], cursor: datetime | None = None) -> None:
        self.pages = pages
        self.cursor = cursor
        self.reads: list[ReadChangesInput] = []
        self.fed: list[str] = []

    @activity.defn(name="load_sync_cursor")
    async def load_sync_cursor(self, account_id: str) -> datetime | None:
        return self.cursor

    @activity.defn(name="save_sync_cursor")
    async def save_sync_cursor(self, input: CursorInput) -> None:
        self.cursor = max(self.cursor, input.cursor) if self.cursor else input.cursor

    @activity.defn(name="read_crm_changes")
    async def read_crm_changes(self, input: ReadChangesInput) -> CrmChangesPage:
        self.reads.append(input)
        start = 0
        for page in self.pages:
            if start == input.offset:
                return page
            start += page.read
        return CrmChangesPage(proposals=[], read=0, total=start, newest=None)

    @activity.defn(name="feed_proposals")
    async def feed_proposals(self, input: FeedInput) -> int:
        self.fed.extend(p.proposal.id for p in input.proposals)
        return len(input.proposals)

    def activities(self) -> list[Any]:
        return [self.load_sync_cursor, self.save_sync_cursor, self.read_crm_changes, self.feed_proposals]


class StubChecks:
    """QBO's side of royalty: checks written once per run and franchisee (as the real activity's map keeps
    them); an account can be made to refuse them (a final fault) or to be unreachable (a transient one)."""

    def __init__(self) -> None:
        self.checks: dict[tuple[str, str], RoyaltyCheckInput] = {}  # by (account, run id)
        self.ids: dict[tuple[str, str], str] = {}
        self.refusing: set[str] = set()
        self.unreachable: set[str] = set()
        self.vendors: dict[str, str] = {}  # by account

    @activity.defn(name="ensure_vendor")
    def ensure_vendor(self, input: EnsureVendorInput) -> str:
        return self.vendors.setdefault(input.account_id, f"Vendor-{input.name}")

    @activity.defn(name="write_royalty_check")
    def write_royalty_check(self, check: RoyaltyCheckInput) -> str:
        if check.account_id in self.refusing:
            raise _invalid(f"QBO 2500: Invalid Reference Id: account {check.bank_account!r} not found")
        if check.account_id in self.unreachable:
            raise ApplicationError("QBO unreachable: ConnectTimeout", type="QboUnreachable")
        key = (check.account_id, check.run_id)
        self.checks.setdefault(key, check)
        return self.ids.setdefault(key, f"Purchase-{len(self.ids) + 1}")

    def amounts(self, account_id: str) -> list[Decimal]:
        """The totals of the account's checks, oldest run first."""
        return [sum((line.amount for line in check.lines), Decimal(0))
                for (account, _run), check in sorted(self.checks.items()) if account == account_id]

    def activities(self) -> list[Any]:
        return [self.ensure_vendor, self.write_royalty_check]


class StubGateway:
    """The gateway's side of royalty debits: one transaction per idempotency id, as the gateway keeps them; a
    payment method can be made to decline (final), or the whole gateway unreachable (transient)."""

    def __init__(self) -> None:
        self.charges: dict[str, ChargeRequest] = {}  # by idempotency id, in the order made
        self.declining: set[str] = set()  # payment method ids
        self.unreachable = False

    @activity.defn(name="gateway_charge")
    def charge(self, request: ChargeRequest) -> GatewayCharge:
        if self.unreachable:
            raise ApplicationError("gateway unreachable: ConnectTimeout", type="GatewayUnavailable")
        if request.payment_method_id in self.declining:
            raise ApplicationError("charge declined: insufficient funds", type="GatewayDeclined", non_retryable=True)
        first = self.charges.setdefault(request.idempotency_id, request)
        return GatewayCharge(transaction_id=f"txn-{list(self.charges).index(request.idempotency_id) + 1}",
                             success=True, method="bank", total=first.total)

    def debited(self, payment_method_id: str) -> list[Decimal]:
        return [c.total for c in self.charges.values() if c.payment_method_id == payment_method_id]

    def activities(self) -> list[Any]:
        return [self.charge]
