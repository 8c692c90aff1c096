"""Handing a received lead or email to its workflow: the API monitor's receipt is written first, so nothing
received goes unrecorded, and settled as rejected when Temporal does not take it, so no receipt waits for a
workflow that never started. A transient Temporal answer is a 503 (api/temporal_errors.py: the sender posts
again)."""

from collections.abc import Awaitable

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine

from dispatch import Dispatched, transient
from models.lead_receipts import Outcome, note_run, settle_receipt


async def hand_over(engine: Engine, receipt_id: int, sending: Awaitable[Dispatched]) -> Dispatched:
    try:
        dispatched = await sending
    except Exception as error:
        away = transient(error)
        reason = (f"workflow service unavailable ({error}): the sender was asked to post again" if away
                  else f"not started: {error.__class__.__name__}: {error}")
        await run_in_threadpool(settle_receipt, engine, receipt_id, Outcome.REJECTED, None, reason)
        raise
    await run_in_threadpool(note_run, engine, receipt_id, dispatched.workflow_id, dispatched.run_id)
    return dispatched
