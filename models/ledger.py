"""The ledger map: which QBO object was created for which CRM object, so no write ever happens twice."""

from datetime import UTC, datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel


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
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
