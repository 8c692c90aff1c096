"""The payment gateway's webhooks (header `stax-event-name`): a debit settled, voided or returned. Each wakes
the watch of the transaction it is about (`ach:{account}:{transaction}`), which asks the gateway itself; a post
about a transaction nothing watches is acknowledged and dropped."""

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from pydantic import BaseModel
from temporalio.service import RPCError, RPCStatusCode

from models.collections import GatewayNews, ach_workflow_id
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
    try:
        body: Any = json.loads(await request.body())
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "the body must be JSON") from error
    transaction_id = body.get("reference_id") or body.get("id") if isinstance(body, dict) else None
    if not isinstance(transaction_id, str) or not transaction_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "the body names no transaction (id)")
    workflow_id = ach_workflow_id(account_id, transaction_id)
    try:
        await request.app.state.temporal.get_workflow_handle(workflow_id).signal(
            "gateway_event", GatewayNews(event_name=event_name, received_at=datetime.now(UTC)))
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return Acknowledged(status="ignored")
    return Acknowledged(status="accepted", workflow_id=workflow_id)
