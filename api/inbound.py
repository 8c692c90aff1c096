"""Messages from contacts: texts (Twilio's inbound webhook, its signature checked) and email (an inbound-mail
relay, signed like the CRM's webhooks). A texted STOP opts the number out of every plan at once (recorded
before anything else, so no text goes out after it); any other message is a reply, handed to the running
enrollments of the contact who sent it. Auto-replies (out of office) are not replies."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.signed_bodies import signed_body
from config.settings import Settings
from dispatch import signal_runs
from models.crm_webhooks import SIGNATURE_HEADER
from models.enrollments import ContactOptedOut, ContactReplied
from models.messages import e164
from models.opt_outs import record_keyword
from models.plan_enrollments import running_enrollments
from models.twilio_signature import SIGNATURE_HEADER as TWILIO_SIGNATURE_HEADER
from models.twilio_signature import signature_matches as twilio_signature_matches

router = APIRouter(prefix="/inbound", tags=["inbound"])
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
HELP_TWIML = ('<?xml version="1.0" encoding="UTF-8"?><Response><Message>{name}: reply STOP to stop texts, START to '
              'get them again.</Message></Response>')
AUTO_REPLY_SUBJECTS = ("automatic reply", "auto reply", "autoreply", "out of office", "out of the office")


class InboundEmail(BaseModel):
    """An email a contact sent to the account's reply address, as the inbound-mail relay posts it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_id: str = Field(min_length=1, max_length=998)
    sender: str = Field(alias="from", min_length=3, max_length=320)
    to: str = Field(default="", max_length=2000)
    subject: str = Field(default="", max_length=998)
    text: str = Field(default="", max_length=100_000)
    headers: dict[str, str] = {}

    @property
    def address(self) -> str:
        """The sender's bare address: "Dana <dana@example.com>" -> "dana@example.com"."""
        return self.sender.rsplit("<", 1)[-1].rstrip(">").strip().lower()

    @property
    def is_auto_reply(self) -> bool:
        headers = {k.lower(): v.lower() for k, v in self.headers.items()}
        return (headers.get("auto-submitted", "no") != "no" or "x-autoreply" in headers
                or headers.get("precedence") in ("auto_reply", "bulk", "junk")
                or self.subject.strip().lower().startswith(AUTO_REPLY_SUBJECTS))


def called_url(settings: Settings, request: Request) -> str:
    """The URL the caller called: the public address when one is set, else the one served (Host header and
    all, which a proxy may have changed)."""
    if not settings.api_public_url:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{settings.api_public_url.rstrip('/')}{request.url.path}{query}"


def _twiml(body: str) -> Response:
    return Response(body, media_type="application/xml")


@router.post("/sms", response_class=Response,
             responses={200: {"content": {"application/xml": {}}, "description": "TwiML"},
                        403: {"description": f"missing or bad {TWILIO_SIGNATURE_HEADER}"}})
async def inbound_sms(request: Request,
                      signature: Annotated[str | None, Header(alias=TWILIO_SIGNATURE_HEADER)] = None) -> Response:
    """A text from a contact: STOP (and the other keywords) opts the number out of every plan, START back in;
    anything else is a reply to the plans the number is in."""
    settings: Settings = request.app.state.settings
    params = [(name, str(value)) for name, value in (await request.form()).multi_items()]
    if not twilio_signature_matches(called_url(settings, request), params,
                                    settings.twilio_auth_token.get_secret_value(), signature):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing or bad {TWILIO_SIGNATURE_HEADER}")
    fields = dict(params)
    try:
        phone = e164(fields.get("From", ""))
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"From: {error}") from error
    message_id, body = fields.get("MessageSid") or fields.get("SmsSid", ""), fields.get("Body", "")
    engine = request.app.state.engine
    keyword = record_keyword(engine, phone, body)
    if keyword == "help":
        return _twiml(HELP_TWIML.format(name="Ledgerflow"))
    runs = [(e.workflow_id, e.run_id) for e in running_enrollments(engine, phone=phone)]
    temporal = request.app.state.temporal
    if keyword in ("opt_out", "opt_in"):
        await signal_runs(temporal, runs, "contact_opted_out", ContactOptedOut(
            message_id=message_id, opted_out=keyword == "opt_out", keyword=body.strip().upper()))
    else:
        await signal_runs(temporal, runs, "contact_replied", ContactReplied(
            channel="text", message_id=message_id, body=body[:10_000], received_at=datetime.now(UTC)))
    return _twiml(EMPTY_TWIML)


@router.post("/email", responses={401: {"description": f"missing or bad {SIGNATURE_HEADER}"},
                                  422: {"description": "malformed body; the detail names the field"}})
async def inbound_email(request: Request,
                        signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None) -> dict[str, object]:
    """An email from a contact: a reply to the plans the sender's address is in (auto-replies are not)."""
    settings: Settings = request.app.state.settings
    email = signed_body(InboundEmail, await request.body(), settings.inbound_email_secret.get_secret_value(),
                        signature)
    if email.is_auto_reply:
        return {"status": "ignored", "reason": "an automatic reply", "signalled": []}
    runs = [(e.workflow_id, e.run_id) for e in running_enrollments(request.app.state.engine, email=email.address)]
    signalled = await signal_runs(request.app.state.temporal, runs, "contact_replied", ContactReplied(
        channel="email", message_id=email.message_id, body=f"{email.subject}\n\n{email.text}"[:10_000],
        received_at=datetime.now(UTC)))
    return {"status": "accepted", "signalled": signalled}
