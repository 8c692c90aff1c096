"""QBO's per-company limits held across all workers: at most 10 calls in flight, 10 a second and 500 a
minute per realm. Coordination goes through the database, so any number of worker processes share it.

QBO counts a call when it arrives; we count it as in flight until its answer is back and then by the time
it finished. A call QBO counts in a window is therefore either still in flight for us or finished inside the
same window, so our count is never below QBO's, however late a request reaches it.

A call that finds no room waits in place only when room comes within `wait_in_place` (a quarter second);
otherwise the activity fails with a retryable error carrying the delay (spread by `retry_jitter`, so the
activities turned away together do not all come back at the same instant), its worker slot serves other
companies meanwhile and a burst for one franchisee never starves the rest.

That holds for an activity attempt's first call only. Once an attempt has been let through, failing it
would throw away the calls it made (its retry starts over and makes them again): its later calls wait in
place for room, up to `hold_in_place` and never into the last quarter of the attempt's time limit. Without
that, a few activities of several calls each (apply a payment: read it, read the invoice, save) that meet
the per-second limit together each get their first calls in, all fail on the next, come back together when
the window frees, and do it again: every QBO call spent and no activity ever finishing.
"""

import random
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Row, bindparam, delete, func, or_, select, update
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import metrics
from models.db import dialect_insert
from models.qbo_limits import QboRealmCall, QboRealmLock

# The activity attempt (run, activity, attempt) a call was last let through for. Keyed, not a flag: the worker
# copies a context per attempt, but from whatever its caller's context holds (a test's ActivityEnvironment sets
# variables in the caller's own), so a flag could arrive already set.
_admitted_attempt: ContextVar[tuple[str, str, int] | None] = ContextVar("qbo_admitted_attempt", default=None)


def _this_attempt() -> tuple[str, str, int] | None:
    if not activity.in_activity():
        return None
    info = activity.info()
    return info.workflow_run_id or "", info.activity_id, info.attempt


def _admitted_before() -> bool:
    """A call of this activity attempt was already let through."""
    attempt = _this_attempt()
    return attempt is not None and _admitted_attempt.get() == attempt


@dataclass(frozen=True)
class RealmLimits:
    in_flight: int = 10
    per_second: int = 10
    per_minute: int = 500
    # Longer than any one call may take: a call still unfinished after it was lost with its worker.
    lease: timedelta = timedelta(minutes=3)
    wait_in_place: timedelta = timedelta(milliseconds=250)
    # How long a call of an attempt that already made calls waits for room before giving up (see above).
    hold_in_place: timedelta = timedelta(seconds=5)
    # Added at random to the delay of a turned-away activity.
    retry_jitter: timedelta = timedelta(milliseconds=500)


# Pruning old calls is housekeeping, not counting (the read skips them anyway): one admission in ten does it.
PRUNE_SHARE = 0.1


class RealmBusy(ApplicationError):
    """No room under the company's limits now: retry after `next_retry_delay`. Benign: backpressure working as
    meant, so the SDK logs it at DEBUG and leaves it out of its failure metrics (ledgerflow_qbo_realm_busy
    counts it); under load a warning and a traceback for each one drowned the log."""

    def __init__(self, realm_id: str, reason: str, wait: timedelta) -> None:
        self.reason = reason
        super().__init__(f"QBO company {realm_id} is at its {reason} limit; retrying in {wait.total_seconds():.2f}s",
                         type="QboRealmBusy", next_retry_delay=max(wait, timedelta(milliseconds=10)),
                         category=ApplicationErrorCategory.BENIGN)


