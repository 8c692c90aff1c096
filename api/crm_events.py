"""CRM webhooks: each call is authenticated with the account's HMAC secret over the raw body, validated,
then handed to the proposal's workflow. It answers only once Temporal has the event, so an accepted event is
never lost and a duplicate delivery is harmless. Bad input gets a clear 4xx and starts nothing."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlmodel import Session
from temporalio.client import Client

from api.openapi import documented_body
from api.signed_bodies import signed_body
from config.settings import Settings
from dispatch import (
    Dispatched,
    send_payment_added,
    send_payment_voided,
    send_proposal_changed,
    send_sales_cycle_change,
)
from models.accounts import Franchisee
from models.crm_webhooks import SIGNATURE_HEADER
from models.proposals import PaymentAdded, PaymentVoided, ProposalChanged, SalesCycleChange

router = APIRouter(prefix="/crm", tags=["crm"])
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "nothing to do for this event: nothing started"},
    401: {"description": f"missing or bad {SIGNATURE_HEADER}"},
    404: {"description": "signed with the account's secret, but no such franchisee is installed"},
    413: {"description": "body too large"},
    422: {"description": "malformed body; the detail names the field"},
    503: {"description": "Temporal unavailable: deliver again later"},
}
Event = TypeVar("Event", bound=BaseModel)
Sender = Callable[[Client, Settings, Franchisee, Any], Awaitable[Dispatched]]


async def _accept(account_id: str, request: Request, signature: str | None, model: type[Event],
                  send: Sender) -> JSONResponse:
    """The one path of every CRM event: signature over the raw bytes, body, account, then Temporal. The
    signature comes first, so an unsigned caller cannot tell a known account from an unknown one."""
    settings: Settings = request.app.state.settings
    secret = settings.crm_webhook_secrets.get(account_id)
    event = signed_body(model, await request.body(), secret.get_secret_value() if secret else None, signature)
    with Session(request.app.state.engine) as session:
        franchisee = session.get(Franchisee, account_id)
    if franchisee is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown account {account_id!r}")
    if getattr(event, "account_id", account_id) != account_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            f"body is for account {getattr(event, 'account_id', '')!r}, not {account_id!r}")
    # A Temporal away is a 503 (api/temporal_errors.py): nothing was accepted, the CRM delivers it again.
    dispatched = await send(request.app.state.temporal, settings, franchisee, event)
    code = status.HTTP_202_ACCEPTED if dispatched.status == "accepted" else status.HTTP_200_OK
    return JSONResponse(dispatched.__dict__, status_code=code)


Signature = Annotated[str | None, Header(alias=SIGNATURE_HEADER)]


@router.post("/{account_id}/sales-cycle", status_code=status.HTTP_202_ACCEPTED, responses=RESPONSES,
             openapi_extra=documented_body(SalesCycleChange))
async def sales_cycle_changed(account_id: str, request: Request, signature: Signature = None) -> JSONResponse:
    """A contact moved to another sales-cycle step. Steps the account maps to a lifecycle stage reach the
    proposal's workflow; others are acknowledged and ignored."""
    return await _accept(account_id, request, signature, SalesCycleChange, send_sales_cycle_change)


@router.post("/{account_id}/proposal", status_code=status.HTTP_202_ACCEPTED, responses=RESPONSES,
             openapi_extra=documented_body(ProposalChanged))
async def proposal_changed(account_id: str, request: Request, signature: Signature = None) -> JSONResponse:
    """A proposal was edited."""
    return await _accept(account_id, request, signature, ProposalChanged, send_proposal_changed)


@router.post("/{account_id}/payment", status_code=status.HTTP_202_ACCEPTED, responses=RESPONSES,
             openapi_extra=documented_body(PaymentAdded))
async def payment_added(account_id: str, request: Request, signature: Signature = None) -> JSONResponse:
    """A payment was recorded on a proposal."""
    return await _accept(account_id, request, signature, PaymentAdded, send_payment_added)


@router.post("/{account_id}/payment-voided", status_code=status.HTTP_202_ACCEPTED, responses=RESPONSES,
             openapi_extra=documented_body(PaymentVoided))
async def payment_voided(account_id: str, request: Request, signature: Signature = None) -> JSONResponse:
    """A payment was voided or refunded in full: QBO's payment is voided and the ledger entry reversed."""
    return await _accept(account_id, request, signature, PaymentVoided, send_payment_voided)
