"""The per-company limiter on the test database: which calls count in which window, and how long a turned-away
call is told to wait. Calls are written with chosen times, so each wait is known to the millisecond."""

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, select

from activities.qbo_limits import RealmBusy, RealmLimiter, RealmLimits
from models.db import create_tables, get_engine
from models.qbo_limits import QboRealmCall

REALM = "realm-1"
# Turned away at once, with the exact wait: no waiting in place and no jitter.
STRICT = RealmLimits(wait_in_place=timedelta(0), retry_jitter=timedelta(0))


@pytest.fixture
def limits_engine(database_url: str) -> Iterator[Engine]:
    engine = get_engine(database_url)
    create_tables(engine)
    yield engine
    engine.dispose()


def record_calls(engine: Engine, *calls: tuple[timedelta, timedelta | None], realm_id: str = REALM) -> datetime:
    """Calls that started and finished (None: not yet) the given time before the time returned."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(insert(QboRealmCall.__table__), [
            {"realm_id": realm_id, "holder": f"h{n}", "started_at": now - started,
             "finished_at": None if finished is None else now - finished}
            for n, (started, finished) in enumerate(calls)])
    return now


def turned_away(limiter: RealmLimiter, realm_id: str = REALM) -> RealmBusy:
    with pytest.raises(RealmBusy) as busy, limiter.slot(realm_id):
        pass
    return busy.value


def admitted(limiter: RealmLimiter, realm_id: str = REALM) -> bool:
    with limiter.slot(realm_id):
        return True


def seconds(busy: RealmBusy) -> float:
    assert busy.next_retry_delay is not None
    return busy.next_retry_delay.total_seconds()


def assert_wait(busy: RealmBusy, room_in: timedelta, recorded: datetime) -> None:
    """Told to wait until room comes `room_in` after the calls were recorded: that much less the time since."""
    expected = (recorded + room_in - datetime.now(UTC)).total_seconds()
    assert expected - 0.001 <= seconds(busy) <= room_in.total_seconds() + 0.001


def test_the_eleventh_call_in_flight_waits_for_one_to_finish(limits_engine: Engine) -> None:
    limiter = RealmLimiter(limits_engine, RealmLimits(per_second=100, wait_in_place=timedelta(0),
                                                      retry_jitter=timedelta(0)))
    with ExitStack() as open_calls:
        for _ in range(10):
            open_calls.enter_context(limiter.slot(REALM))
        busy = turned_away(limiter)
        assert busy.reason == "in-flight" and seconds(busy) == pytest.approx(0.1)
        assert admitted(limiter, "another-realm")  # one company's calls leave the others alone
    assert admitted(limiter)


def test_a_full_second_waits_until_its_oldest_call_leaves_it(limits_engine: Engine) -> None:
    ago = [timedelta(milliseconds=ms) for ms in (700, 600, 500, 400, 300, 250, 200, 150, 100, 50)]
    recorded = record_calls(limits_engine, *[(t + timedelta(milliseconds=20), t) for t in ago])
    busy = turned_away(RealmLimiter(limits_engine, STRICT))
    assert busy.reason == "per-second"
    assert_wait(busy, timedelta(milliseconds=300), recorded)  # the call finished 700 ms ago leaves in 300 ms


def test_a_full_minute_waits_for_as_many_calls_to_leave_as_it_is_over(limits_engine: Engine) -> None:
    # 502 calls in the last minute (two over the limit of 500), none in the last second.
    recorded = record_calls(limits_engine, *[(timedelta(seconds=s + 0.1), timedelta(seconds=s))
                                             for s in [50.0, 40.0, 30.0] + [2.0 + n / 100 for n in range(499)]])
    busy = turned_away(RealmLimiter(limits_engine, STRICT))
    assert busy.reason == "per-minute"
    assert_wait(busy, timedelta(seconds=30), recorded)  # once the three oldest are out, 499 are left


def test_a_call_lost_with_its_worker_counts_until_its_lease_and_a_minute_are_over(limits_engine: Engine) -> None:
    limits = RealmLimits(per_minute=2, wait_in_place=timedelta(0), retry_jitter=timedelta(0))
    lease = limits.lease
    # Lost 30 s after their leases ran out: no longer in flight, still inside the minute.
    record_calls(limits_engine, (lease + timedelta(seconds=30), None), (lease + timedelta(seconds=31), None))
    busy = turned_away(RealmLimiter(limits_engine, limits))
    assert busy.reason == "per-minute"
    assert seconds(busy) == pytest.approx(0.1)  # no finish time to wait for: look again shortly

    record_calls(limits_engine, (lease + timedelta(seconds=61), None), realm_id="old")
    record_calls(limits_engine, (lease + timedelta(seconds=62), None), realm_id="old")
    assert admitted(RealmLimiter(limits_engine, limits), "old")  # over a minute past their leases: not counted


def test_a_call_waits_in_place_only_when_room_comes_within_a_quarter_second(limits_engine: Engine) -> None:
    record_calls(limits_engine, *[(timedelta(milliseconds=920), timedelta(milliseconds=900))] * 10)
    limiter = RealmLimiter(limits_engine, RealmLimits(retry_jitter=timedelta(0)))
    assert admitted(limiter)  # room came in 100 ms
    recorded = record_calls(limits_engine, *[(timedelta(milliseconds=620), timedelta(milliseconds=600))] * 10,
                            realm_id="later")
    busy = turned_away(limiter, "later")  # room in 400 ms: the worker slot serves other companies meanwhile
    assert busy.reason == "per-second"
    assert_wait(busy, timedelta(milliseconds=400), recorded)


def test_pruning_drops_only_the_calls_no_window_counts(limits_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("activities.qbo_limits.PRUNE_SHARE", 1.0)
    lease = RealmLimits().lease
    record_calls(limits_engine, (timedelta(seconds=62), timedelta(seconds=61)),  # finished over a minute ago
                 (lease + timedelta(seconds=61), None),  # lost over a minute before now, counting its lease
                 (timedelta(seconds=59), timedelta(seconds=58)), (lease + timedelta(seconds=59), None),
                 (timedelta(seconds=1), None))
    record_calls(limits_engine, (timedelta(seconds=62), timedelta(seconds=61)), realm_id="another-realm")
    assert admitted(RealmLimiter(limits_engine))
    with limits_engine.connect() as connection:
        kept = {(realm, holder) for realm, holder in connection.execute(
            select(QboRealmCall.realm_id, QboRealmCall.holder)) if holder.startswith("h")}
    assert kept == {(REALM, "h2"), (REALM, "h3"), (REALM, "h4"), ("another-realm", "h0")}
