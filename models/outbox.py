"""The outbox: one row per idempotency key of every message or partner call Ledgerflow sends, so a retried
activity never sends twice. A row is written as `sending` (committed) before the provider is called and
`sent` after it answered; `unknown` says an attempt ended without knowing whether the provider took it (its
answer was lost). activities/outbox.py reads these states; this module only moves them."""

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, String, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col

from models.db import session_scope


def utc_now() -> datetime:
    return datetime.now(UTC)


def _utc_column(nullable: bool) -> Column[datetime]:
    return Column(DateTime(timezone=True), nullable=nullable)


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"

    idempotency_key: str = Field(sa_column=Column(String(255), primary_key=True))
    kind: str
    account_id: str = Field(index=True)
    recipient: str  # the address, number, URL or sheet: for operators reading the table
    status: str = "sending"  # sending, unknown or sent
    provider_id: str | None = None
    attempts: int = 1  # how many times the provider may have been asked: above 1 only after a lost answer
    claimed_at: datetime = Field(sa_column=_utc_column(nullable=False))  # the first attempt's start
    attempted_at: datetime = Field(sa_column=_utc_column(nullable=False))  # the latest attempt's start
    sent_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


def load_outbox(engine: Engine, idempotency_key: str) -> OutboxMessage | None:
    with Session(engine, expire_on_commit=False) as session:
        return session.get(OutboxMessage, idempotency_key)


def claim(engine: Engine, idempotency_key: str, kind: str, account_id: str, recipient: str) -> OutboxMessage | None:
    """Write the `sending` row; None when another attempt wrote one first (the caller loads and reads it)."""
    now = utc_now()
    row = OutboxMessage(idempotency_key=idempotency_key, kind=kind, account_id=account_id, recipient=recipient,
                        claimed_at=now, attempted_at=now)
    try:
        with session_scope(engine) as session:
            session.add(row)
    except IntegrityError:
        return None
    return row


def _update(engine: Engine, idempotency_key: str, **changes: object) -> OutboxMessage:
    with session_scope(engine) as session:
        row = session.get(OutboxMessage, idempotency_key, with_for_update=True)
        if row is None:
            raise LookupError(f"no outbox row for {idempotency_key!r}")
        for name, value in changes.items():
            setattr(row, name, value)
        session.add(row)
    return row


def retry_claim(engine: Engine, row: OutboxMessage) -> OutboxMessage | None:
    """Another attempt on a row whose earlier outcome is unknown: `sending` again, one more attempt. None when
    another attempt claimed it since `row` was read (compare-and-set on the attempt count)."""
    with session_scope(engine) as session:
        claimed = session.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.idempotency_key) == row.idempotency_key,
                   col(OutboxMessage.attempts) == row.attempts, col(OutboxMessage.status) != "sent")
            .values(status="sending", attempts=row.attempts + 1, attempted_at=utc_now()))
    return load_outbox(engine, row.idempotency_key) if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


def mark_sent(engine: Engine, idempotency_key: str, provider_id: str | None) -> OutboxMessage:
    return _update(engine, idempotency_key, status="sent", provider_id=provider_id, sent_at=utc_now())


def mark_unknown(engine: Engine, idempotency_key: str) -> OutboxMessage:
    return _update(engine, idempotency_key, status="unknown")


def release(engine: Engine, idempotency_key: str) -> None:
    """The provider surely did not take it: forget the claim, so the next attempt starts clean."""
    with session_scope(engine) as session:
        row = session.get(OutboxMessage, idempotency_key)
        if row is not None:
            session.delete(row)
