"""The SMS sandbox's HTTP surface: Twilio's Messages API (HTTP Basic AccountSid:AuthToken), and an admin API to
look at what was sent, play a contact's replies and inject faults. It also serves the SMTP sink's admin.

How it answers, which Ledgerflow's adapter relies on:
- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json` (form: To, From, Body, StatusCallback) answers 201 with
  Twilio's message JSON, `status: "queued"`; the message is then delivered at once, and a StatusCallback URL
  gets Twilio's signed "delivered" callback. Errors are Twilio's `{"code", "message", "more_info", "status"}`:
  401/20003 for bad credentials, 400 with 21602/21603/21604 (missing Body/From/To), 21211 (To not E.164),
  21617 (Body over 1600 characters) and 21610 when the contact texted STOP (or another opt-out keyword) to
  that From number, until it texts START.
- `GET .../Messages.json?To=&From=&PageSize=` lists the account's messages newest first; `GET
  .../Messages/{Sid}.json` one message.
- Faults per account ("500", "429", "timeout", "drop": the text is queued and the answer never comes).

Admin: `GET /admin/messages?account_sid=&to=&direction=`; `POST /admin/inbound {from, to, body}` records a
contact's text (its opt-out keyword applied, as Twilio does) and POSTs Twilio's inbound webhook, form-encoded
and signed with `X-Twilio-Signature`, to the inbound SMS URL (retried until answered, sandbox/delivery.py);
`POST /admin/inbound-email {from, to, subject, body}` forwards a reply to the inbound email URL as the
inbound-mail relay would (JSON, signed `X-Ledgerflow-Signature`);
`GET /admin/deliveries`; `PUT /admin/accounts/{sid} {auth_token}`; `PUT /admin/accounts/{sid}/faults`. Either
inbound call takes a `url` to use instead of the configured one (tests run the API on a free port).
"""

import base64
import binascii
import math
import re
import secrets
import threading
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from config.settings import get_settings
from models.opt_outs import keyword_of
from models.twilio_signature import SIGNATURE_HEADER, twilio_signature
from sandbox.delivery import WebhookDelivery
from sandbox.injected import FaultSettings, before_work, install, unless_dropped
from sandbox.messaging.smtp_sink import SmtpSink, email_routes
from sandbox.qbo.chaos import FaultPlan

API_VERSION = "2010-04-01"
MAX_BODY = 1600
E164 = re.compile(r"\+[1-9]\d{7,14}")
OPT_OUT_TYPES = {"opt_out": "STOP", "opt_in": "START", "help": "HELP"}  # Twilio's OptOutType parameter
FAULT_MESSAGES = {429: (20429, "Too Many Requests"), 500: (20500, "Internal Server Error (injected by the sandbox)"),
                  504: (20504, "Gateway Timeout")}


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                         "status": status}, status_code=status)


def fault_error(status: int) -> Response:
    return twilio_error(status, *FAULT_MESSAGES[status])


class Refused(Exception):
    """Twilio will not send it: HTTP 400 (or 404) with its error code."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _sid() -> str:
    return "SM" + secrets.token_hex(16)


def _segments(body: str) -> int:
    return 1 if len(body) <= 160 else math.ceil(len(body) / 153)


class SmsStore:
    """Accounts (SID -> auth token), every text in and out, and the opt-outs: (contact, our number) pairs, as
    Twilio keeps them per sending number."""

    def __init__(self, accounts: dict[str, str]) -> None:
        self.lock = threading.Lock()
        self.accounts = dict(accounts)
        self.default_account = next(iter(self.accounts))
        self.messages: list[dict[str, Any]] = []
        self.inbound_emails: list[dict[str, Any]] = []
        self.opted_out: set[tuple[str, str]] = set()

    def _message(self, account_sid: str, direction: str, to: str, from_: str, body: str, status: str,
                 **fields: Any) -> dict[str, Any]:
        now = format_datetime(datetime.now(UTC))
        sid = _sid()
        message = {"sid": sid, "account_sid": account_sid, "direction": direction, "to": to, "from": from_,
                   "body": body, "status": status, "num_segments": str(_segments(body)), "num_media": "0",
                   "date_created": now, "date_updated": now, "date_sent": None, "price": None, "price_unit": "USD",
                   "error_code": None, "error_message": None, "messaging_service_sid": None,
                   "api_version": API_VERSION, "uri": f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json",
                   **fields}
        self.messages.append(message)
        return message

    def send(self, account_sid: str, form: dict[str, str]) -> dict[str, Any]:
        """Queue a text after Twilio's checks; answers the message as it was when queued."""
        to, from_, body = form.get("To", "").strip(), form.get("From", "").strip(), form.get("Body", "")
        if not to:
            raise Refused(21604, "A 'To' phone number is required.")
        if not from_:
            raise Refused(21603, "A 'From' phone number is required.")
        if not body:
            raise Refused(21602, "Message body is required.")
        if not E164.fullmatch(to):
            raise Refused(21211, f"Invalid 'To' Phone Number: {to}")
        if len(body) > MAX_BODY:
            raise Refused(21617, "The concatenated message body exceeds the 1600 character limit.")
        with self.lock:
            if (to, from_) in self.opted_out:
                raise Refused(21610, "Attempt to send to unsubscribed recipient")
            message = self._message(account_sid, "outbound-api", to, from_, body, "queued",
                                    status_callback=form.get("StatusCallback"))
            queued = dict(message)
            message.update(status="delivered", date_sent=message["date_created"])
            return queued

    def receive(self, account_sid: str, from_: str, to: str, body: str) -> dict[str, Any]:
        """A contact's text to one of our numbers; an opt-out or opt-in keyword changes what may be sent."""
        keyword = keyword_of(body)
        with self.lock:
            if keyword == "opt_out":
                self.opted_out.add((from_, to))
            elif keyword == "opt_in":
                self.opted_out.discard((from_, to))
            return dict(self._message(account_sid, "inbound", to, from_, body, "received",
                                      opt_out_type=OPT_OUT_TYPES.get(keyword or "")))

    def listed(self, account_sid: str | None = None, to: str | None = None, from_: str | None = None,
               direction: str | None = None) -> list[dict[str, Any]]:
        """Newest first, as Twilio lists them."""
        with self.lock:
            return [dict(m) for m in reversed(self.messages)
                    if (account_sid is None or m["account_sid"] == account_sid) and (to is None or m["to"] == to)
                    and (from_ is None or m["from"] == from_) and (direction is None or m["direction"] == direction)]


