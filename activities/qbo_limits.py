"""QBO's per-company limits held across all workers: at most 10 calls in flight, 10 a second and 500 a
minute per realm. Coordination goes through the database, so any number of worker processes share it.

A call that finds no room waits in place only when room comes within `wait_in_place` (a quarter second);
otherwise the activity fails with a retryable error carrying the delay, so its worker slot serves other
companies meanwhile and a burst for one franchisee never starves the rest.
"""

import time
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
    # QBO stamps a call when it arrives, a little after we do: our windows are this much longer, so a call at
    # the edge of our window is still inside QBO's and we never go over its count.
    margin: timedelta = timedelta(milliseconds=250)
    wait_in_place: timedelta = timedelta(milliseconds=250)


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
        deadline = time.monotonic() + self.limits.wait_in_place.total_seconds()
        while True:
            try:
                holder = self._acquire(realm_id)
                break
            except RealmBusy as busy:
                wait = busy.next_retry_delay.total_seconds() if busy.next_retry_delay else 0.0
                if time.monotonic() + wait > deadline:
                    raise
                time.sleep(max(wait, 0.01))
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
            minute, second = timedelta(minutes=1) + self.limits.margin, timedelta(seconds=1) + self.limits.margin
            session.execute(delete(QboRealmCall).where(QboRealmCall.realm_id == realm_id,
                                                       QboRealmCall.started_at < now - minute))
            recent = session.execute(select(QboRealmCall.started_at).where(QboRealmCall.realm_id == realm_id)
                                     ).scalars().all()
            in_last_second = [t for t in recent if t > now - second]
            if len(recent) >= self.limits.per_minute:
                session.rollback()
                raise RealmBusy(realm_id, "per-minute", min(recent) + minute - now)
            if len(in_last_second) >= self.limits.per_second:
                session.rollback()
                raise RealmBusy(realm_id, "per-second", min(in_last_second) + second - now)
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
