"""An SMTP sink on loopback (aiosmtpd, in its own thread) that takes every message and records it: the
envelope, the headers (Message-ID, our idempotency key), subject, text and HTML parts. Like a real server it
dedupes nothing, so a resend shows up twice.

Faults from a FaultPlan (sandbox/qbo/chaos.py) answer the DATA command: "500" a 451 (try later), "429" a 421,
"timeout" a 451 after holding the client, "drop" records the message and cuts the connection before the 250.
A recipient whose mailbox name starts with "reject" is refused for good (550). The sink's HTTP admin
(`email_routes`) is served by the messaging sandbox's HTTP server.

It is also the sandbox's parsed-mail relay for the capture addresses (models/captured_emails.py): a message
taken with a recipient at the capture domain (envelope RCPT TO, where a BCC shows, or To/Cc) is POSTed to the
capture URL as CapturedMail JSON, signed `X-Ledgerflow-Signature` with the inbound email secret, from a
background thread and retried until answered (sandbox/delivery.py), so the SMTP answer never waits on it.
Whatever is taken is forwarded, a "drop" too: the server took it, as a real one would.
"""

import asyncio
import itertools
import re
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses, parsedate_to_datetime
from html import unescape
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import APIRouter

from models.messages import IDEMPOTENCY_HEADER
from sandbox.delivery import WebhookDelivery
from sandbox.injected import FaultSettings
from sandbox.qbo.chaos import Fault, FaultPlan
from sandbox.serve import free_port


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    return None if part is None else str(part.get_content()).replace("\r\n", "\n")


def _header(message: EmailMessage, name: str) -> str | None:
    value = message[name]
    return None if value is None else str(value)


_UNSEEN = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _stripped(html: str) -> str:
    """The text of an HTML-only mail, as a parsed-mail relay gives it: tags (and what is never shown) dropped."""
    return unescape(_TAG.sub("", _UNSEEN.sub("", html))).strip()


def _addresses(message: EmailMessage, name: str) -> list[str]:
    """Every address in the message's `name` headers, without display names."""
    return [address for _, address in getaddresses([str(v) for v in message.get_all(name, [])]) if address]


def _sent_at(message: EmailMessage) -> str | None:
    """The Date header in ISO 8601 ("-0000", no known zone, read as UTC); None when missing or unreadable."""
    if message["Date"] is None:
        return None
    try:
        sent = parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        return None
    return (sent if sent.tzinfo else sent.replace(tzinfo=UTC)).isoformat()


def _email(envelope: Envelope) -> EmailMessage:
    raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def captured_mail(message: EmailMessage, recorded: dict[str, Any]) -> dict[str, Any]:
    """The recorded message as the parsed-mail relay posts it (models/captured_emails.py CapturedMail)."""
    return {"message_id": recorded["message_id"] or f"<{recorded['id']}@sandbox>",
            "from": recorded["from"] or recorded["mail_from"], "to": _addresses(message, "To"),
            "cc": _addresses(message, "Cc"), "recipients": recorded["rcpt_tos"], "subject": recorded["subject"] or "",
            "text": recorded["text"] if recorded["text"] is not None else _stripped(recorded["html"] or ""),
            "sent_at": _sent_at(message)}


def parsed(envelope: Envelope, message: EmailMessage, number: int) -> dict[str, Any]:
    """A message as the tests and the admin see it."""
    return {"id": f"sink-{number}", "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos),
            "message_id": _header(message, "Message-ID"), "idempotency_key": _header(message, IDEMPOTENCY_HEADER),
            "from": _header(message, "From"), "to": _header(message, "To"), "reply_to": _header(message, "Reply-To"),
            "subject": _header(message, "Subject"), "headers": {name: str(value) for name, value in message.items()},
            "text": _part(message, "plain"), "html": _part(message, "html")}


