"""The gateway adapter (activities/gateway_client.py, activities/gateway.py) against the gateway sandbox over
HTTP: the merchant's key comes from its encrypted row, a lost answer and the retry charge exactly once, a
decline is final, outages and 429s are retried as Temporal would, a surcharge is previewed and never changes
the total Ledgerflow records."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, text
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.gateway import GatewayActivities
from activities.gateway_client import (
    GatewayClient,
    GatewayDeclined,
    GatewayError,
    GatewayUnauthorized,
    gateway_client_for,
)
from config.settings import Settings
from models.gateway import ChargeMeta, ChargeRequest, TransactionRef, VoidOrRefundRequest
from models.gateway_credentials import save_gateway_credentials
from sandbox.gateway.admin import GatewaySandboxAdmin
from sandbox.serve import ServerThread

T = TypeVar("T")
ACCOUNT = "acme"  # the franchisor of the example network: its gateway account collects royalty


@pytest.fixture
def gateway_settings(settings: Settings, gateway_sandbox: ServerThread) -> Settings:
    """The test's sandbox, a short client timeout (a dropped answer costs half a second) and no retries
    inside an attempt, so every retry is Temporal's."""
    return settings.model_copy(update={"gateway_http_timeout_seconds": 0.5, "gateway_retries": 0})


@dataclass
class Merchant:
    merchant_id: str
    api_key: str
    admin: GatewaySandboxAdmin

    def bank(self, fails: str | None = None) -> str:
        return str(self.admin.add_payment_method(self.merchant_id, "bank", "Acme of Austin", fails)["id"])

    def card(self, fails: str | None = None) -> str:
        return str(self.admin.add_payment_method(self.merchant_id, "card", "Dana Whitfield", fails)["id"])

    def charges(self) -> list[dict[str, Any]]:
        return self.admin.charges(self.merchant_id)


@pytest.fixture
def merchant(gateway_settings: Settings, engine: Engine) -> Merchant:
    """A fresh merchant in the sandbox, its API key stored (encrypted) for the franchisor's account."""
    admin = GatewaySandboxAdmin(gateway_settings.gateway_api_url)
    created = admin.create_merchant("Acme Franchising", f"acme-{uuid.uuid4().hex[:8]}")
    save_gateway_credentials(engine, ACCOUNT, created["api_key"])
    return Merchant(created["id"], created["api_key"], admin)


@pytest.fixture
def gateway_activities(gateway_settings: Settings, engine: Engine) -> GatewayActivities:
    return GatewayActivities(engine, gateway_settings)


def until_done(fn: Callable[[Any], T], arg: Any, attempts: int = 10) -> tuple[T, int]:
    """Run an activity as Temporal would: again after every retryable failure, after the delay it asks for.
    The result and the number of attempts it took."""
    for attempt in range(1, attempts + 1):
        try:
            return ActivityEnvironment().run(fn, arg), attempt
        except ApplicationError as error:
            if error.non_retryable:
                raise
            time.sleep(error.next_retry_delay.total_seconds() if error.next_retry_delay else 0.05)
    raise AssertionError(f"{fn.__name__} did not succeed in {attempts} attempts")


def royalty(payment_method_id: str, total: str = "412.37", key: str = "royalty:acme:2026-11-20:acme-austin"
            ) -> ChargeRequest:
    return ChargeRequest(account_id=ACCOUNT, payment_method_id=payment_method_id, total=Decimal(total),
                         idempotency_id=key, meta=ChargeMeta(payment_note="Royalty 2026-11-20", fee=Decimal("0")))


def test_the_api_key_comes_from_its_encrypted_row(gateway_activities: GatewayActivities, merchant: Merchant,
                                                  engine: Engine, gateway_settings: Settings) -> None:
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT api_key FROM gateway_credential WHERE account_id = :a"),
                                    {"a": ACCOUNT}).scalar_one()
    assert merchant.api_key not in stored
    assert "api_key" not in ChargeRequest.model_fields  # workflow inputs never carry it
    charged, _ = until_done(gateway_activities.charge, royalty(merchant.bank()))
    assert [c["id"] for c in merchant.charges()] == [charged.transaction_id]

    with pytest.raises(ApplicationError) as missing:
        ActivityEnvironment().run(gateway_activities.charge, royalty(merchant.bank()).model_copy(
            update={"account_id": "acme-austin"}))
    assert (missing.value.type, missing.value.non_retryable) == ("GatewayUnauthorized", True)
    save_gateway_credentials(engine, ACCOUNT, "stax_revoked")
    with pytest.raises(ApplicationError) as rejected:
        ActivityEnvironment().run(gateway_activities.charge, royalty(merchant.bank(), key="other"))
    assert (rejected.value.type, rejected.value.non_retryable) == ("GatewayUnauthorized", True)
    assert len(merchant.charges()) == 1


