"""CRM webhooks: each call is authenticated with the account's HMAC secret, validated, then handed to the
proposal's workflow. Bad input gets a clear 4xx and starts nothing."""

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlmodel import Session
from temporalio.service import RPCError, RPCStatusCode

from api.openapi import documented_body
from dispatch import send_sales_cycle_change
from models.accounts import Franchisee
from models.crm_webhooks import SIGNATURE_HEADER, signature_matches
from models.proposals import SalesCycleChange

router = APIRouter(prefix="/crm", tags=["crm"])
# Temporal answers that mean "not now": the sender should deliver again later.
TRANSIENT = {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED,
             RPCStatusCode.ABORTED, RPCStatusCode.CANCELLED}


@router.post(
    "/{account_id}/sales-cycle",
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra=documented_body(SalesCycleChange),
    responses={
        200: {"description": "the sales-cycle step is not mapped to a lifecycle stage: nothing started"},
        401: {"description": f"missing or bad {SIGNATURE_HEADER}"},
        404: {"description": "unknown account"},
        413: {"description": "body too large"},
        422: {"description": "malformed body; the detail names the field"},
        503: {"description": "Temporal unavailable: deliver again later"},
    },
)
async def sales_cycle_changed(
    account_id: str,
    request: Request,
    x_ledgerflow_signature: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    settings = request.app.state.settings
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    if franchisee is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    secret = settings.crm_webhook_secrets.get(account_id)
    body = await request.body()
    if secret is None or not signature_matches(secret.get_secret_value(), body, x_ledgerflow_signature):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing or bad {SIGNATURE_HEADER}")
    try:
        change = SalesCycleChange.model_validate_json(body)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            error.errors(include_url=False, include_context=False, include_input=False)) from error
    if change.account_id != account_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"body is for account {change.account_id!r}, not {account_id!r}")
    try:
        dispatched = await send_sales_cycle_change(request.app.state.temporal, settings, franchisee, change)
    except RPCError as error:
        if error.status not in TRANSIENT:
            raise
        # Nothing was accepted: the CRM's own retry delivers it again once Temporal answers.
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"workflow service unavailable: {error.message}",
                            headers={"Retry-After": "30"}) from error
    code = status.HTTP_202_ACCEPTED if dispatched.status == "accepted" else status.HTTP_200_OK
    return JSONResponse(dispatched.__dict__, status_code=code)
