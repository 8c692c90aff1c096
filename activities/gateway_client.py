"""The only code that talks to the payment gateway: Stax's API over httpx.

The merchant's API key on every call (`Authorization: Bearer`), loaded per account from the database; money as
Decimal both ways (sent as strings of cents, read with every JSON number parsed exactly, never as a float); a
timeout on every call. Timeouts, refused connections and 5xx are retried here a few times and then raised as
`GatewayUnavailable`; that is safe for writes only because every write carries an idempotency_id, which the
gateway answers with the original transaction. A 429 is raised at once with its wait (`GatewayThrottled`), so
the activity can ask Temporal for a later retry instead of holding a worker slot. Anything else the gateway
answers is final: a decline (HTTP 200 with `success: false`), a bad key (401), an unknown transaction (404),
refused parameters or an idempotency_id reused with other parameters (422).
"""

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine

from activities.retry_after import retry_after
from activities.tls import TLS
from config.settings import Settings
from models.gateway_credentials import load_gateway_credentials
from models.money import cents

THROTTLE_WAIT_SECONDS = 60.0  # after a 429 without Retry-After
PAGE = 200


class GatewayError(Exception):
    """The gateway answered and refused: the same request would get the same answer."""

    def __init__(self, message: str, status: int = 0, body: Any = None) -> None:
        super().__init__(message)
        self.message, self.status, self.body = message, status, body


class GatewayDeclined(GatewayError):
    """The bank declined the charge; the declined transaction is kept by the gateway and is in `transaction`."""

    def __init__(self, message: str, transaction: dict[str, Any]) -> None:
        super().__init__(message, 200, transaction)
        self.transaction = transaction


class GatewayUnauthorized(GatewayError):
    """401: the API key is wrong or revoked (or none is stored for the account)."""


class GatewayNotFound(GatewayError):
    """404: no such transaction for this merchant."""


class GatewayIdempotencyConflict(GatewayError):
    """The idempotency_id was used before with other parameters: a bug in the caller, never retried."""


class GatewayUnavailable(Exception):
    """No useful answer (timeouts, refused connections, 5xx) after every retry: try again later."""


class GatewayThrottled(GatewayUnavailable):
    """429: over the gateway's per-IP limits; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _exact(value: Any) -> str:
    """Decimals go out as strings, exactly."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot send {type(value).__name__} to the gateway")


