"""The messaging sandbox over SMTP and HTTP, as the providers' contracts say they behave: Twilio's send and
error shapes, opt-out keywords (21610 until START), inbound texts posted with a signature that verifies, inbound
email forwarded signed, the SMTP sink's record of each message, and faults."""

import random
import smtplib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi import FastAPI, Request

from config.settings import Settings
from models.captured_emails import CapturedMail, capture_address
from models.crm_webhooks import signature_matches
from models.twilio_signature import signature_matches as twilio_signature_matches
from models.twilio_signature import twilio_signature
from sandbox.messaging.admin import MessagingSandboxAdmin
from sandbox.messaging.sms import create_app as create_sms_app
from sandbox.messaging.smtp_sink import SmtpSink
from sandbox.partners.admin import PartnersSandboxAdmin
from sandbox.serve import ServerThread
from stack import Stack, StackError

OUR_NUMBER = "+15125550100"


def new_number() -> str:
    """A contact number of this test alone: the sandbox is shared by the session."""
    return f"+1512{random.randint(2_000_000, 9_999_999)}"


@pytest.fixture
def admin(sms_sandbox: ServerThread) -> MessagingSandboxAdmin:
    return MessagingSandboxAdmin(sms_sandbox.url)


@pytest.fixture
def twilio(sms_sandbox: ServerThread) -> httpx.Client:
    """The sandbox's default account (the one settings name), as Twilio's API takes it."""
    defaults = Settings()
    return httpx.Client(base_url=f"{sms_sandbox.url}/2010-04-01/Accounts/{defaults.twilio_account_sid}",
                        auth=(defaults.twilio_account_sid, defaults.twilio_auth_token.get_secret_value()))


def send(twilio: httpx.Client, to: str, body: str = "Hi Dana, your estimate is ready.", **form: str) -> httpx.Response:
    return twilio.post("/Messages.json", data={"To": to, "From": OUR_NUMBER, "Body": body, **form})