class _Handler:
    def __init__(self, sink: "SmtpSink") -> None:
        self.sink = sink

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.partition("@")[0].lower().startswith("reject"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        plan = self.sink.faults
        if plan.latency_seconds:
            await asyncio.sleep(plan.latency_seconds)
        fault = plan.next_fault(write=True)
        if fault == Fault.SERVER_ERROR:
            return "451 4.3.0 Temporary failure (injected by the sandbox)"
        if fault == Fault.THROTTLE:
            return "421 4.7.0 Too many messages, try again later (injected by the sandbox)"
        if fault == Fault.TIMEOUT:
            await asyncio.sleep(plan.hold_seconds)
            return "451 4.4.2 Timeout (injected by the sandbox)"
        recorded = self.sink.record(envelope)
        if fault == Fault.DROP and server.transport is not None:
            server.transport.close()  # taken, and the 250 never reaches the client
        return f"250 2.0.0 Ok: queued as {recorded['id']}"


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int | None = None, capture_domain: str | None = None,
                 capture_url: str | None = None, capture_secret: str | None = None,
                 delivery: WebhookDelivery | None = None) -> None:
        """Mail to `capture_domain` is posted to `capture_url` signed with `capture_secret` (none without a URL)."""
        if capture_url and not (capture_domain and capture_secret):
            raise ValueError("a capture URL needs the capture domain and the secret to sign with")
        self.host, self.port = host, port or free_port()
        self.capture_domain = capture_domain.lower() if capture_domain else None
        self.capture_url, self.capture_secret = capture_url, capture_secret
        self.delivery = delivery or WebhookDelivery()
        self.faults = FaultPlan()
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []
        self._numbers = itertools.count(1)
        self._controller = Controller(_Handler(self), hostname=host, port=self.port, enable_SMTPUTF8=True,
                                      ready_timeout=10)

    def start(self) -> "SmtpSink":
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> "SmtpSink":
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def record(self, envelope: Envelope) -> dict[str, Any]:
        """Keep the message and, when it reached a capture address, hand it to the relay's delivery."""
        email = _email(envelope)
        with self._lock:
            message = parsed(envelope, email, next(self._numbers))
            message["captured_to"] = self._relay(email, message)
            self._messages.append(message)
            return message

    def _relay(self, email: EmailMessage, message: dict[str, Any]) -> str | None:
        """Queue the CapturedMail post when the message is for a capture address: the URL it goes to, or None.
        Only queued (the delivery's thread posts it), so the SMTP answer does not wait on the receiver."""
        url, secret, domain = self.capture_url, self.capture_secret, self.capture_domain
        if not (url and secret and domain):
            return None
        body = captured_mail(email, message)
        if not any(a.rpartition("@")[2].lower() == domain for a in [*body["recipients"], *body["to"], *body["cc"]]):
            return None
        self.delivery.send_signed(url, body, secret)
        return url

    def captures(self) -> list[dict[str, Any]]:
        """Each capture posted so far (its retries over): URL, final status (0: no answer), body."""
        return self.delivery.delivered_json(self.capture_url) if self.capture_url else []

    def messages(self, to: str | None = None, idempotency_key: str | None = None) -> list[dict[str, Any]]:
        """Every message taken, oldest first (to one envelope recipient, carrying one key)."""
        with self._lock:
            return [dict(m) for m in self._messages
                    if (to is None or to in m["rcpt_tos"])
                    and (idempotency_key is None or m["idempotency_key"] == idempotency_key)]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()


def email_routes(sink: SmtpSink) -> APIRouter:
    """The sink's admin: list and clear what it took, see what it relayed, set its faults."""
    router = APIRouter(prefix="/admin/emails")

    @router.get("")
    def list_emails(to: str | None = None, idempotency_key: str | None = None) -> list[dict[str, Any]]:
        return sink.messages(to, idempotency_key)

    @router.delete("")
    def clear_emails() -> dict[str, int]:
        count = len(sink.messages())
        sink.clear()
        return {"cleared": count}

    @router.get("/captures")
    def list_captures() -> list[dict[str, Any]]:
        """What was relayed to the capture URL and the answers it got."""
        return sink.captures()

    @router.put("/faults")
    def set_email_faults(settings: FaultSettings) -> dict[str, object]:
        """Replace the sink's fault plan: {"queued": ["drop"], "rates": {"500": 0.1}, "hold_seconds": 5}."""
        sink.faults = FaultPlan(**settings.model_dump())
        return sink.faults.describe()

    return router
