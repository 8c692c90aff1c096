"""Gateway activities: charge a payment method, look at a transaction (has the ACH debit settled, was it
returned?), void or refund. Each loads the merchant account's API key from the database by account id.

Exactly once through the gateway's idempotency_id, which the caller derives from the business key and the
step: a retry after a lost answer gets the original transaction back. Final answers (a decline, a bad key, an
unknown transaction, refused parameters, an idempotency_id reused with other parameters) are non-retryable
ApplicationErrors typed by what happened; outages are retryable, and after a 429 Temporal waits as long as the
gateway asked before trying again.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gateway_client import (
    GatewayDeclined,
    GatewayError,
    GatewayThrottled,
    GatewayUnavailable,
    gateway_client_for,
)
from config.settings import Settings
from models.gateway import ChargeMeta, ChargeRequest, GatewayCharge, TransactionRef, VoidOrRefundRequest
from models.money import cents


def _moment(value: str | None) -> datetime | None:
    """Stax's times are UTC, with or without an offset."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def charge_from_transaction(transaction: dict[str, Any]) -> GatewayCharge:
    """A Stax charge as Ledgerflow sees it. A child void on an unsettled charge is a void; on a settled one it
    is an ACH return (Stax voids only before settlement)."""
    settled_at = _moment(transaction.get("settled_at"))
    voided = any(child.get("type") == "void" and child.get("success", True)
                 for child in transaction.get("child_transactions") or [])
    return GatewayCharge(transaction_id=str(transaction["id"]), success=bool(transaction["success"]),
                         method=transaction["method"], total=cents(transaction["total"]),
                         total_refunded=cents(transaction.get("total_refunded") or 0),
                         surcharge=cents(transaction.get("surcharge") or 0),
                         settled=settled_at is not None, settled_at=settled_at,
                         voided=voided and settled_at is None, returned=voided and settled_at is not None,
                         message=transaction.get("message") or None)


def stax_meta(meta: ChargeMeta) -> dict[str, Any]:
    """Stax's `meta`: amounts as strings of cents, `lineItems` in its spelling; empty parts left out."""
    body = meta.model_dump(mode="json", exclude_none=True, exclude={"line_items"})
    if meta.line_items:
        body["lineItems"] = [item.model_dump(mode="json") for item in meta.line_items]
    return body


@contextmanager
def _as_activity_errors() -> Iterator[None]:
    """Gateway answers as Temporal should treat them."""
    try:
        yield
    except GatewayThrottled as error:
        raise ApplicationError(str(error), type="GatewayThrottled",
                               next_retry_delay=timedelta(seconds=max(error.retry_after, 0.01))) from error
    except GatewayUnavailable as error:
        raise ApplicationError(str(error), type="GatewayUnavailable") from error
    except GatewayDeclined as error:
        declined = error.transaction
        raise ApplicationError(str(error), {"transaction_id": declined.get("id"), "message": declined.get("message")},
                               type="GatewayDeclined", non_retryable=True) from error
    except GatewayError as error:
        raise ApplicationError(str(error), type=type(error).__name__, non_retryable=True) from error


class GatewayActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    @activity.defn(name="gateway_charge")
    def charge(self, input: ChargeRequest) -> GatewayCharge:
        """Charge once per idempotency_id. A decline is final (type GatewayDeclined, the declined transaction's
        id and message in the details); the same id sent again returns the same transaction."""
        with _as_activity_errors(), gateway_client_for(self.settings, self.engine, input.account_id) as gateway:
            transaction = gateway.charge(input.payment_method_id, input.total, input.idempotency_id,
                                         meta=stax_meta(input.meta), invoice_id=input.invoice_id,
                                         pre_auth=input.pre_auth)
        charged = charge_from_transaction(transaction)
        if charged.total != input.total:  # never record an amount other than the one that moved
            raise ApplicationError(f"gateway charged {charged.total} for {input.idempotency_id}, not {input.total}",
                                   type="GatewayAmountMismatch", non_retryable=True)
        return charged

    @activity.defn(name="gateway_transaction_status")
    def transaction_status(self, input: TransactionRef) -> GatewayCharge:
        """The charge as the gateway sees it now: settled, voided, refunded, returned."""
        with _as_activity_errors(), gateway_client_for(self.settings, self.engine, input.account_id) as gateway:
            return charge_from_transaction(gateway.transaction(input.transaction_id))

    @activity.defn(name="gateway_void_or_refund")
    def void_or_refund(self, input: VoidOrRefundRequest) -> GatewayCharge:
        """Void before settlement (in full), refund after (partial allowed); once per idempotency_id. The
        charge as it stands after."""
        with _as_activity_errors(), gateway_client_for(self.settings, self.engine, input.account_id) as gateway:
            return charge_from_transaction(gateway.void_or_refund(input.transaction_id, input.idempotency_id,
                                                                  input.total))

    def activities(self) -> list[Callable[..., Any]]:
        return [self.charge, self.transaction_status, self.void_or_refund]
