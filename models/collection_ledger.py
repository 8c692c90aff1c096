"""The ledger's side of collections: one row per collection from its reservation to its end, and the turn row
that makes reservations on one proposal take turns."""

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import Column, DateTime
from sqlmodel import Field, SQLModel

from models.money import DecimalColumn


def _now() -> datetime:
    return datetime.now(UTC)


def _money() -> Column:  # type: ignore[type-arg]
    return Column(DecimalColumn(18, 2), nullable=False)


class CollectedPayment(SQLModel, table=True):
    """One collection, from its reservation to its end; the key is the caller's idempotency key."""

    __tablename__ = "collected_payment"

    account_id: str = Field(primary_key=True)
    collection_key: str = Field(primary_key=True)
    proposal_id: str = Field(index=True)
    source: str
    method: str
    payment_method_id: str
    amount: Decimal = Field(sa_column=_money())
    tip: Decimal = Field(sa_column=_money())
    convenience_fee: Decimal = Field(sa_column=_money())
    surcharge: Decimal = Field(sa_column=_money())
    received_on: date
    status: str = Field(index=True)
    transaction_id: str | None = Field(default=None, index=True)
    crm_payment_id: str | None = None
    message: str | None = None
    created_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(default_factory=_now, sa_column=Column(DateTime(timezone=True), nullable=False))


class CollectionTurn(SQLModel, table=True):
    """One row per proposal that payments are collected for, bumped first by every reservation, so two
    reservations on one proposal take turns (a row lock on PostgreSQL, the write lock on SQLite)."""

    __tablename__ = "collection_turn"

    account_id: str = Field(primary_key=True)
    proposal_id: str = Field(primary_key=True)
    version: int = 0
