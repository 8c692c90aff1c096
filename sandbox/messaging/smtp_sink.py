"""An SMTP sink on loopback (aiosmtpd, in its own thread) that takes every message and records it: the
envelope, the headers (Message-ID, our idempotency key), subject, text and HTML parts. Like a real server it
dedupes nothing, so a resend shows up twice.

Faults from a FaultPlan (sandbox/qbo/chaos.py) answer the DATA command: "500" a 451 (try later), "429" a 421,
"timeout" a 451 after holding the client, "drop" records the message and cuts the connection before the 250.
A recipient whose mailbox name starts with "reject" is refused for good (550). The sink's HTTP admin
(`email_routes`) is served by the messaging sandbox's HTTP server.
"""

import asyncio
import itertools
import threading
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import APIRouter

from models.messages import IDEMPOTENCY_HEADER
from sandbox.gateway.app import FaultSettings
from sandbox.qbo.chaos import Fault, FaultPlan
from sandbox.serve import free_port


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    return None if part is None else str(part.get_content()).replace("\r\n", "\n")


def _header(message: EmailMessage, name: str) -> str | None:
    value = message[name]
    return None if value is None else str(value)


def parsed(envelope: Envelope, number: int) -> dict[str, Any]:
    """A message as the tests and the admin see it."""
    raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
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
    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host, self.port = host, port or free_port()
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
        with self._lock:
            message = parsed(envelope, next(self._numbers))
            self._messages.append(message)
            return message

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
    """The sink's admin: list and clear what it took, set its faults."""
    router = APIRouter(prefix="/admin/emails")

    @router.get("")
    def list_emails(to: str | None = None, idempotency_key: str | None = None) -> list[dict[str, Any]]:
        return sink.messages(to, idempotency_key)

    @router.delete("")
    def clear_emails() -> dict[str, int]:
        count = len(sink.messages())
        sink.clear()
        return {"cleared": count}

    @router.put("/faults")
    def set_email_faults(settings: FaultSettings) -> dict[str, object]:
        """Replace the sink's fault plan: {"queued": ["drop"], "rates": {"500": 0.1}, "hold_seconds": 5}."""
        sink.faults = FaultPlan(**settings.model_dump())
        return sink.faults.describe()

    return router
