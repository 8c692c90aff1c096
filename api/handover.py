"""Handing a received lead or email to its workflow: the API monitor's receipt is written first, so nothing
received goes unrecorded, and settled as rejected when Temporal does not take it, so no receipt waits for a
workflow that never started. A transient Temporal answer is a 503 (the sender posts again)."""

from collections.abc import Awaitable

from fastapi import HTTPException, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from temporalio.service import RPCError

from api.crm_events import TRANSIENT
from dispatch import Dispatched
from models.lead_receipts import Outcome, note_run, settle_receipt


async def hand_over(engine: Engine, receipt_id: int, sending: Awaitable[Dispatched]) -> Dispatched:
    try:
        dispatched = await sending
    except Exception as error:
        transient = isinstance(error, RPCError) and error.status in TRANSIENT
        reason = (f"workflow service unavailable ({error}): the sender was asked to post again" if transient
                  else f"not started: {error.__class__.__name__}: {error}")
        await run_in_threadpool(settle_receipt, engine, receipt_id, Outcome.REJECTED, None, reason)
        if not transient:
            raise
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"workflow service unavailable: {error}",
                            headers={"Retry-After": "30"}) from error
    await run_in_threadpool(note_run, engine, receipt_id, dispatched.workflow_id, dispatched.run_id)
    return dispatched
