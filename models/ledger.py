"""The ledger: which QBO object was created for which CRM object, so no write ever happens twice; and what
Ledgerflow knows of each proposal and each payment received, for reports, royalty and rebuilding a
proposal's state when its workflow starts again."""

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.money import DecimalColumn


def _now() -> datetime:
    return datetime.now(UTC)


class QboObjectMap(SQLModel, table=True):
    __tablename__ = "qbo_object_map"
    # Keyed by realm too: a franchisee reconnected to another QBO company starts a fresh map there.
    __table_args__ = (UniqueConstraint("account_id", "realm_id", "crm_type", "crm_id", "qbo_entity"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True)
    crm_type: str  # contact, proposal, payment
    crm_id: str
    qbo_entity: str  # Customer, Estimate, Invoice, Payment
    realm_id: str
    qbo_id: str
    created_at: datetime = Field(default_factory=_now)


class ProposalRecord(SQLModel, table=True):
    """A proposal as its workflow last saved it: the columns for reports, `state` (ProposalState JSON) to
    start a new run where the last one ended."""

    __tablename__ = "proposal_record"

    account_id: str = Field(primary_key=True)
    proposal_id: str = Field(primary_key=True)
    realm_id: str
    contact_id: str | None = Field(default=None, index=True)
    number: str | None = None
    stage: str | None = Field(default=None, index=True)
    customer_id: str | None = None
    estimate_id: str | None = None
    invoice_id: str | None = None
    unapplied_total: Decimal = Field(sa_column=Column(DecimalColumn(18, 2), nullable=False))
    stuck: str | None = Field(default=None, sa_column=Column(Text))  # the faults holding it, if any
    state: str = Field(sa_column=Column(Text, nullable=False))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))


class LedgerPayment(SQLModel, table=True):
    """A payment received on a proposal: what royalty is charged on. Written as soon as the proposal's
    workflow hears of it, whatever QBO's state; a void or refund marks it, it is never deleted."""

    __tablename__ = "ledger_payment"
    __table_args__ = (UniqueConstraint("account_id", "crm_payment_id"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True)
    crm_payment_id: str
    proposal_id: str = Field(index=True)
    contact_id: str | None = None
    amount: Decimal = Field(sa_column=Column(DecimalColumn(18, 2), nullable=False))
    tip: Decimal = Field(sa_column=Column(DecimalColumn(18, 2), nullable=False))
    convenience_fee: Decimal = Field(sa_column=Column(DecimalColumn(18, 2), nullable=False))
    received_on: date = Field(index=True)
    method: str
    qbo_payment_id: str | None = None
    applied_to_invoice: Decimal | None = Field(default=None, sa_column=Column(DecimalColumn(18, 2)))
    voided: str | None = None  # void or refund
    voided_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    recorded_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))


class LedgerInvoice(SQLModel, table=True):
    """The invoice a proposal became, as it was issued: what the customer owes and when, for balances,
    scheduled payments and autopay. Written when the proposal's workflow first saves its invoice; what is still
    owed on it is worked out from the payments (models/receivables.py)."""

    __tablename__ = "ledger_invoice"

    account_id: str = Field(primary_key=True)
    proposal_id: str = Field(primary_key=True)
    realm_id: str
    invoice_id: str = Field(index=True)
    customer_id: str = Field(index=True)
    contact_id: str | None = None
    number: str
    total: Decimal = Field(sa_column=Column(DecimalColumn(18, 2), nullable=False))
    line_items: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    issued_on: date
    due_on: date
    autopay_excluded: bool = False


class CrmSyncCursor(SQLModel, table=True):
    """How far reconciliation has read an account's CRM changes, by the CRM's clock."""

    __tablename__ = "crm_sync_cursor"

    account_id: str = Field(primary_key=True)
    cursor: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))