class InboundSms(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: str = Field(alias="from", pattern=E164.pattern)
    to: str = Field(pattern=E164.pattern)
    body: str
    account_sid: str | None = None
    url: str | None = None


class InboundEmail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: str = Field(alias="from", min_length=3)
    to: str = Field(min_length=3)
    subject: str = ""
    body: str
    in_reply_to: str | None = None  # the Message-ID replied to, as mail clients set it
    headers: dict[str, str] = {}  # more of the email's headers (Auto-Submitted, Precedence, ...)
    url: str | None = None


class Account(BaseModel):
    auth_token: str = Field(min_length=1)


def create_app(store: SmsStore | None = None, sink: SmtpSink | None = None, inbound_sms_url: str | None = None,
               inbound_email_url: str | None = None, delivery: WebhookDelivery | None = None,
               inbound_email_secret: str | None = None) -> FastAPI:
    """By default the account and the inbound email secret are those of Ledgerflow's settings."""
    settings = get_settings()
    store = store or SmsStore({settings.twilio_account_sid: settings.twilio_auth_token.get_secret_value()})
    email_secret = inbound_email_secret or settings.inbound_email_secret.get_secret_value()
    delivery = delivery or WebhookDelivery()
    fault_plans: dict[str, FaultPlan] = {}
    app = FastAPI(title="SMS sandbox (Twilio)", docs_url=None, redoc_url=None)
    app.state.store, app.state.delivery, app.state.sink = store, delivery, sink
    install(app)
    if sink is not None:
        app.include_router(email_routes(sink))

    @app.exception_handler(Refused)
    async def _refused(_request: Request, refused: Refused) -> Response:
        answer = twilio_error(refused.status, refused.code, refused.message)
        if refused.status == 401:
            answer.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        return answer

    def account_of(account_sid: str, authorization: Annotated[str | None, Header()] = None) -> str:
        scheme, _, encoded = (authorization or "").partition(" ")
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            username = password = ""
        token = store.accounts.get(account_sid)
        if scheme.lower() != "basic" or username != account_sid or token is None \
                or not secrets.compare_digest(password, token):
            raise Refused(20003, "Authenticate", 401)
        return account_sid

    AccountDep = Annotated[str, Depends(account_of)]

    def plan_of(account_sid: str) -> FaultPlan:
        return fault_plans.setdefault(account_sid, FaultPlan())

    def signed_post(url: str, params: dict[str, str], account_sid: str) -> None:
        """Twilio's webhook: form-encoded, signed with the account's auth token, retried until answered."""
        delivery.send(url, urlencode(params).encode(),
                      {"Content-Type": "application/x-www-form-urlencoded",
                       SIGNATURE_HEADER: twilio_signature(url, params, store.accounts[account_sid])})

    # -- Twilio's API --------------------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json")
    async def send_message(account_sid: AccountDep, request: Request) -> Response:
        plan = plan_of(account_sid)
        drop = await before_work(plan, True, fault_error)
        form = {name: str(value) for name, value in (await request.form()).items()}
        message = store.send(account_sid, form)
        if message["status_callback"]:
            signed_post(message["status_callback"], {
                "AccountSid": account_sid, "MessageSid": message["sid"], "SmsSid": message["sid"],
                "From": message["from"], "To": message["to"], "MessageStatus": "delivered",
                "SmsStatus": "delivered", "ApiVersion": API_VERSION}, account_sid)
        return await unless_dropped(plan, drop, JSONResponse(message, status_code=201), fault_error)

    @app.get(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json")
    async def list_messages(account_sid: AccountDep, to: Annotated[str | None, Query(alias="To")] = None,
                            from_: Annotated[str | None, Query(alias="From")] = None,
                            page_size: Annotated[int, Query(alias="PageSize", ge=1, le=1000)] = 50) -> Response:
        plan = plan_of(account_sid)
        drop = await before_work(plan, False, fault_error)
        messages = store.listed(account_sid, to, from_)[:page_size]
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"
        return await unless_dropped(plan, drop, JSONResponse({
            "messages": messages, "page": 0, "page_size": page_size, "start": 0, "end": max(len(messages) - 1, 0),
            "uri": uri, "first_page_uri": uri, "next_page_uri": None, "previous_page_uri": None}), fault_error)

    @app.get(f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message_sid}}.json")
    async def get_message(account_sid: AccountDep, message_sid: str) -> Response:
        found = next((m for m in store.listed(account_sid) if m["sid"] == message_sid), None)
        if found is None:
            raise Refused(20404, f"The requested resource /{API_VERSION}/Accounts/{account_sid}/Messages/"
                                 f"{message_sid}.json was not found", 404)
        return JSONResponse(found)

    # -- admin (sandbox only): what the contacts and Twilio's console do -------------------------------------
    @app.get("/admin/messages")
    def admin_messages(account_sid: str | None = None, to: str | None = None,
                       from_: Annotated[str | None, Query(alias="from")] = None,
                       direction: str | None = None) -> list[dict[str, Any]]:
        return store.listed(account_sid, to, from_, direction)

    @app.post("/admin/inbound")
    def admin_inbound(inbound: InboundSms) -> dict[str, Any]:
        """A contact texts one of our numbers: recorded, its keyword applied, and Twilio's webhook posted."""
        account_sid = inbound.account_sid or store.default_account
        if account_sid not in store.accounts:
            raise Refused(20404, f"no account {account_sid} in the sandbox", 404)
        message = store.receive(account_sid, inbound.from_, inbound.to, inbound.body)
        url = inbound.url or inbound_sms_url
        if url:
            params = {"MessageSid": message["sid"], "SmsSid": message["sid"], "SmsMessageSid": message["sid"],
                      "AccountSid": account_sid, "From": inbound.from_, "To": inbound.to, "Body": inbound.body,
                      "NumMedia": "0", "NumSegments": message["num_segments"], "SmsStatus": "received",
                      "ApiVersion": API_VERSION}
            if message["opt_out_type"]:
                params["OptOutType"] = message["opt_out_type"]
            signed_post(url, params, account_sid)
        return {**message, "webhook_url": url}

    @app.post("/admin/inbound-email")
    def admin_inbound_email(inbound: InboundEmail) -> dict[str, Any]:
        """A contact's email reply, forwarded as an inbound-mail relay posts it: JSON `{message_id, from, to,
        subject, text, headers}`, signed `X-Ledgerflow-Signature` (models/crm_webhooks.py) with the inbound
        email secret, retried until answered."""
        headers = {**inbound.headers, **({"In-Reply-To": inbound.in_reply_to} if inbound.in_reply_to else {})}
        with store.lock:
            number = len(store.inbound_emails) + 1
            email = {"message_id": f"<inbound-{number}-{secrets.token_hex(4)}@sandbox.ledgerflow.local>",
                     "from": inbound.from_, "to": inbound.to, "subject": inbound.subject, "text": inbound.body,
                     "headers": headers}
            store.inbound_emails.append(email)
        url = inbound.url or inbound_email_url
        if url:
            delivery.send_signed(url, email, email_secret)
        return {**email, "webhook_url": url}

    @app.get("/admin/deliveries")
    def admin_deliveries() -> list[dict[str, Any]]:
        """Each webhook posted and the final status it got (0: no answer), oldest first."""
        return [{"url": url, "status": status, "body": body.decode()} for url, body, status in
                list(delivery.delivered)]

    @app.put("/admin/accounts/{account_sid}")
    def admin_account(account_sid: str, account: Account) -> dict[str, str]:
        store.accounts[account_sid] = account.auth_token
        return {"sid": account_sid}

    @app.put("/admin/accounts/{account_sid}/faults")
    def admin_faults(account_sid: str, settings: FaultSettings) -> dict[str, object]:
        """Replace the account's fault plan: {"queued": ["drop"], "rates": {"500": 0.1}, "hold_seconds": 2}."""
        fault_plans[account_sid] = FaultPlan(**settings.model_dump())
        return fault_plans[account_sid].describe()

    return app
