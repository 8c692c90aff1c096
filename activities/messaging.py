"""Messaging activities: send an email over SMTP, send a text through Twilio. The text of both was rendered
before; these only deliver it, once per idempotency key (activities/outbox.py says how that holds across
retries and crashes).

Email carries a Message-ID derived from the key and an `X-Ledgerflow-Idempotency-Key` header. SMTP has no way
to ask whether a message was taken, so a retry after a lost answer sends it again with the same Message-ID,
which mailbox providers collapse and replies thread on. A text is never sent to a number that opted out:
refused here (`ContactOptedOut`, final) before Twilio is asked, and when Twilio refuses with 21610 the
opt-out is recorded so no plan tries that number again.
"""

import hashlib
import smtplib
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, parseaddr
from typing import Any

from sqlalchemy import Engine
from temporalio import activity

from activities.outbox import SendFailed, send_once
from activities.sms_client import RecipientOptedOut, TwilioClient
from config.settings import Settings
from models.messages import IDEMPOTENCY_HEADER, EmailMessage, Sent, TextMessage
from models.opt_outs import is_opted_out, set_opt_out


def message_id(idempotency_key: str, sender: str) -> str:
    """The same key always gives the same Message-ID, at the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "ledgerflow.local"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}@{domain}>"


def mime_message(message: EmailMessage, sender: str) -> MimeMessage:
    """Plain text, with the HTML as its alternative when there is one."""
    mime = MimeMessage()
    mime["From"] = sender
    mime["To"] = message.to
    mime["Subject"] = message.subject
    mime["Date"] = formatdate(localtime=False)
    mime["Message-ID"] = message_id(message.idempotency_key, sender)
    mime[IDEMPOTENCY_HEADER] = message.idempotency_key
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    mime.set_content(message.text)
    if message.html is not None:
        mime.add_alternative(message.html, subtype="html")
    return mime


def _smtp_refusal(what: str, code: int, reply: Any) -> SendFailed:
    """A 4xx reply is a "try later", a 5xx is final; either way the server did not take the message."""
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    retryable = 400 <= code < 500
    return SendFailed(f"{what}: {code} {text}", "EmailUnavailable" if retryable else "EmailRefused", retryable)


class MessagingActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.grace = timedelta(seconds=3 * settings.messaging_http_timeout_seconds)

    def _smtp_send(self, mime: MimeMessage, to: str) -> None:
        s = self.settings
        what = f"SMTP {s.smtp_host}:{s.smtp_port} to {to}"
        smtp = smtplib.SMTP(timeout=s.messaging_http_timeout_seconds)
        try:  # nothing is sent before the envelope: any failure here is a clean "not sent"
            code, greeting = smtp.connect(s.smtp_host, s.smtp_port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, greeting)
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
        except smtplib.SMTPResponseException as error:
            smtp.close()
            raise _smtp_refusal(what, error.smtp_code, error.smtp_error) from error
        except (OSError, smtplib.SMTPException) as error:
            smtp.close()
            raise SendFailed(f"{what}: {type(error).__name__}: {error}", "EmailUnavailable", True) from error
        with smtp:
            try:
                smtp.send_message(mime, from_addr=parseaddr(s.smtp_from)[1], to_addrs=[to])
            except smtplib.SMTPRecipientsRefused as error:
                code, reply = error.recipients[to]
                raise _smtp_refusal(what, code, reply) from error
            except smtplib.SMTPResponseException as error:
                raise _smtp_refusal(what, error.smtp_code, error.smtp_error) from error
            except (OSError, smtplib.SMTPException) as error:  # cut off mid-transaction: it may have been taken
                raise SendFailed(f"{what}: {type(error).__name__}: {error}", "EmailUnavailable", True,
                                 maybe_sent=True) from error

    @activity.defn(name="send_email")
    def send_email(self, message: EmailMessage) -> Sent:
        """Send once per key; `provider_id` is the Message-ID (replies carry it in In-Reply-To)."""
        mime = mime_message(message, self.settings.smtp_from)

        def send() -> str:
            self._smtp_send(mime, message.to)
            return str(mime["Message-ID"])

        return send_once(self.engine, "email", message.idempotency_key, message.account_id, message.to, send,
                         self.grace)

    @activity.defn(name="send_text")
    def send_text(self, message: TextMessage) -> Sent:
        """Send once per key from the account's number, never to an opted-out one; `provider_id` is
        Twilio's message SID."""
        s = self.settings
        sender = s.twilio_from_number
        with TwilioClient(s.sms_api_url, s.twilio_account_sid, s.twilio_auth_token.get_secret_value(),
                          timeout=s.messaging_http_timeout_seconds) as twilio:

            def send() -> str:
                if is_opted_out(self.engine, message.to):
                    raise SendFailed(f"{message.to} opted out of texts", "ContactOptedOut", retryable=False)
                try:
                    return twilio.send(message.to, sender, message.body)
                except RecipientOptedOut:
                    set_opt_out(self.engine, message.to, True, "twilio:21610")
                    raise

            def find(since: datetime) -> str | None:
                return twilio.find_sent(message.to, sender, message.body, since)

            return send_once(self.engine, "text", message.idempotency_key, message.account_id, message.to, send,
                             self.grace, find)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.send_email, self.send_text]