def test_a_dropped_answer_then_the_retry_charges_once(gateway_activities: GatewayActivities,
                                                      merchant: Merchant) -> None:
    merchant.admin.set_faults(merchant.merchant_id, queued=["drop"], hold_seconds=1.5)
    charged, attempts = until_done(gateway_activities.charge, royalty(merchant.bank()))
    assert attempts == 2  # the first heard nothing back
    [only] = merchant.charges()
    assert (only["id"], only["total"], only["idempotency_id"]) == (
        charged.transaction_id, Decimal("412.37"), "royalty:acme:2026-11-20:acme-austin")
    assert (charged.total, charged.method, charged.success, charged.settled) == (Decimal("412.37"), "bank", True,
                                                                                 False)


def test_the_client_retries_a_lost_answer_with_the_same_idempotency_id(gateway_settings: Settings, engine: Engine,
                                                                       merchant: Merchant) -> None:
    merchant.admin.set_faults(merchant.merchant_id, queued=["drop", "500"], hold_seconds=1.5)
    patient = gateway_settings.model_copy(update={"gateway_retries": 2})
    with gateway_client_for(patient, engine, ACCOUNT) as client:
        charged = client.charge(merchant.card(), Decimal("89.10"), "proposal:acme-austin:P-7:balance")
    [only] = merchant.charges()
    assert (only["id"], only["total"]) == (charged["id"], Decimal("89.10"))
    assert isinstance(charged["total"], Decimal)


def test_a_decline_is_final(gateway_activities: GatewayActivities, merchant: Merchant) -> None:
    with pytest.raises(ApplicationError) as declined:
        until_done(gateway_activities.charge, royalty(merchant.card(fails="decline")))
    assert (declined.value.type, declined.value.non_retryable) == ("GatewayDeclined", True)
    [only] = merchant.charges()
    assert only["success"] is False
    assert declined.value.details == ({"transaction_id": only["id"], "message": "Card declined by the issuer"},)


def test_outages_are_retried_until_the_charge_lands_once(gateway_activities: GatewayActivities,
                                                         merchant: Merchant) -> None:
    merchant.admin.set_faults(merchant.merchant_id, queued=["500", "500", "timeout"], hold_seconds=1.0)
    charged, attempts = until_done(gateway_activities.charge, royalty(merchant.bank(), total="1000.01"))
    assert attempts == 4
    assert [(c["id"], c["total"]) for c in merchant.charges()] == [(charged.transaction_id, Decimal("1000.01"))]


def test_a_429_is_retried_after_the_wait_the_gateway_asks(gateway_activities: GatewayActivities,
                                                          merchant: Merchant) -> None:
    merchant.admin.set_faults(merchant.merchant_id, queued=["429"])
    request = royalty(merchant.bank())
    with pytest.raises(ApplicationError) as throttled:
        ActivityEnvironment().run(gateway_activities.charge, request)
    assert (throttled.value.type, throttled.value.non_retryable) == ("GatewayThrottled", False)
    assert throttled.value.next_retry_delay == timedelta(seconds=1)
    assert merchant.charges() == []
    charged, _ = until_done(gateway_activities.charge, request)
    assert [c["id"] for c in merchant.charges()] == [charged.transaction_id]


def test_an_idempotency_id_reused_for_another_amount_is_final(gateway_activities: GatewayActivities,
                                                              merchant: Merchant) -> None:
    bank = merchant.bank()
    until_done(gateway_activities.charge, royalty(bank, total="50.00"))
    with pytest.raises(ApplicationError) as conflict:
        until_done(gateway_activities.charge, royalty(bank, total="55.00"))
    assert (conflict.value.type, conflict.value.non_retryable) == ("GatewayIdempotencyConflict", True)
    assert [c["total"] for c in merchant.charges()] == [Decimal("50.00")]


def test_status_follows_ach_settlement_and_return(gateway_activities: GatewayActivities, merchant: Merchant) -> None:
    charged, _ = until_done(gateway_activities.charge, royalty(merchant.bank()))
    ref = TransactionRef(account_id=ACCOUNT, transaction_id=charged.transaction_id)
    pending, _ = until_done(gateway_activities.transaction_status, ref)
    assert (pending.success, pending.settled, pending.returned) == (True, False, False)
    merchant.admin.settle(merchant.merchant_id)
    settled, _ = until_done(gateway_activities.transaction_status, ref)
    assert (settled.settled, settled.returned, settled.total) == (True, False, Decimal("412.37"))
    assert settled.settled_at is not None and settled.settled_at.utcoffset() == timedelta(0)
    merchant.admin.return_debit(charged.transaction_id)
    returned, _ = until_done(gateway_activities.transaction_status, ref)
    assert (returned.settled, returned.returned, returned.voided) == (True, True, False)

    with pytest.raises(ApplicationError) as unknown:
        ActivityEnvironment().run(gateway_activities.transaction_status, ref.model_copy(
            update={"transaction_id": "no-such-transaction"}))
    assert (unknown.value.type, unknown.value.non_retryable) == ("GatewayNotFound", True)