def test_the_signature_is_twilios_documented_example() -> None:
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234", "From": "+14158675310",
              "To": "+18005551212"}
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, params, "12345") == "GvWf1cFY/Q7PnoempGyD5oXAezc="
    assert twilio_signature_matches(url, list(params.items()), "12345", "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not twilio_signature_matches(url, {**params, "Digits": "1235"}, "12345", "GvWf1cFY/Q7PnoempGyD5oXAezc=")
    assert not twilio_signature_matches(url, params, "12345", None)


def test_a_text_is_answered_in_twilios_shape_and_listed(twilio: httpx.Client, admin: MessagingSandboxAdmin) -> None:
    to = new_number()
    answer = send(twilio, to)
    assert answer.status_code == 201
    message = answer.json()
    assert message["sid"].startswith("SM") and len(message["sid"]) == 34
    assert (message["status"], message["to"], message["from"], message["body"]) == (
        "queued", to, OUR_NUMBER, "Hi Dana, your estimate is ready.")
    assert parsedate_to_datetime(message["date_created"]).tzinfo is not None

    second = send(twilio, to, "Reminder: your estimate expires Friday.").json()
    listed = twilio.get("/Messages.json", params={"To": to, "From": OUR_NUMBER}).json()["messages"]
    assert [m["sid"] for m in listed] == [second["sid"], message["sid"]]  # newest first
    assert twilio.get(f"/Messages/{message['sid']}.json").json()["status"] == "delivered"
    assert [m["body"] for m in admin.texts(to=to)] == ["Reminder: your estimate expires Friday.",
                                                       "Hi Dana, your estimate is ready."]


def test_a_status_callback_gets_twilios_signed_delivered_callback(
        twilio: httpx.Client, admin: MessagingSandboxAdmin, partners_sandbox: ServerThread) -> None:
    name = f"status-{random.randint(0, 10**9)}"
    url = f"{partners_sandbox.url}/hooks/{name}"
    message = send(twilio, new_number(), StatusCallback=url).json()
    assert admin.wait_delivered(message["sid"])["status"] == 200
    received = hook_request(partners_sandbox, name)
    params = parse_qsl(received["body"])
    assert (dict(params)["MessageSid"], dict(params)["MessageStatus"]) == (message["sid"], "delivered")
    assert twilio_signature_matches(url, params, Settings().twilio_auth_token.get_secret_value(),
                                    received["headers"]["x-twilio-signature"])
    assert [m["sid"] for m in admin.texts(from_=OUR_NUMBER, to=message["to"])] == [message["sid"]]


def test_bad_credentials_and_fields_get_twilios_errors(sms_sandbox: ServerThread, twilio: httpx.Client) -> None:
    sid = Settings().twilio_account_sid
    wrong = httpx.post(f"{sms_sandbox.url}/2010-04-01/Accounts/{sid}/Messages.json", auth=(sid, "wrong"),
                       data={"To": new_number(), "From": OUR_NUMBER, "Body": "x"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, 20003)

    def code(**form: str) -> tuple[int, int]:
        answer = twilio.post("/Messages.json", data=form)
        return answer.status_code, answer.json()["code"]

    assert code(From=OUR_NUMBER, Body="x") == (400, 21604)
    assert code(To=new_number(), Body="x") == (400, 21603)
    assert code(To=new_number(), From=OUR_NUMBER) == (400, 21602)
    assert code(To="5125550123", From=OUR_NUMBER, Body="x") == (400, 21211)
    assert code(To=new_number(), From=OUR_NUMBER, Body="x" * 1601) == (400, 21617)


def test_stop_refuses_texts_with_21610_until_start(twilio: httpx.Client, admin: MessagingSandboxAdmin) -> None:
    contact = new_number()
    admin.inbound_sms(contact, OUR_NUMBER, "please stop")  # not a keyword
    assert send(twilio, contact).status_code == 201
    assert admin.inbound_sms(contact, OUR_NUMBER, "  Stop ")["opt_out_type"] == "STOP"
    refused = send(twilio, contact)
    assert refused.status_code == 400
    assert refused.json() == {"code": 21610, "message": "Attempt to send to unsubscribed recipient",
                              "more_info": "https://www.twilio.com/docs/errors/21610", "status": 400}
    assert send(twilio, contact, From="+15125550199").status_code == 201  # opted out of our number only
    admin.inbound_sms(contact, OUR_NUMBER, "START")
    assert send(twilio, contact).status_code == 201
    assert len(admin.texts(to=contact, direction="outbound-api")) == 3


def hook_request(partners_sandbox: ServerThread, name: str, count: int = 1) -> dict[str, Any]:
    requests = PartnersSandboxAdmin(partners_sandbox.url).requests(kind="hook", name=name)
    assert len(requests) == count
    return requests[-1]


def test_an_inbound_text_is_posted_with_a_signature_that_verifies(
        admin: MessagingSandboxAdmin, partners_sandbox: ServerThread) -> None:
    name = f"inbound-sms-{random.randint(0, 10**9)}"
    url = f"{partners_sandbox.url}/hooks/{name}"
    contact = new_number()
    message = admin.inbound_sms(contact, OUR_NUMBER, "STOP", url=url)
    assert admin.wait_delivered(message["sid"])["status"] == 200

    received = hook_request(partners_sandbox, name)
    params = parse_qsl(received["body"], keep_blank_values=True)
    assert received["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert dict(params) == {"MessageSid": message["sid"], "SmsSid": message["sid"], "SmsMessageSid": message["sid"],
                            "AccountSid": Settings().twilio_account_sid, "From": contact, "To": OUR_NUMBER,
                            "Body": "STOP", "NumMedia": "0", "NumSegments": "1", "SmsStatus": "received",
                            "ApiVersion": "2010-04-01", "OptOutType": "STOP"}
    token = Settings().twilio_auth_token.get_secret_value()
    signature = received["headers"]["x-twilio-signature"]
    assert twilio_signature_matches(url, params, token, signature)
    assert not twilio_signature_matches(url, params, "another-token", signature)
    assert not twilio_signature_matches(url + "?x=1", params, token, signature)


def test_an_inbound_email_is_forwarded_signed_as_the_relay_posts_it(
        admin: MessagingSandboxAdmin, partners_sandbox: ServerThread) -> None:
    name = f"inbound-email-{random.randint(0, 10**9)}"
    forwarded = admin.inbound_email("Dana Whitfield <dana@example.com>", "replies@ledgerflow.local",
                                    "Yes, Tuesday works", subject="Re: your estimate",
                                    in_reply_to="<abc@ledgerflow.local>", url=f"{partners_sandbox.url}/hooks/{name}")
    assert admin.wait_delivered(forwarded["message_id"])["status"] == 200
    received = hook_request(partners_sandbox, name)
    assert received["parsed"] == {"message_id": forwarded["message_id"], "from": "Dana Whitfield <dana@example.com>",
                                  "to": "replies@ledgerflow.local", "subject": "Re: your estimate",
                                  "text": "Yes, Tuesday works", "headers": {"In-Reply-To": "<abc@ledgerflow.local>"}}
    secret = Settings().inbound_email_secret.get_secret_value()
    assert signature_matches(secret, received["body"].encode(), received["headers"]["x-ledgerflow-signature"])


def test_the_sink_records_each_message_as_sent(smtp_sink: SmtpSink, admin: MessagingSandboxAdmin) -> None:
    key = f"sink-{random.randint(0, 10**9)}"
    mime = EmailMessage()
    mime["From"], mime["To"], mime["Subject"] = "Acme <no-reply@acme.test>", "dana@example.com", "Your estimate"
    mime["Message-ID"], mime["X-Ledgerflow-Idempotency-Key"] = f"<{key}@acme.test>", key
    mime.set_content("Hi Dana,\nyour estimate is ready.")
    mime.add_alternative("<p>Hi Dana,</p>", subtype="html")
    for _ in range(2):  # a sink, like a real server, dedupes nothing
        with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as smtp:
            smtp.send_message(mime, to_addrs=["dana@example.com"])
    taken = admin.emails(idempotency_key=key)
    assert len(taken) == 2
    assert {k: taken[0][k] for k in ("mail_from", "rcpt_tos", "message_id", "subject", "text", "html")} == {
        "mail_from": "no-reply@acme.test", "rcpt_tos": ["dana@example.com"], "message_id": f"<{key}@acme.test>",
        "subject": "Your estimate", "text": "Hi Dana,\nyour estimate is ready.\n", "html": "<p>Hi Dana,</p>\n"}

    with pytest.raises(smtplib.SMTPRecipientsRefused), smtplib.SMTP(smtp_sink.host, smtp_sink.port) as smtp:
        smtp.send_message(mime, to_addrs=["reject-me@example.com"])


def test_faults_answer_texts_and_emails(sms_sandbox: ServerThread, smtp_sink: SmtpSink,
                                        admin: MessagingSandboxAdmin) -> None:
    sid, token = f"AC{random.getrandbits(128):032x}", "faulty-token"
    admin.add_account(sid, token)
    admin.set_sms_faults(sid, ["500", "drop"], hold_seconds=1.0)
    to = new_number()
    with httpx.Client(base_url=f"{sms_sandbox.url}/2010-04-01/Accounts/{sid}", auth=(sid, token),
                      timeout=0.3) as faulty:
        form = {"To": to, "From": OUR_NUMBER, "Body": "x"}
        failed = faulty.post("/Messages.json", data=form)
        assert (failed.status_code, failed.json()["code"]) == (500, 20500)
        assert admin.texts(to=to) == []
        with pytest.raises(httpx.ReadTimeout):  # dropped: queued, and the answer never comes
            faulty.post("/Messages.json", data=form)
        assert len(admin.texts(to=to)) == 1

    admin.set_email_faults(["500"])
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port) as smtp:
        with pytest.raises(smtplib.SMTPDataError) as error:
            smtp.sendmail("a@acme.test", ["dana@example.com"], b"Subject: x\r\n\r\nx")
        assert error.value.smtp_code == 451


def test_a_busy_messaging_port_names_its_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError) as error:
            Stack(Settings(data_dir=tmp_path, sms_sandbox_port=port)).check_ports()
    assert f"port {port} (SMS sandbox; change it with LEDGERFLOW_SMS_SANDBOX_PORT)" in str(error.value)


