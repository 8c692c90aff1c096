"""POST /inbound/email-capture: mail that reached an account's capture address (the BCC address staff copy
on their emails), as the parsed-mail relay posts it, signed like the CRM's webhooks. Recorded in the API
monitor, then handed to its workflow, which stores it as a history note on the contacts it is about."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlmodel import Session

from api.handover import hand_over
from api.openapi import documented_body
from api.signed_bodies import signed_body
from config.settings import Settings
from dispatch import send_captured_email
from models.accounts import Franchisee
from models.captured_emails import CapturedMail
from models.crm_webhooks import SIGNATURE_HEADER
from models.lead_receipts import record_receipt
from models.leads import EmailCaptureInput

router = APIRouter(prefix="/inbound", tags=["inbound"])
CHANNEL = "email-capture"


def _capturing_accounts(engine: Engine, mail: CapturedMail, domain: str) -> list[Franchisee]:
    with Session(engine) as session:
        return [f for a in mail.capture_accounts(domain) if (f := session.get(Franchisee, a)) is not None]


@router.post("/email-capture", openapi_extra=documented_body(CapturedMail),
             responses={401: {"description": f"missing or bad {SIGNATURE_HEADER}"},
                        422: {"description": "malformed body, or no account's capture address among its recipients"},
                        503: {"description": "Temporal unavailable: post again later"}})
async def email_captured(request: Request,
                         signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    engine = request.app.state.engine
    mail = signed_body(CapturedMail, await request.body(), settings.inbound_email_secret.get_secret_value(),
                       signature)
    accounts = await run_in_threadpool(_capturing_accounts, engine, mail, settings.email_capture_domain)
    if not accounts:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no account's capture address is a recipient")
    captured = []
    for franchisee in accounts:
        receipt = await run_in_threadpool(record_receipt, engine, franchisee.account_id, CHANNEL, mail.message_id,
                                          f"{mail.sender_address}: {mail.subject}")
        assert receipt.id is not None
        dispatched = await hand_over(engine, receipt.id, send_captured_email(
            request.app.state.temporal, franchisee.franchisor_id, settings.task_queue,
            EmailCaptureInput(account_id=franchisee.account_id, receipt_id=receipt.id, mail=mail)))
        captured.append({"account_id": franchisee.account_id, "receipt": receipt.id,
                         "workflow_id": dispatched.workflow_id})
    return {"status": "accepted", "captured": captured}
