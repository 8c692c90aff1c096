"""The only code that talks to Twilio's Messages API (the SMS sandbox answers the same): send a text, and
find one we sent. HTTP Basic auth with the account SID and auth token from settings; one call per attempt, no
retries inside (Temporal retries, through the outbox).

Twilio documents no idempotency key for sending, so a send whose answer was lost is found again by listing
the account's messages to the number from our number, newest first, back to the outbox claim: the same body
there is ours. (Twilio's smart encoding could alter a body's characters; plan texts are plain.)
"""

from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from activities.outbox import SendFailed, status_failure, transport_failure
from activities.tls import TLS

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient": final, the number texted STOP
PROVIDER = "Twilio"
LOOKBACK_PAGE = 50


class RecipientOptedOut(SendFailed):
    """Twilio refused: the number opted out (error 21610). Never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "ContactOptedOut", retryable=False)


class TwilioClient:
    def __init__(self, base_url: str, account_sid: str, auth_token: str, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}",
                                  auth=(account_sid, auth_token), timeout=timeout, transport=transport, verify=TLS,
                                  headers={"Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "TwilioClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise transport_failure(PROVIDER, what, error) from error
        if response.status_code < 300:
            return dict(response.json())
        failure = status_failure(PROVIDER, what, response)
        try:
            code = response.json().get("code")
        except ValueError:
            code = None
        if code == OPTED_OUT:
            raise RecipientOptedOut(failure.message) from None
        raise failure

    def send(self, to: str, from_: str, body: str, status_callback: str | None = None) -> str:
        """Queue a text; Twilio's message SID."""
        form = {"To": to, "From": from_, "Body": body, **({"StatusCallback": status_callback}
                                                          if status_callback else {})}
        return str(self._call("POST", "/Messages.json", f"Twilio send to {to}", data=form)["sid"])

    def find_sent(self, to: str, from_: str, body: str, since: datetime) -> str | None:
        """The SID of a text with this body sent to `to` from `from_` since `since`, if there is one."""
        listed = self._call("GET", "/Messages.json", f"Twilio messages to {to}",
                            params={"To": to, "From": from_, "PageSize": LOOKBACK_PAGE})
        earliest = since - timedelta(seconds=1)  # Twilio's times are whole seconds
        for message in listed.get("messages", []):
            if parsedate_to_datetime(message["date_created"]) < earliest:
                return None  # newest first: the rest are older than our claim
            if message.get("body") == body:
                return str(message["sid"])
        return None