CAPTURE_DOMAIN, CAPTURE_SECRET = "capture.ledgerflow.test", "capture-test-secret"


@dataclass
class CaptureRelay:
    """A sink relaying captures to a tiny receiver that keeps each raw body and its headers."""

    sink: SmtpSink
    url: str
    received: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def send(self, mime: EmailMessage, to_addrs: list[str]) -> None:
        with smtplib.SMTP(self.sink.host, self.sink.port) as smtp:
            smtp.send_message(mime, to_addrs=to_addrs)

    def wait_received(self, count: int, timeout: float = 10.0) -> list[tuple[bytes, dict[str, str]]]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.received)


@pytest.fixture
def relay() -> Iterator[CaptureRelay]:
    receiver = FastAPI()
    received: list[tuple[bytes, dict[str, str]]] = []

    @receiver.post("/inbound/email-capture")
    async def capture(request: Request) -> dict[str, str]:
        received.append((await request.body(), dict(request.headers)))
        return {"status": "accepted"}

    with ServerThread(receiver) as api:
        url = f"{api.url}/inbound/email-capture"
        with SmtpSink(capture_domain=CAPTURE_DOMAIN, capture_url=url, capture_secret=CAPTURE_SECRET) as sink:
            yield CaptureRelay(sink, url, received)


