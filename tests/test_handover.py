"""A lead Temporal does not take is never left "received": its receipt says why, and the sender hears 503
(post again, api/temporal_errors.py) for a transient answer, a 500 for anything else."""

import pytest
from sqlalchemy import Engine
from temporalio.service import RPCError, RPCStatusCode

from api.handover import hand_over
from dispatch import Dispatched
from models.lead_receipts import LeadReceipt, receipts, record_receipt


async def refused(error: Exception) -> Dispatched:
    raise error


def receipt(engine: Engine) -> LeadReceipt:
    made = record_receipt(engine, "acme-austin", "angi", "A-1", "Dana Reyes")
    assert made.id is not None
    return made


async def test_temporal_unavailable_is_raised_for_its_503_and_the_receipt_rejected(engine: Engine) -> None:
    made = receipt(engine)
    away = RPCError("no server", RPCStatusCode.UNAVAILABLE, b"")
    with pytest.raises(RPCError) as raised:  # every endpoint answers it 503 (api/temporal_errors.py)
        await hand_over(engine, made.id or 0, refused(away))
    assert raised.value is away
    [row] = receipts(engine, "acme-austin")
    assert row.outcome == "rejected" and "post again" in (row.reason or "") and row.settled_at is not None


async def test_any_other_failure_is_raised_and_the_receipt_says_nothing_started(engine: Engine) -> None:
    made = receipt(engine)
    with pytest.raises(ValueError, match="bad search attribute"):
        await hand_over(engine, made.id or 0, refused(ValueError("bad search attribute")))
    [row] = receipts(engine, "acme-austin")
    assert row.outcome == "rejected" and row.reason == "not started: ValueError: bad search attribute"


async def test_a_started_workflow_is_noted_on_the_receipt(engine: Engine) -> None:
    made = receipt(engine)

    async def started() -> Dispatched:
        return Dispatched("accepted", workflow_id="lead:acme-austin:angi:A-1", run_id="run-1")

    await hand_over(engine, made.id or 0, started())
    [row] = receipts(engine, "acme-austin")
    assert (row.outcome, row.workflow_id, row.run_id) == ("received", "lead:acme-austin:angi:A-1", "run-1")
