"""The payment gateway's webhooks (header `stax-event-name`): a debit settled, voided or returned. Each wakes
the watch of the transaction it is about (`ach:{account}:{transaction}`), which asks the gateway itself. A post
about a collected debit whose watch has ended (a late return) starts a watch that looks once; one about a
transaction Ledgerflow did not collect is acknowledged and dropped."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel
from sqlmodel import Session, select
from temporalio.service import RPCError, RPCStatusCode

from api.json_bodies import json_object
from dispatch import watch_debit_again
from models.collection_ledger import CollectedPayment
from models.collections import CollectionStatus, GatewayNews, ach_workflow_id
from models.gateway_webhooks import EVENT_HEADER, token_matches

router = APIRouter(prefix="/webhooks/gateway", tags=["gateway"])


class Acknowledged(BaseModel):
    status: str  # "accepted": a watch was woken; "ignored": nothing watches the transaction
    workflow_id: str | None = None


@router.post("/{account_id}/{token}", include_in_schema=True)
async def gateway_event(account_id: str, token: str, request: Request,
                        event_name: Annotated[str, Header(alias=EVENT_HEADER, max_length=64)]) -> Acknowledged:
    if not token_matches(request.app.state.settings, account_id, token):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "not found")
    body = await json_object(request)
    transaction_id = body.get("reference_id") or body.get("id")
    if not isinstance(transaction_id, str) or not transaction_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "the body names no transaction (id)")
    workflow_id = ach_workflow_id(account_id, transaction_id)
    try:
        await request.app.state.temporal.get_workflow_handle(workflow_id).signal(
            "gateway_event", GatewayNews(event_name=event_name, received_at=datetime.now(UTC)))
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        collected = _collected_debit(request, account_id, transaction_id)
        if collected is None:
            return Acknowledged(status="ignored")
        workflow_id = await watch_debit_again(request.app.state.temporal, request.app.state.settings, collected)
    return Acknowledged(status="accepted", workflow_id=workflow_id)


def _collected_debit(request: Request, account_id: str, transaction_id: str) -> CollectedPayment | None:
    """The bank debit a collection made under this transaction, if it still counts (not yet reversed)."""
    with Session(request.app.state.engine) as session:
        row = session.exec(select(CollectedPayment).where(CollectedPayment.account_id == account_id,
                                                          CollectedPayment.transaction_id == transaction_id)).first()
    watched = (CollectionStatus.CHARGED.value, CollectionStatus.SETTLED.value)
    if row is None or row.method != "bank" or row.status not in watched or row.crm_payment_id is None:
        return None
    return row