def staff_email(subject: str, **headers: str) -> EmailMessage:
    mime = EmailMessage()
    mime["From"], mime["To"], mime["Subject"] = "Acme Austin <office@acme.test>", "Dana <dana@example.com>", subject
    for name, value in headers.items():
        mime[name.replace("_", "-")] = value
    return mime


def test_mail_bcc_to_a_capture_address_is_relayed_signed_and_other_mail_is_not(relay: CaptureRelay) -> None:
    plain = staff_email("Not captured", Message_ID="<plain@acme.test>")
    plain.set_content("Nobody copied the capture address.")
    relay.send(plain, ["dana@example.com"])

    bcc = capture_address("acme-austin", CAPTURE_DOMAIN.upper())  # domains compare case-insensitively
    sent = format_datetime(parsedate_to_datetime("Tue, 17 Nov 2026 15:04:05 -0600"))
    mime = staff_email("Your estimate", Message_ID="<estimate-1@acme.test>", Cc="Sam <sam@acme.test>", Date=sent)
    mime.set_content("Hi Dana,\nyour estimate is attached.")
    mime.add_alternative("<p>Hi Dana,</p>", subtype="html")
    relay.send(mime, ["dana@example.com", "sam@acme.test", bcc])  # the BCC: in the envelope only

    [(body, headers)] = relay.wait_received(1)  # one queue, in order: the plain mail would have come first
    assert signature_matches(CAPTURE_SECRET, body, headers["x-ledgerflow-signature"])
    assert not signature_matches("another-secret", body, headers["x-ledgerflow-signature"])
    assert headers["content-type"] == "application/json"
    mail = CapturedMail.model_validate_json(body)
    assert mail.capture_accounts(CAPTURE_DOMAIN) == ["acme-austin"]
    assert capture_address("acme-austin", CAPTURE_DOMAIN) in mail.recipients
    assert (mail.message_id, mail.sender_address, mail.to, mail.cc, mail.subject) == (
        "<estimate-1@acme.test>", "office@acme.test", ["dana@example.com"], ["sam@acme.test"], "Your estimate")
    assert mail.text == "Hi Dana,\nyour estimate is attached.\n"
    assert mail.sent_at == parsedate_to_datetime(sent)

    assert [m["captured_to"] for m in relay.sink.messages()] == [None, relay.url]
    with ServerThread(create_sms_app(sink=relay.sink)) as sandbox:
        [capture] = MessagingSandboxAdmin(sandbox.url).captures()
    assert (capture["url"], capture["status"], capture["body"]["message_id"]) == (
        relay.url, 200, "<estimate-1@acme.test>")


def test_a_capture_address_in_cc_relays_an_html_only_mail_without_a_message_id(relay: CaptureRelay) -> None:
    mime = staff_email("Re: gutters", Cc=capture_address("acme-austin", CAPTURE_DOMAIN))
    mime.set_content("<style>p {color: red}</style><p>Tuesday works &amp; thanks.</p>", subtype="html")
    relay.send(mime, ["dana@example.com"])  # the relay sees the capture address in the Cc header
    [(body, _headers)] = relay.wait_received(1)
    mail = CapturedMail.model_validate_json(body)
    [recorded] = relay.sink.messages()
    assert (mail.message_id, mail.text, mail.sent_at) == (f"<{recorded['id']}@sandbox>", "Tuesday works & thanks.",
                                                          None)
    assert mail.recipients == ["dana@example.com"] and mail.capture_accounts(CAPTURE_DOMAIN) == ["acme-austin"]
