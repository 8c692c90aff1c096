"""The audit log: every body sent to QuickBooks, with the request id and what came back.

Its rows are also how the QBO activities know a write went out before (activities/quickbooks.py): a proposal's
estimate, invoice and payments are looked for in QBO only then. So rows are never pruned; an audit log cut
short would leave those writes to QBO's requestid alone, which QBO keeps for a time it does not document."""

from datetime import UTC, datetime

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel


class QboAuditLog(SQLModel, table=True):
    __tablename__ = "qbo_audit_log"

    id: int | None = Field(default=None, primary_key=True)
    realm_id: str = Field(index=True)
    entity: str
    operation: str  # create, update, delete, void
    request_id: str = Field(index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    workflow_id: str | None = Field(default=None, index=True)
    activity_attempt: int | None = None
    status: str = "sent"  # sent -> ok | error
    qbo_id: str | None = None
    response: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    sent_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
