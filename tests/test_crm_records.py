"""The record map's claims on a real SQLite file: of many makers racing for the same person's keys, exactly one
may make the record; the others see it settled; an abandoned claim can be taken over."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy import Engine

from models.crm_records import ABANDONED_AFTER, CrmRecord, claim, known, replace_data, settle
from models.db import session_scope

KEYS = ["lead:angi:1", "email:dana@example.com", "phone:5125550142"]


def test_of_many_racing_makers_one_holds_every_key(engine: Engine) -> None:
    def race(n: int) -> dict[str, str]:
        return {key: row.claimed_by for key, row in claim(engine, "acme-austin", KEYS[n % 2:], f"maker-{n}").items()}

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = list(pool.map(race, range(16)))
    # Every maker wants the email and the phone: all of them see one and the same maker holding both.
    rows = known(engine, "acme-austin", KEYS)
    assert rows[KEYS[1]].claimed_by == rows[KEYS[2]].claimed_by
    assert all(claims[KEYS[1]] == claims[KEYS[2]] == rows[KEYS[1]].claimed_by for claims in seen)


def test_a_settled_record_is_found_by_every_key_and_its_data_replaced_only_from_its_version(engine: Engine) -> None:
    claim(engine, "acme-austin", KEYS, "maker-1")
    settle(engine, "acme-austin", KEYS, "C-1", "maker-1", data={"sections": {"a": "1"}})
    assert {row.record_id for row in known(engine, "acme-austin", KEYS).values()} == {"C-1"}
    assert claim(engine, "acme-austin", KEYS, "maker-2")[KEYS[0]].record_id == "C-1"
    row = known(engine, "acme-austin", KEYS)[KEYS[0]]
    assert replace_data(engine, "acme-austin", KEYS[0], row.version, {"sections": {"a": "2"}})
    assert not replace_data(engine, "acme-austin", KEYS[0], row.version, {"sections": {"a": "3"}})
    assert known(engine, "acme-austin", KEYS)[KEYS[0]].data == {"sections": {"a": "2"}}


def test_an_abandoned_claim_is_taken_over_but_a_fresh_one_is_not(engine: Engine) -> None:
    claim(engine, "acme-austin", KEYS[:1], "gone")
    assert claim(engine, "acme-austin", KEYS[:1], "next")[KEYS[0]].claimed_by == "gone"
    with session_scope(engine) as session:
        row = session.get(CrmRecord, ("acme-austin", KEYS[0]))
        assert row is not None
        row.claimed_at = datetime.now(UTC) - ABANDONED_AFTER * 2
        session.add(row)
    assert claim(engine, "acme-austin", KEYS[:1], "next")[KEYS[0]].claimed_by == "next"
