"""The royalty ledger: every run, every franchisee's charge in it, and every payment each charge covered.

A payment is charged exactly once, ever, because `RoyaltyItem` allows one `charge` row per payment (and one
`credit` row, when a charged payment is refunded); the rows are written in the same transaction that
works out the charge, so a re-run, an overlapping run or a retried activity finds them there and takes
nothing twice. The credit a franchisee is owed when refunds outweigh new payments waits in
`RoyaltyBalance` for the next run: a check is never negative."""

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlalchemy.types import JSON
from sqlmodel import Field, SQLModel

from models.money import DecimalColumn


def _now() -> datetime:
    return datetime.now(UTC)


def _money() -> Column[Decimal]:
    return Column(DecimalColumn(18, 2), nullable=False)


def _rate() -> Column[Decimal]:
    return Column(DecimalColumn(9, 6), nullable=False)


class RoyaltyRun(SQLModel, table=True):
    """One run of a franchisor's royalty for one business date; `outcomes` lists every franchisee's result."""

    __tablename__ = "royalty_run"

    run_id: str = Field(primary_key=True)  # royalty:{franchisor}:{business date}
    franchisor_id: str = Field(index=True)
    business_date: date = Field(index=True)
    eligible_through: date
    franchisees: int
    charged: int  # franchisees with a check written in this run
    failed: int
    royalty_total: Decimal = Field(sa_column=_money())
    marketing_total: Decimal = Field(sa_column=_money())
    outcomes: list[dict[str, object]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    workflow_run_id: str | None = None  # the Temporal run that last finished this date
    finished_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))


class RoyaltyCharge(SQLModel, table=True):
    """What one franchisee owes for one run: fees on the payments it covered, less refunds credited and any
    credit carried in; written before the check, completed by the check (by a later run if QBO refused it)."""

    __tablename__ = "royalty_charge"
    __table_args__ = (UniqueConstraint("run_id", "account_id"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    franchisor_id: str = Field(index=True)
    account_id: str = Field(index=True)
    realm_id: str
    business_date: date = Field(index=True)
    eligible_through: date
    royalty_rate: Decimal = Field(sa_column=_rate())
    marketing_rate: Decimal = Field(sa_column=_rate())
    payments: int  # payments charged
    credits: int  # refunded payments credited
    basis: Decimal = Field(sa_column=_money())  # what the payments charged bear royalty on
    credited_basis: Decimal = Field(sa_column=_money())  # the same, for the refunds credited
    royalty: Decimal = Field(sa_column=_money())  # fee on the basis less refunds, rounded once
    marketing: Decimal = Field(sa_column=_money())
    royalty_credit_in: Decimal = Field(sa_column=_money())  # carried from earlier runs
    marketing_credit_in: Decimal = Field(sa_column=_money())
    royalty_due: Decimal = Field(sa_column=_money())  # on the check (never negative)
    marketing_due: Decimal = Field(sa_column=_money())
    royalty_credit_out: Decimal = Field(sa_column=_money())  # carried to the next run
    marketing_credit_out: Decimal = Field(sa_column=_money())
    status: str  # ChargeStatus
    check_id: str | None = None  # the QBO Purchase
    check_number: str | None = None
    check_error: str | None = Field(default=None, sa_column=Column(Text))  # the last fault writing the check
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))
    check_written_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    debit_status: str | None = None  # DebitStatus, when the network collects by ACH debit
    debit_id: str | None = None  # the gateway's transaction
    debit_error: str | None = Field(default=None, sa_column=Column(Text))
    debited_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class RoyaltyItem(SQLModel, table=True):
    """One payment a charge covered (`charge`), or one refund it credited back (`credit`)."""

    __tablename__ = "royalty_item"
    __table_args__ = (UniqueConstraint("account_id", "crm_payment_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    charge_id: int = Field(foreign_key="royalty_charge.id", index=True)
    account_id: str = Field(index=True)
    crm_payment_id: str
    proposal_id: str
    kind: str  # charge or credit
    received_on: date
    amount: Decimal = Field(sa_column=_money())
    tip: Decimal = Field(sa_column=_money())
    convenience_fee: Decimal = Field(sa_column=_money())
    basis: Decimal = Field(sa_column=_money())  # positive for both kinds; a credit takes it off
    royalty_rate: Decimal = Field(sa_column=_rate())  # the rates of the charge that covered the payment
    marketing_rate: Decimal = Field(sa_column=_rate())


class RoyaltyBalance(SQLModel, table=True):
    """Credit a franchisee is owed against future royalty. `version` serialises the charges of one
    franchisee: two runs working it out at once cannot both spend the same credit."""

    __tablename__ = "royalty_balance"

    account_id: str = Field(primary_key=True)
    royalty_credit: Decimal = Field(sa_column=_money())
    marketing_credit: Decimal = Field(sa_column=_money())
    version: int = 0
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))
