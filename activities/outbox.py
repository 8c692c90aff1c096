"""Sending exactly once through the outbox (models/outbox.py), for every message and partner call.

Look up the key; `sent` answers the earlier send (`duplicate=True`) without calling anyone. Otherwise claim
the key (`sending`, committed), call the provider, record `sent`. What can go wrong in between, and why this
answer to it:

- The provider surely did not take it (refused the connection, answered 4xx, or 5xx other than a proxy's
  502 or 504): the claim is released
  and the error raised, retryable or not as the answer says.
- The attempt ends without knowing (a timeout or dropped connection after the request went out): the row
  becomes `unknown`. A worker that dies mid-send leaves `sending`.
- A retry that finds `sending` younger than `grace` waits (retryable `SendInFlight`, with a delay): that
  attempt may still be running, as a sync activity's thread outlives its timed-out attempt, and racing it
  could send twice. Every provider call is bounded by its timeout, so an older claim has no live sender.
- A retry that finds `unknown` or a stale `sending` must learn whether the provider took it. Where the
  provider's own API can say (`find`: Twilio's message list, the sheet's rows, Mailbox Power's mailings by
  our reference) it asks, and adopts what it finds instead of sending. Where no API can say (SMTP; webhooks;
  ClubReady), it sends again with the same key (the email's Message-ID and our idempotency header, the
  webhook's `Idempotency-Key`), so a receiver that dedupes by it sees one message. Losing a message silently
  is the worse failure; the duplicate can only happen after a lost answer, and `attempts` counts it.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError

from activities.retry_after import retry_after
from models.db import as_utc
from models.messages import SendKind, Sent
from models.outbox import (
    OutboxMessage,
    claim,
    load_outbox,
    mark_sent,
    mark_unknown,
    release,
    retry_claim,
    utc_now,
)

THROTTLE_WAIT_SECONDS = 30.0  # after a 429 or 408 that says nothing of when to come back


class SendFailed(Exception):
    """The provider did not take the message, or (`maybe_sent`) we cannot tell whether it did."""

    def __init__(self, message: str, type: str, retryable: bool, maybe_sent: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message, self.type, self.retryable, self.maybe_sent = message, type, retryable, maybe_sent
        self.retry_after = retry_after

    def as_activity_error(self) -> ApplicationError:
        delay = timedelta(seconds=self.retry_after) if self.retry_after is not None else None
        return ApplicationError(self.message, type=self.type, non_retryable=not self.retryable,
                                next_retry_delay=delay)


def transport_failure(provider: str, what: str, error: httpx.TransportError) -> SendFailed:
    """No answer. Only a connection never made proves the request was not taken."""
    unsent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return SendFailed(f"{what}: {type(error).__name__}: {error}", f"{provider}Unavailable", retryable=True,
                      maybe_sent=not unsent)


def status_failure(provider: str, what: str, response: httpx.Response) -> SendFailed:
    """An answer that is not a success: 408 and 429 come back later, 5xx is retried, any other 4xx is final.
    None of these took the request, except a 502 or 504: a proxy in front of the provider gave up waiting on
    it, so it may have been taken, as after a lost answer."""
    status = response.status_code
    message = f"{what}: HTTP {status}: {response.text[:200]}"
    if status in (408, 429):
        return SendFailed(message, f"{provider}Throttled", retryable=True,
                          retry_after=retry_after(response, THROTTLE_WAIT_SECONDS))
    if status >= 500:
        return SendFailed(message, f"{provider}Unavailable", retryable=True, maybe_sent=status in (502, 504))
    return SendFailed(message, f"{provider}Refused", retryable=False)


def _sent(row: OutboxMessage, duplicate: bool) -> Sent:
    assert row.sent_at is not None
    return Sent.model_validate({"kind": row.kind, "idempotency_key": row.idempotency_key,
                                "provider_id": row.provider_id, "sent_at": as_utc(row.sent_at),
                                "duplicate": duplicate})


def _attempt(engine: Engine, row: OutboxMessage, send: Callable[[], str | None], earlier_unknown: bool) -> Sent:
    try:
        provider_id = send()
    except SendFailed as failure:
        if failure.maybe_sent or earlier_unknown:
            mark_unknown(engine, row.idempotency_key)
        else:
            release(engine, row.idempotency_key)
        raise failure.as_activity_error() from failure
    except Exception:
        mark_unknown(engine, row.idempotency_key)  # a fault of ours mid-send: the attempt ends not knowing
        raise
    return _sent(mark_sent(engine, row.idempotency_key, provider_id), duplicate=False)


def send_once(engine: Engine, kind: SendKind, key: str, account_id: str, recipient: str,
              send: Callable[[], str | None], grace: timedelta,
              find: Callable[[datetime], str | None] | None = None) -> Sent:
    """Call `send` (which answers the provider's id for the message, or raises SendFailed) at most once per
    key, as far as the provider can tell us; `find(since)` answers the provider's id of a message we sent
    since the first claim, if the provider has one."""
    row = load_outbox(engine, key)
    if row is None:
        claimed = claim(engine, key, kind, account_id, recipient)
        if claimed is not None:
            return _attempt(engine, claimed, send, earlier_unknown=False)
        row = load_outbox(engine, key)  # another attempt claimed it just now
        assert row is not None
    if (row.kind, row.recipient) != (kind, recipient):
        raise ApplicationError(f"idempotency key {key!r} was used for a {row.kind} to {row.recipient}",
                               type="IdempotencyKeyReused", non_retryable=True)
    if row.status == "sent":
        return _sent(row, duplicate=True)
    if row.status == "sending":
        age = utc_now() - as_utc(row.attempted_at)
        if age < grace:
            raise ApplicationError(f"{kind} {key!r} may still be in flight from an attempt that started "
                                   f"{age.total_seconds():.1f}s ago", type="SendInFlight",
                                   next_retry_delay=grace - age)
    if find is not None:
        try:
            found = find(as_utc(row.claimed_at))
        except SendFailed as failure:  # could not look: the row stays as it is for the next attempt
            raise failure.as_activity_error() from failure
        if found is not None:
            return _sent(mark_sent(engine, key, found), duplicate=True)
    claimed = retry_claim(engine, row)
    if claimed is None:
        raise ApplicationError(f"{kind} {key!r} was claimed by another attempt just now", type="SendInFlight",
                               next_retry_delay=grace)
    return _attempt(engine, claimed, send, earlier_unknown=True)
