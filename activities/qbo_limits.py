"""QBO's per-company limits held across all workers: at most 10 calls in flight, 10 a second and 500 a
minute per realm. Coordination goes through the database, so any number of worker processes share it.

QBO counts a call when it arrives; we count it as in flight until its answer is back and then by the time
it finished. A call QBO counts in a window is therefore either still in flight for us or finished inside the
same window, so our count is never below QBO's, however late a request reaches it.

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

from sqlalchemy import Engine, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session
from temporalio.exceptions import ApplicationError

from models.qbo_limits import QboRealmCall, QboRealmLock


@dataclass(frozen=True)
class RealmLimits:
    in_flight: int = 10
    per_second: int = 10
    per_minute: int = 500
    # Longer than any one call may take: a call still unfinished after it was lost with its worker.
    lease: timedelta = timedelta(minutes=3)
    wait_in_place: timedelta = timedelta(milliseconds=250)


class RealmBusy(ApplicationError):
    """No room under the company's limits now: retry after `next_retry_delay`."""

    def __init__(self, realm_id: str, reason: str, wait: timedelta) -> None:
        super().__init__(f"QBO company {realm_id} is at its {reason} limit; retrying in {wait.total_seconds():.2f}s",
                         type="QboRealmBusy", next_retry_delay=max(wait, timedelta(milliseconds=10)))


class RealmLimiter:
    def __init__(self, engine: Engine, limits: RealmLimits | None = None) -> None:
        self.engine = engine
        self.limits = limits or RealmLimits()

    @contextmanager
    def slot(self, realm_id: str) -> Iterator[None]:
        deadline = time.monotonic() + self.limits.wait_in_place.total_seconds()
        while True:
            try:
                holder = self._admit(realm_id)
                break
            except RealmBusy as busy:
                wait = busy.next_retry_delay.total_seconds() if busy.next_retry_delay else 0.0
                if time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
        try:
            yield
        finally:
            with Session(self.engine) as session:
                session.execute(update(QboRealmCall).where(QboRealmCall.holder == holder)
                                .values(finished_at=datetime.now(UTC)))
                session.commit()

    def _admit(self, realm_id: str) -> str:
        holder = str(uuid.uuid4())
        with Session(self.engine) as session:
            insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
            session.execute(insert(QboRealmLock).values(realm_id=realm_id).on_conflict_do_nothing())
            # A no-op write on the company's lock row (a row lock on PostgreSQL, the write lock on SQLite):
            # every admission for this company is serialised from here to the commit.
            session.execute(update(QboRealmLock).where(QboRealmLock.realm_id == realm_id)
                            .values(realm_id=QboRealmLock.realm_id))
            now = datetime.now(UTC)
            minute, second = timedelta(minutes=1), timedelta(seconds=1)
            session.execute(delete(QboRealmCall).where(QboRealmCall.realm_id == realm_id,
                                                       QboRealmCall.finished_at < now - minute))
            live = QboRealmCall.started_at > now - self.limits.lease
            in_flight = select(func.count()).where(QboRealmCall.realm_id == realm_id,
                                                   QboRealmCall.finished_at.is_(None), live)  # type: ignore[union-attr]
            if session.execute(in_flight).scalar_one() >= self.limits.in_flight:
                session.rollback()
                raise RealmBusy(realm_id, "in-flight", timedelta(milliseconds=100))
            for window, limit, reason in ((second, self.limits.per_second, "per-second"),
                                          (minute, self.limits.per_minute, "per-minute")):
                counted = session.execute(
                    select(QboRealmCall.finished_at).where(
                        QboRealmCall.realm_id == realm_id,
                        or_(QboRealmCall.finished_at > now - window,
                            QboRealmCall.finished_at.is_(None) & live))).scalars().all()  # type: ignore[union-attr]
                if len(counted) >= limit:
                    finished = [t for t in counted if t is not None]
                    wait = min(finished) + window - now if finished else timedelta(milliseconds=100)
                    session.rollback()
                    raise RealmBusy(realm_id, reason, wait)
            session.add(QboRealmCall(realm_id=realm_id, holder=holder, started_at=now))
            session.commit()
        return holder
