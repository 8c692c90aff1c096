"""The QBO calls each company has in flight or finished lately, shared by every worker through the database."""

from datetime import datetime

from sqlmodel import Field, SQLModel


class QboRealmLock(SQLModel, table=True):
    """One row per company: writing it serialises the company's admissions across all workers."""

    __tablename__ = "qbo_realm_lock"

    realm_id: str = Field(primary_key=True)


class QboRealmCall(SQLModel, table=True):
    """A call to a company: in flight while `finished_at` is empty (until its lease runs out, for a worker
    that died mid-call), then counted in the rate windows by when it finished."""

    __tablename__ = "qbo_realm_call"

    id: int | None = Field(default=None, primary_key=True)
    realm_id: str = Field(index=True)
    holder: str = Field(index=True)
    started_at: datetime
    finished_at: datetime | None = Field(default=None, index=True)
