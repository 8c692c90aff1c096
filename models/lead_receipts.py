"""The API monitor: every lead (and captured email) that reached the front door, with its source, what became
of it (created, duplicate, rejected and why; noted or unmatched for email) and the workflow that handled it.
The front door writes the receipt before anything starts, so nothing received goes unrecorded; the workflow
settles it."""

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Column, Engine, Text
from sqlmodel import Field, Session, SQLModel, col, select

from models.db import session_scope


class Outcome(StrEnum):
    RECEIVED = "received"  # accepted; its workflow has not settled it yet
    CREATED = "created"  # a new CRM contact
    DUPLICATE = "duplicate"  # an existing contact (same lead, or the same person): its note updated
    REJECTED = "rejected"  # refused at the front door (the reason says why); nothing was started
    NOTED = "noted"  # a captured email, stored as a history note on its contacts
    UNMATCHED = "unmatched"  # a captured email no contact of the account matches: kept here
    FAILED = "failed"  # accepted, but the CRM refused the contact or the note (the reason says why)


class LeadReceipt(SQLModel, table=True):
    __tablename__ = "lead_receipt"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True)
    channel: str  # models.leads.LeadChannel, or "email-capture"
    lead_id: str | None = None  # the source's lead id (a captured email's Message-ID)
    who: str = ""  # name, email, phone as received: enough to recognise the lead in the list
    received_at: datetime = Field(default_factory=lambda: datetime.now(UTC), index=True)
    outcome: str = Outcome.RECEIVED.value
    reason: str | None = Field(default=None, sa_column=Column(Text))
    contact_id: str | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    settled_at: datetime | None = None


def record_receipt(engine: Engine, account_id: str, channel: str, lead_id: str | None, who: str,
                   outcome: Outcome = Outcome.RECEIVED, reason: str | None = None,
                   workflow_id: str | None = None) -> LeadReceipt:
    with session_scope(engine) as session:
        receipt = LeadReceipt(account_id=account_id, channel=channel, lead_id=lead_id, who=who[:300],
                              outcome=outcome.value, reason=reason, workflow_id=workflow_id,
                              settled_at=None if outcome is Outcome.RECEIVED else datetime.now(UTC))
        session.add(receipt)
        session.flush()
        return receipt


def note_run(engine: Engine, receipt_id: int, workflow_id: str | None, run_id: str | None) -> None:
    """The run the front door handed the lead to (a duplicate arriving at once joins the running one)."""
    with session_scope(engine) as session:
        receipt = session.get(LeadReceipt, receipt_id)
        if receipt is not None:
            receipt.workflow_id, receipt.run_id = workflow_id, run_id
            session.add(receipt)


def settle_receipt(engine: Engine, receipt_id: int, outcome: Outcome, contact_id: str | None = None,
                   reason: str | None = None) -> None:
    """What became of the lead. Settling again (a retried activity) writes the same."""
    with session_scope(engine) as session:
        receipt = session.get(LeadReceipt, receipt_id)
        if receipt is None:
            raise LookupError(f"no lead receipt {receipt_id}")
        receipt.outcome, receipt.contact_id, receipt.reason = outcome.value, contact_id, reason
        receipt.settled_at = receipt.settled_at or datetime.now(UTC)
        session.add(receipt)


def receipts(engine: Engine, account_id: str, limit: int = 100, outcome: str | None = None,
             channel: str | None = None) -> list[LeadReceipt]:
    """The account's receipts, newest first."""
    query = select(LeadReceipt).where(LeadReceipt.account_id == account_id)
    if outcome is not None:
        query = query.where(LeadReceipt.outcome == outcome)
    if channel is not None:
        query = query.where(LeadReceipt.channel == channel)
    with Session(engine) as session:
        return list(session.exec(query.order_by(col(LeadReceipt.id).desc()).limit(limit)))
