"""What customers owe, from the ledger: per proposal, per invoice and per QBO customer.

What is owed on a proposal is its invoice's total (or, before the invoice, the proposal's total) less the
payments the ledger holds for it, less the collections still under way that the ledger has not heard of yet
(reserved or charged, their CRM payment not yet in the ledger). A payment counts whole, tip and fees
included, because that is what the proposal's workflow applies to the invoice in QBO: the balance here is the
invoice's balance there. Every collection, scheduled payment and autopay cycle reads it here, so none of them
can take more than is due."""

from collections import defaultdict
from datetime import date
from decimal import Decimal

from pydantic import BaseModel
from sqlmodel import Session, col, select

from models.autopay import OpenInvoice
from models.collection_ledger import CollectedPayment
from models.collections import RELEASED
from models.ledger import LedgerInvoice, LedgerPayment, ProposalRecord
from models.money import Money, cents
from models.proposals import ProposalState

ZERO = cents(0)


class Owed(BaseModel):
    proposal_id: str
    number: str
    customer_id: str | None
    customer_name: str
    total: Money  # the invoice's, or the proposal's before the invoice
    paid: Money  # payments the ledger holds
    held: Money  # collections under way the ledger has not heard of yet
    invoiced: bool

    @property
    def due(self) -> Money:
        return cents(max(self.total - self.paid - self.held, ZERO))


def beyond_due(owed: Owed, amount: Decimal, fee: Decimal) -> str | None:
    """Why `amount` with its convenience fee cannot be collected on the proposal now (more than is still due),
    or None when it can. The tip alone may go past it: it is the customer's gift, on top."""
    if amount + fee <= owed.due:
        return None
    with_fee = f" with its {fee} fee" if fee else ""
    return (f"{amount}{with_fee} is more than the {owed.due} still due on proposal {owed.number} "
            f"(total {owed.total}, paid {owed.paid}, being collected {owed.held})")


class CustomerBalance(BaseModel):
    account_id: str
    customer_id: str
    total_balance: Money
    total_past_due: Money
    open_invoices: int
    oldest_invoice: str | None  # its number
    oldest_invoice_issued_on: date | None
    unapplied_credit: Money  # payments QBO holds unapplied on the customer's proposals


def _paid_and_held(session: Session, account_id: str, proposal_ids: list[str],
                   excluding_key: str | None = None) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Per proposal: the amounts of the payments the ledger holds, and of the collections under way."""
    paid: dict[str, Decimal] = defaultdict(lambda: ZERO)
    known: set[str] = set()
    for payment in session.exec(select(LedgerPayment).where(
            LedgerPayment.account_id == account_id, col(LedgerPayment.proposal_id).in_(proposal_ids))):
        known.add(payment.crm_payment_id)
        if payment.voided is None:
            paid[payment.proposal_id] += payment.amount + payment.tip + payment.convenience_fee
    held: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for collection in session.exec(select(CollectedPayment).where(
            CollectedPayment.account_id == account_id, col(CollectedPayment.proposal_id).in_(proposal_ids),
            col(CollectedPayment.status).not_in([s.value for s in RELEASED]))):
        if collection.collection_key != excluding_key and collection.crm_payment_id not in known:
            held[collection.proposal_id] += (collection.amount + collection.tip + collection.convenience_fee
                                             + collection.surcharge)
    return paid, held


def proposal_for_invoice(session: Session, account_id: str, invoice_id: str) -> str | None:
    """The proposal a QBO invoice was made from: payments against an invoice are collected for its proposal."""
    invoice = session.exec(select(LedgerInvoice).where(LedgerInvoice.account_id == account_id,
                                                       LedgerInvoice.invoice_id == invoice_id)).first()
    return invoice.proposal_id if invoice else None


def owed_on_proposal(session: Session, account_id: str, proposal_id: str,
                     excluding_key: str | None = None) -> Owed | None:
    """None when the ledger has no such proposal (its workflow has not saved it yet)."""
    record = session.get(ProposalRecord, (account_id, proposal_id))
    if record is None:
        return None
    state = ProposalState.model_validate_json(record.state)
    if state.proposal is None:
        return None
    invoice = session.get(LedgerInvoice, (account_id, proposal_id))
    paid, held = _paid_and_held(session, account_id, [proposal_id], excluding_key)
    contact = state.contact
    return Owed(proposal_id=proposal_id, number=state.proposal.number, customer_id=record.customer_id,
                customer_name=contact.display_name if contact else "", invoiced=invoice is not None,
                total=invoice.total if invoice else state.proposal.total, paid=paid[proposal_id],
                held=held[proposal_id])


def open_invoices(session: Session, account_id: str, customer_id: str | None = None) -> list[OpenInvoice]:
    """The account's invoices with something still due (one customer's, when given), oldest first."""
    query = select(LedgerInvoice).where(LedgerInvoice.account_id == account_id)
    if customer_id is not None:
        query = query.where(LedgerInvoice.customer_id == customer_id)
    invoices = list(session.exec(query))
    paid, held = _paid_and_held(session, account_id, [i.proposal_id for i in invoices])
    found = []
    for invoice in invoices:
        due = cents(max(invoice.total - paid[invoice.proposal_id] - held[invoice.proposal_id], ZERO))
        if due > 0:
            found.append(OpenInvoice(
                proposal_id=invoice.proposal_id, invoice_id=invoice.invoice_id, number=invoice.number,
                customer_id=invoice.customer_id, issued_on=invoice.issued_on, due_on=invoice.due_on,
                amount_due=due, line_items=list(invoice.line_items), excluded=invoice.autopay_excluded))
    return sorted(found, key=lambda i: (i.issued_on, i.invoice_id))


def customer_balance(session: Session, account_id: str, customer_id: str, today: date) -> CustomerBalance:
    invoices = open_invoices(session, account_id, customer_id)
    unapplied = session.exec(select(ProposalRecord.unapplied_total).where(
        ProposalRecord.account_id == account_id, ProposalRecord.customer_id == customer_id)).all()
    oldest = invoices[0] if invoices else None
    return CustomerBalance(
        account_id=account_id, customer_id=customer_id,
        total_balance=cents(sum((i.amount_due for i in invoices), ZERO)),
        total_past_due=cents(sum((i.amount_due for i in invoices if i.due_on < today), ZERO)),
        open_invoices=len(invoices), oldest_invoice=oldest.number if oldest else None,
        oldest_invoice_issued_on=oldest.issued_on if oldest else None,
        unapplied_credit=cents(sum(unapplied, ZERO)))
