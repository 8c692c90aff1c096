"""A client for the messaging sandbox's admin surface: what the tests and the demo do as the contacts (reply by
text or email, text STOP) and as the providers' consoles (accounts, faults, what was sent)."""

import time
from typing import Any
from urllib.parse import quote

from sandbox.admin_client import SandboxAdminClient


class MessagingSandboxAdmin(SandboxAdminClient):
    @staticmethod
    def _given(**params: str | None) -> dict[str, str]:
        return {name: value for name, value in params.items() if value is not None}

    # -- email (the SMTP sink) -----------------------------------------------------------------------------
    def emails(self, to: str | None = None, idempotency_key: str | None = None) -> list[dict[str, Any]]:
        """Every message the sink took, oldest first: envelope, headers, subject, text and html."""
        return list(self._call("GET", "/emails", params=self._given(to=to, idempotency_key=idempotency_key)))

    def clear_emails(self) -> None:
        self._call("DELETE", "/emails")

    def captures(self) -> list[dict[str, Any]]:
        """Each message the sink relayed to the capture URL: `url`, final `status` (0: no answer), `body` (the
        CapturedMail JSON), oldest first."""
        return list(self._call("GET", "/emails/captures"))

    def set_email_faults(self, queued: list[str] | None = None, rates: dict[str, float] | None = None,
                         hold_seconds: float = 5.0, latency_seconds: float = 0.0) -> None:
        """`queued` faults ("500", "429", "timeout", "drop") answer the next messages' DATA in order."""
        self._call("PUT", "/emails/faults", {"queued": queued or [], "rates": rates or {},
                                             "hold_seconds": hold_seconds, "latency_seconds": latency_seconds})

    # -- texts (Twilio) ------------------------------------------------------------------------------------
    def texts(self, to: str | None = None, from_: str | None = None, account_sid: str | None = None,
              direction: str | None = None) -> list[dict[str, Any]]:
        """Texts newest first; `direction` "outbound-api" (ours) or "inbound" (the contacts')."""
        return list(self._call("GET", "/messages", params=self._given(to=to, account_sid=account_sid,
                                                                      direction=direction, **{"from": from_})))

    def add_account(self, account_sid: str, auth_token: str) -> None:
        self._call("PUT", f"/accounts/{quote(account_sid)}", {"auth_token": auth_token})

    def set_sms_faults(self, account_sid: str, queued: list[str] | None = None,
                       rates: dict[str, float] | None = None, hold_seconds: float = 5.0,
                       latency_seconds: float = 0.0) -> None:
        self._call("PUT", f"/accounts/{quote(account_sid)}/faults",
                   {"queued": queued or [], "rates": rates or {}, "hold_seconds": hold_seconds,
                    "latency_seconds": latency_seconds})

    # -- the contacts' replies -----------------------------------------------------------------------------
    def inbound_sms(self, from_: str, to: str, body: str, url: str | None = None,
                    account_sid: str | None = None) -> dict[str, Any]:
        """The contact `from_` texts our number `to`; Twilio's signed webhook goes to `url` (or the sandbox's
        configured inbound SMS URL). The recorded message, its `sid` and `webhook_url`."""
        return dict(self._call("POST", "/inbound", {"from": from_, "to": to, "body": body, "url": url,
                                                    "account_sid": account_sid}))

    def inbound_email(self, from_: str, to: str, body: str, subject: str = "", in_reply_to: str | None = None,
                      headers: dict[str, str] | None = None, url: str | None = None) -> dict[str, Any]:
        """The contact emails us; forwarded, signed, to `url` (or the configured inbound email URL) as
        `{message_id, from, to, subject, text, headers}`. The forwarded body and `webhook_url`."""
        return dict(self._call("POST", "/inbound-email", {"from": from_, "to": to, "subject": subject, "body": body,
                                                          "in_reply_to": in_reply_to, "headers": headers or {},
                                                          "url": url}))

    def deliveries(self) -> list[dict[str, Any]]:
        """Each webhook the sandbox posted, with the final status it got (0: no answer)."""
        return list(self._call("GET", "/deliveries"))

    def wait_delivered(self, marker: str, timeout: float = 15.0) -> dict[str, Any]:
        """The delivery whose body carries `marker` (an inbound text's sid, an email's message_id), once its
        retries are over."""
        deadline = time.monotonic() + timeout
        while True:
            found = [d for d in self.deliveries() if marker in d["body"]]
            if found:
                return found[-1]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no delivery carrying {marker!r} within {timeout}s")
            time.sleep(0.05)
