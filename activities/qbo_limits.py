"""QBO's per-company limits held across all workers: at most 10 calls in flight, 10 a second and 500 a
minute per realm. Coordination goes through the database, so any number of worker processes share it.

A call that finds no room does not wait in the worker: the activity fails with a retryable error carrying
the delay, so its slot serves other companies meanwhile and a burst for one franchisee never starves the rest.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from models.qbo_limits import QboRealmCall, QboRealmSlot


@dataclass(frozen=True)
class RealmLimits:
    in_flight: int = 10
    per_second: int = 10
    per_minute: int = 500
    lease: timedelta = timedelta(minutes=3)  # longer than any one call may take


class RealmBusy(ApplicationError):
    """No room under the company's limits now: retry after `next_retry_delay`."""

    def __init__(self, realm_id: str, reason: str, wait: timedelta) -> None:
        super().__init__(f"QBO company {realm_id} is at its {reason} limit; retrying in {wait.total_seconds():.1f}s",
                         type="QboRealmBusy", next_retry_delay=wait)


class RealmLimiter:
    def __init__(self, engine: Engine, limits: RealmLimits | None = None) -> None:
        self.engine = engine
        self.limits = limits or RealmLimits()

    def _ensure_slots(self, session: Session, realm_id: str) -> None:
        rows = [{"realm_id": realm_id, "slot": n} for n in range(self.limits.in_flight)]
        insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
        session.execute(insert(QboRealmSlot).values(rows).on_conflict_do_nothing())

    @contextmanager
    def slot(self, realm_id: str) -> Iterator[None]:
        holder = self._acquire(realm_id)
        try:
            yield
        finally:
            with Session(self.engine) as session:
                session.execute(update(QboRealmSlot).where(QboRealmSlot.realm_id == realm_id,
                                                           QboRealmSlot.holder == holder)
                                .values(holder=None, lease_until=None))
                session.commit()

    def _acquire(self, realm_id: str) -> str:
        now = datetime.now(UTC)
        holder = str(uuid.uuid4())
        with Session(self.engine) as session:
            self._ensure_slots(session, realm_id)
            # A no-op write on the company's slot rows locks them (PostgreSQL row locks, SQLite's write lock):
            # every acquire for this company is serialised from here to the commit.
            session.execute(update(QboRealmSlot).where(QboRealmSlot.realm_id == realm_id)
                            .values(slot=QboRealmSlot.slot))
            slots = session.execute(select(QboRealmSlot).where(QboRealmSlot.realm_id == realm_id)
                                    .order_by(QboRealmSlot.slot)).scalars().all()
            session.execute(delete(QboRealmCall).where(QboRealmCall.realm_id == realm_id,
                                                       QboRealmCall.started_at < now - timedelta(minutes=1)))
            recent = session.execute(select(QboRealmCall.started_at).where(QboRealmCall.realm_id == realm_id)
                                     ).scalars().all()
            in_last_second = [t for t in recent if t > now - timedelta(seconds=1)]
            if len(recent) >= self.limits.per_minute:
                session.rollback()
                raise RealmBusy(realm_id, "per-minute", min(recent) + timedelta(minutes=1) - now)
            if len(in_last_second) >= self.limits.per_second:
                session.rollback()
                raise RealmBusy(realm_id, "per-second", min(in_last_second) + timedelta(seconds=1) - now)
            free = next((s for s in slots if s.holder is None or (s.lease_until and s.lease_until < now)), None)
            if free is None:
                session.rollback()
                raise RealmBusy(realm_id, "in-flight", timedelta(milliseconds=500))
            session.execute(update(QboRealmSlot).where(QboRealmSlot.realm_id == realm_id,
                                                       QboRealmSlot.slot == free.slot)
                            .values(holder=holder, lease_until=now + self.limits.lease))
            session.add(QboRealmCall(realm_id=realm_id, started_at=now))
            session.commit()
        return holder

    def in_flight(self, realm_id: str) -> int:
        now = datetime.now(UTC)
        with Session(self.engine) as session:
            return int(session.execute(select(func.count()).select_from(QboRealmSlot).where(
                QboRealmSlot.realm_id == realm_id, QboRealmSlot.holder.is_not(None),  # type: ignore[union-attr]
                QboRealmSlot.lease_until > now)).scalar_one())  # type: ignore[operator]
