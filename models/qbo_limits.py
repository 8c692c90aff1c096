"""Per-company QBO call slots and call times, shared by every worker through the database."""

from datetime import datetime

from sqlmodel import Field, SQLModel


class QboRealmSlot(SQLModel, table=True):
    """One of a company's in-flight slots; a slot whose lease ran out (a crashed worker) is free again."""

    __tablename__ = "qbo_realm_slot"

    realm_id: str = Field(primary_key=True)
    slot: int = Field(primary_key=True)
    holder: str | None = None
    lease_until: datetime | None = None


class QboRealmCall(SQLModel, table=True):
    """When each call to a company started: the per-second and per-minute windows count these."""

    __tablename__ = "qbo_realm_call"

    id: int | None = Field(default=None, primary_key=True)
    realm_id: str = Field(index=True)
    started_at: datetime = Field(index=True)
