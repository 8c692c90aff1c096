"""POST /inbound/email-capture: mail that reached an account's capture address (the BCC address staff copy
on their emails), as the parsed-mail relay posts it, signed like the CRM's webhooks. Recorded in the API
monitor, then handed to its workflow, which stores it as a history note on the contacts it is about."""

from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, status
from sqlmodel import Session
from temporalio.service import RPCError

from api.crm_events import TRANSIENT
from api.openapi import documented_body
from api.signed_bodies import signed_body
from config.settings import Settings
from dispatch import send_captured_email
from models.accounts import Franchisee
from models.captured_emails import CapturedMail
from models.crm_webhooks import SIGNATURE_HEADER
from models.lead_receipts import Outcome, note_run, record_receipt, settle_receipt
from models.leads import EmailCaptureInput

router = APIRouter(prefix="/inbound", tags=["inbound"])
CHANNEL = "email-capture"


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
    with Session(engine) as session:
        accounts = [f for a in mail.capture_accounts(settings.email_capture_domain)
                    if (f := session.get(Franchisee, a)) is not None]
    if not accounts:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "no account's capture address is a recipient")
    captured = []
    for franchisee in accounts:
        receipt = record_receipt(engine, franchisee.account_id, CHANNEL, mail.message_id,
                                 f"{mail.sender_address}: {mail.subject}")
        assert receipt.id is not None
        try:
            dispatched = await send_captured_email(
                request.app.state.temporal, franchisee.franchisor_id, settings.task_queue,
                EmailCaptureInput(account_id=franchisee.account_id, receipt_id=receipt.id, mail=mail))
        except RPCError as error:
            if error.status not in TRANSIENT:
                raise
            settle_receipt(engine, receipt.id, Outcome.REJECTED, reason=f"workflow service unavailable "
                                                                        f"({error.message}): to be posted again")
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "workflow service unavailable",
                                headers={"Retry-After": "30"}) from error
        note_run(engine, receipt.id, dispatched.workflow_id, dispatched.run_id)
        captured.append({"account_id": franchisee.account_id, "receipt": receipt.id,
                         "workflow_id": dispatched.workflow_id})
    return {"status": "accepted", "captured": captured}
