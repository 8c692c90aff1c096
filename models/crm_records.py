"""The CRM records Ledgerflow made or matched, by the keys it knows them by: a contact by its source lead id,
its email and its phone ("lead:angi:123", "email:dana@example.com", "phone:5125550142"), a history note by what
it is about ("note:{contact}:lead-source:angi"). Before making a record, its maker claims every key in one
transaction; whoever finds a key claimed by someone else waits for it to be settled with the record's id. So two
workflows about one person (the same lead twice at once, or two sources) make one contact, and a retried
activity finds what an earlier attempt made."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Engine, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import JSON
from sqlmodel import Field, Session, SQLModel, col, select

from models.db import as_utc, session_scope

# A claim unsettled this long is taken to be abandoned (its maker's workflow ended mid-way): another may take it.
ABANDONED_AFTER = timedelta(minutes=5)


class CrmRecord(SQLModel, table=True):
    __tablename__ = "crm_record"

    account_id: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    record_id: str | None = None  # None while its maker is making it
    claimed_by: str
    claimed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version: int = 0  # bumped by every replace_data


def known(engine: Engine, account_id: str, keys: list[str]) -> dict[str, CrmRecord]:
    with Session(engine, expire_on_commit=False) as session:
        rows = session.exec(select(CrmRecord).where(CrmRecord.account_id == account_id, col(CrmRecord.key).in_(keys)))
        return {row.key: row for row in rows}


def _write(engine: Engine, account_id: str, keys: list[str], what: str,
           change: Callable[[Session, dict[str, CrmRecord]], None]) -> None:
    """`change` in one transaction, given the keys' rows as they stand; read again and redone when someone else
    wrote one of the keys in between."""
    for _ in range(5):
        rows = known(engine, account_id, keys)
        try:
            with session_scope(engine) as session:
                change(session, rows)
        except IntegrityError:
            continue
        return
    raise RuntimeError(f"could not {what} {keys}")


def claim(engine: Engine, account_id: str, keys: list[str], claimant: str) -> dict[str, CrmRecord]:
    """Claim every key not yet known. The rows of the keys as they stand after: a settled one (its record_id
    set) names the record; an unsettled one claimed by someone else means wait."""
    def take(session: Session, rows: dict[str, CrmRecord]) -> None:
        now = datetime.now(UTC)
        for key in keys:
            row = rows.get(key)
            if row is None:
                session.add(CrmRecord(account_id=account_id, key=key, claimed_by=claimant, claimed_at=now))
            elif (row.record_id is None and row.claimed_by != claimant
                  and as_utc(row.claimed_at) < now - ABANDONED_AFTER):
                row.claimed_by, row.claimed_at = claimant, now
                session.add(row)

    _write(engine, account_id, keys, f"claim for {claimant}", take)
    return known(engine, account_id, keys)


def settle(engine: Engine, account_id: str, keys: list[str], record_id: str, claimant: str,
           data: dict[str, Any] | None = None) -> None:
    """Record the record's id under each key (adding keys not seen before, leaving other records' keys alone)."""
    def record(session: Session, rows: dict[str, CrmRecord]) -> None:
        for key in keys:
            row = rows.get(key)
            if row is None:
                session.add(CrmRecord(account_id=account_id, key=key, record_id=record_id, claimed_by=claimant,
                                      data=data or {}))
            elif row.record_id is None or row.record_id == record_id:
                row.record_id = record_id
                row.data = data if data is not None else row.data
                session.add(row)

    _write(engine, account_id, keys, f"settle for {claimant}", record)


def replace_data(engine: Engine, account_id: str, key: str, version: int, data: dict[str, Any]) -> bool:
    """Compare and set: replace a settled record's data only if nobody has since `version` (False: they have)."""
    with session_scope(engine) as session:
        changed = session.execute(
            update(CrmRecord).where(col(CrmRecord.account_id) == account_id, col(CrmRecord.key) == key,
                                    col(CrmRecord.version) == version)
            .values(data=data, version=version + 1))
        return bool(changed.rowcount)  # type: ignore[attr-defined]