class RealmLimiter:
    def __init__(self, engine: Engine, limits: RealmLimits | None = None) -> None:
        self.engine = engine
        self.limits = limits or RealmLimits()

    @contextmanager
    def slot(self, realm_id: str) -> Iterator[None]:
        admitted = _admitted_before()
        if not admitted:  # the attempt's first call
            metrics.qbo_attempt()
        deadline = self._wait_deadline(admitted)
        while True:
            try:
                holder = self._admit(realm_id)
                break
            except RealmBusy as busy:
                wait = busy.next_retry_delay.total_seconds() if busy.next_retry_delay else 0.0
                if time.monotonic() + wait > deadline:
                    jitter = random.uniform(0, self.limits.retry_jitter.total_seconds())
                    metrics.qbo_realm_busy(busy.reason)
                    raise RealmBusy(realm_id, busy.reason, timedelta(seconds=wait + jitter)) from None
                time.sleep(wait)
        if activity.in_activity():
            _admitted_attempt.set(_this_attempt())
        try:
            yield
        finally:
            with self.engine.begin() as connection:
                connection.execute(_FINISH, {"finished_holder": holder, "finished_at": datetime.now(UTC)})

    def _wait_deadline(self, admitted: bool) -> float:
        """Until when (monotonic) a call may wait in place for room: a quarter second, or, for an activity
        attempt that already made calls, `hold_in_place` but not into the last quarter of its time limit."""
        now = time.monotonic()
        if not admitted:
            return now + self.limits.wait_in_place.total_seconds()
        hold = self.limits.hold_in_place.total_seconds()
        info = activity.info()
        if info.start_to_close_timeout:
            elapsed = (datetime.now(UTC) - info.started_time).total_seconds()
            hold = min(hold, 0.75 * info.start_to_close_timeout.total_seconds() - elapsed)
        return now + max(hold, self.limits.wait_in_place.total_seconds())

    def _admit(self, realm_id: str) -> str:
        """One transaction: take the company's lock row, count its calls in each window in one aggregate row, and
        either record this call or, only when a limit is reached, ask when the window has room. (Reading every
        counted call for that cost ~3 ms of worker CPU at 100 calls a minute, and the per-second limit is
        reached often under load.)"""
        holder = str(uuid.uuid4())
        limits, now = self.limits, datetime.now(UTC)
        with self.engine.begin() as connection:
            # A no-op write on the company's lock row (a row lock on PostgreSQL, the write lock on SQLite):
            # every admission for this company is serialised from here to the commit.
            if not connection.execute(_TAKE_LOCK, {"realm": realm_id}).rowcount:
                lock_row = dialect_insert(self.engine.dialect.name)(QboRealmLock.__table__).values(realm_id=realm_id)
                connection.execute(lock_row.on_conflict_do_nothing())
                connection.execute(_TAKE_LOCK, {"realm": realm_id})
            params = {"realm": realm_id, **_window_bounds(now, limits)}
            if random.random() < PRUNE_SHARE:
                connection.execute(_PRUNE, params)
            busy = _busy(connection, params, connection.execute(_COUNT, params).one(), now, limits)
            if busy is not None:
                raise RealmBusy(realm_id, *busy)  # leaving the block rolls the transaction back
            connection.execute(_RECORD, {"realm_id": realm_id, "holder": holder, "started_at": now})
        return holder


# The limiter's statements, built once: a statement object remembers its cache key, so the admissions that run
# them skip rebuilding and re-keying a statement each time.
_calls = QboRealmCall.__table__
_when = _calls.c.started_at.type


def _window_bounds(now: datetime, limits: RealmLimits) -> dict[str, datetime]:
    """The bounds the statements below compare with: a call counts in a window when it finished inside it, or
    is unfinished and started inside it widened by the lease (a call lost with its worker finished, at the
    latest, when its lease ran out)."""
    second, minute = timedelta(seconds=1), timedelta(minutes=1)
    return {"leased_since": now - limits.lease,
            "second_start": now - second, "second_lost": now - limits.lease - second,
            "minute_start": now - minute, "minute_lost": now - limits.lease - minute}


def _inside(window: str) -> ColumnElement[bool]:
    return or_(_calls.c.finished_at > bindparam(f"{window}_start", type_=_when),
               _calls.c.finished_at.is_(None) & (_calls.c.started_at > bindparam(f"{window}_lost", type_=_when)))


_in_flight = _calls.c.finished_at.is_(None) & (_calls.c.started_at > bindparam("leased_since", type_=_when))
_of_realm = _calls.c.realm_id == bindparam("realm")
_TAKE_LOCK = update(QboRealmLock.__table__).where(QboRealmLock.realm_id == bindparam("realm")) \
    .values(realm_id=bindparam("realm"))
# Calls counted in no window any more: finished over a minute ago, or lost with their worker.
_PRUNE = delete(_calls).where(_of_realm, or_(
    _calls.c.finished_at < bindparam("minute_start", type_=_when),
    _calls.c.finished_at.is_(None) & (_calls.c.started_at < bindparam("minute_lost", type_=_when))))
_COUNT = select(func.count().filter(_in_flight), func.count().filter(_inside("second")), func.count()) \
    .where(_of_realm, _inside("minute"))
# Of the finished calls counted in a window, by when they finished, the one whose leaving makes room.
_LEAVING = {window: select(_calls.c.finished_at).where(_of_realm, _inside(window), _calls.c.finished_at.is_not(None))
            .order_by(_calls.c.finished_at).limit(1).offset(bindparam("leaving")) for window in ("second", "minute")}
_RECORD = _calls.insert()
_FINISH = update(_calls).where(_calls.c.holder == bindparam("finished_holder")) \
    .values(finished_at=bindparam("finished_at", type_=_when))


def _busy(connection: Connection, params: dict[str, Any], counts: Row[tuple[int, int, int]], now: datetime,
          limits: RealmLimits) -> tuple[str, timedelta] | None:
    """Which limit the counts (in flight, in the second, in the minute) leave no room under, and how long until
    there is room: until enough of the finished calls have left the window. An unfinished call leaves it when its
    answer comes or its lease runs out, so with too few finished ones: look again soon."""
    in_flight, in_second, in_minute = counts
    if in_flight >= limits.in_flight:
        return "in-flight", timedelta(milliseconds=100)
    for window, span, limit, counted in (("second", timedelta(seconds=1), limits.per_second, in_second),
                                         ("minute", timedelta(minutes=1), limits.per_minute, in_minute)):
        if counted >= limit:
            leaves = connection.execute(_LEAVING[window], {**params, "leaving": counted - limit}).scalar()
            return f"per-{window}", leaves + span - now if leaves is not None else timedelta(milliseconds=100)
    return None