def _messages(body: Any) -> str:
    """Stax's error bodies: `{"error": "..."}` or `{"field": ["message", ...]}`."""
    if isinstance(body, dict):
        return "; ".join(f"{k}: {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in body.items())
    return str(body)[:200]


class GatewayClient:
    def __init__(self, base_url: str, api_key: str, timeout: float = 30.0, retries: int = 2,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, transport=transport, verify=TLS,
                                  headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"})
        self.retries = retries

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GatewayClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, Any] | None = None) -> Any:
        """One API call, retried on timeouts, refused connections and 5xx; the answer's JSON, numbers exact."""
        what = f"gateway {method} {path}"
        content = json.dumps(body, default=_exact).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, content=content, params=params, headers=headers)
            except httpx.TransportError as error:
                failure = GatewayUnavailable(f"{what}: {error.__class__.__name__}: {error}")
            else:
                if response.status_code == 429:
                    raise GatewayThrottled(f"{what}: HTTP 429, over the gateway's limits",
                                           retry_after(response, THROTTLE_WAIT_SECONDS))
                if response.status_code < 500:
                    return self._answer(what, response)
                failure = GatewayUnavailable(f"{what}: HTTP {response.status_code}")
            if attempt == self.retries:
                raise failure
            time.sleep(min(0.2 * 2**attempt, 5))
        raise AssertionError("unreachable")

    @staticmethod
    def _answer(what: str, response: httpx.Response) -> Any:
        try:
            body = json.loads(response.content, parse_float=Decimal)
        except ValueError as error:
            if response.status_code < 400:  # a charge may have gone through: ask again (same idempotency_id)
                raise GatewayUnavailable(f"{what}: HTTP {response.status_code}, not JSON") from error
            raise GatewayError(f"{what}: HTTP {response.status_code}, not JSON", response.status_code) from error
        status = response.status_code
        if status < 400:
            return body
        message = f"{what}: HTTP {status}: {_messages(body)}"
        if status == 401:
            raise GatewayUnauthorized(message, status, body)
        if status == 404:
            raise GatewayNotFound(message, status, body)
        if status == 422 and isinstance(body, dict) and "idempotency_id" in body:
            raise GatewayIdempotencyConflict(message, status, body)
        raise GatewayError(message, status, body)

    # -- Stax's calls --------------------------------------------------------------------------------------
    def charge(self, payment_method_id: str, total: Decimal, idempotency_id: str, meta: dict[str, Any] | None = None,
               invoice_id: str | None = None, pre_auth: bool = False) -> dict[str, Any]:
        """Charge `total` dollars (a Decimal; floats are refused). The transaction, or GatewayDeclined. A repeat
        with the same idempotency_id returns the original transaction and charges nothing more."""
        body: dict[str, Any] = {"payment_method_id": payment_method_id, "total": str(cents(total)),
                                "pre_auth": pre_auth, "idempotency_id": idempotency_id}
        if meta:
            body["meta"] = meta
        if invoice_id is not None:
            body["invoice_id"] = invoice_id
        transaction = dict(self._call("POST", "/charge", body))
        if not transaction.get("success"):
            raise GatewayDeclined(f"gateway declined the charge {transaction.get('id')}: "
                                  f"{transaction.get('message') or 'no reason given'}", transaction)
        return transaction

    def transaction(self, transaction_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/transaction/{transaction_id}"))

    def transactions(self, payment_method_id: str | None = None) -> Iterator[dict[str, Any]]:
        """Every transaction of the merchant (of one payment method), oldest first, page by page."""
        page = 1
        while True:
            params = {"page": page, "per_page": PAGE, **({"payment_method_id": payment_method_id}
                                                         if payment_method_id else {})}
            answer = self._call("GET", "/transaction", params=params)
            yield from answer["data"]
            if page >= int(answer["last_page"]):
                return
            page += 1

    def surcharge_review(self, payment_method_id: str, total: Decimal) -> dict[str, Any]:
        """What the gateway would add to a charge of `total` (a Decimal) to the payment method, before charging:
        `{"bin_type": "CREDIT" | "ACH", "surcharge_rate", "surcharge_amount", "total_with_surcharge"}`, the
        money as Decimal cents and the rate (a percent) as Decimal. The surcharge is the gateway's: a charge
        still sends `total` only. A read, so it carries no idempotency_id."""
        answer = dict(self._call("GET", "/surcharge/review",
                                 params={"payment_method_id": payment_method_id, "total": str(cents(total))}))
        return {**answer, "surcharge_rate": Decimal(answer["surcharge_rate"]),
                "surcharge_amount": cents(answer["surcharge_amount"]),
                "total_with_surcharge": cents(answer["total_with_surcharge"])}

    def void_or_refund(self, transaction_id: str, idempotency_id: str,
                       total: Decimal | None = None) -> dict[str, Any]:
        """Void before settlement (in full), refund after (all that is left when `total` is None). The charge
        as it stands after, its void or refunds among its child_transactions."""
        body: dict[str, Any] = {"idempotency_id": idempotency_id}
        if total is not None:
            body["total"] = str(cents(total))
        return dict(self._call("POST", f"/transaction/{transaction_id}/void-or-refund", body))


def gateway_client_for(settings: Settings, engine: Engine, account_id: str) -> GatewayClient:
    """A client with the account's own API key, from the database."""
    credentials = load_gateway_credentials(engine, account_id)
    if credentials is None:
        raise GatewayUnauthorized(f"no gateway API key stored for account {account_id}")
    return GatewayClient(settings.gateway_api_url, credentials.api_key,
                         timeout=settings.gateway_http_timeout_seconds, retries=settings.gateway_retries)