def test_void_before_settlement_and_a_refund_after_each_happen_once(gateway_activities: GatewayActivities,
                                                                    merchant: Merchant) -> None:
    card = merchant.card()
    pending, _ = until_done(gateway_activities.charge, royalty(card, total="200.00", key="charge-1"))
    voided, _ = until_done(gateway_activities.void_or_refund, VoidOrRefundRequest(
        account_id=ACCOUNT, transaction_id=pending.transaction_id, idempotency_id="void-1"))
    assert (voided.voided, voided.settled, voided.total_refunded) == (True, False, Decimal("0.00"))

    settled, _ = until_done(gateway_activities.charge, royalty(card, total="200.00", key="charge-2"))
    merchant.admin.settle(merchant.merchant_id)
    merchant.admin.set_faults(merchant.merchant_id, queued=["drop"], hold_seconds=1.5)
    refunded, attempts = until_done(gateway_activities.void_or_refund, VoidOrRefundRequest(
        account_id=ACCOUNT, transaction_id=settled.transaction_id, idempotency_id="refund-1", total=Decimal("25.50")))
    assert attempts == 2 and refunded.total_refunded == Decimal("25.50")
    [_, charge] = merchant.charges()
    assert [(c["type"], c["total"]) for c in charge["child_transactions"]] == [("refund", Decimal("25.50"))]

    with pytest.raises(ApplicationError) as over:
        until_done(gateway_activities.void_or_refund, VoidOrRefundRequest(
            account_id=ACCOUNT, transaction_id=settled.transaction_id, idempotency_id="refund-2",
            total=Decimal("174.51")))
    assert (over.value.type, over.value.non_retryable) == ("GatewayError", True)
    assert "more than what is left to refund (174.50)" in str(over.value)


def test_money_never_goes_through_a_float(gateway_sandbox: ServerThread, merchant: Merchant) -> None:
    with pytest.raises(ValidationError):
        ChargeRequest(account_id=ACCOUNT, payment_method_id="pm", total=10.5, idempotency_id="k")  # type: ignore[arg-type]
    with GatewayClient(gateway_sandbox.url, merchant.api_key) as client:
        with pytest.raises(TypeError):
            client.charge(merchant.card(), 10.5, "float")  # type: ignore[arg-type]
        assert merchant.charges() == []
        charged = client.charge(merchant.card(), Decimal("0.30"), "exact")
        assert charged["total"] == Decimal("0.30") and isinstance(charged["total"], Decimal)
    with GatewayClient(gateway_sandbox.url, "stax_wrong") as stranger, pytest.raises(GatewayUnauthorized):
        stranger.transaction(charged["id"])
    with GatewayClient(gateway_sandbox.url, merchant.api_key) as client, pytest.raises(GatewayDeclined) as declined:
        client.charge(merchant.card(fails="decline"), Decimal("5.00"), "declined")
    assert declined.value.transaction["success"] is False


def test_the_surcharge_is_previewed_and_the_charge_records_its_own_total(gateway_activities: GatewayActivities,
                                                                       merchant: Merchant, engine: Engine,
                                                                       gateway_settings: Settings) -> None:
    merchant.admin.set_settings(merchant.merchant_id, "3.0")
    card, bank = merchant.card(), merchant.bank()
    with gateway_client_for(gateway_settings, engine, ACCOUNT) as client:
        review = client.surcharge_review(card, Decimal("89.10"))  # 2.673
        assert review == {"bin_type": "CREDIT", "surcharge_rate": Decimal("3.0"), "surcharge_amount": Decimal("2.67"),
                          "total_with_surcharge": Decimal("91.77")}
        assert all(isinstance(review[k], Decimal) for k in ("surcharge_rate", "surcharge_amount",
                                                             "total_with_surcharge"))
        assert str(review["surcharge_amount"]) == "2.67" and str(review["total_with_surcharge"]) == "91.77"
        assert client.surcharge_review(bank, Decimal("89.10")) == {
            "bin_type": "ACH", "surcharge_rate": Decimal("0"), "surcharge_amount": Decimal("0.00"),
            "total_with_surcharge": Decimal("89.10")}
        with pytest.raises(TypeError):
            client.surcharge_review(card, 89.1)  # type: ignore[arg-type]
        with pytest.raises(GatewayError) as unknown:
            client.surcharge_review("no-such-method", Decimal("1.00"))
        assert unknown.value.status == 422 and "payment_method_id" in unknown.value.body

    charged, _ = until_done(gateway_activities.charge, royalty(card, total="89.10", key="surcharged"))
    assert (charged.total, charged.method, charged.success) == (Decimal("89.10"), "card", True)  # no mismatch
    [only] = merchant.charges()
    assert (only["id"], only["total"], only["surcharge"]) == (charged.transaction_id, Decimal("89.10"),
                                                             Decimal("2.67"))
