"""The payment gateway sandbox over HTTP, as Stax's contract says it behaves: idempotent charges, declines,
ACH that settles and gets returned, void before settlement and refunds after, its keys, limits and faults."""

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.settings import Settings
from sandbox.gateway.admin import GatewaySandboxAdmin
from sandbox.gateway.app import Limits, create_app
from sandbox.gateway.store import GatewayStore
from sandbox.qbo.wire import dumps, loads
from sandbox.serve import ServerThread
from stack import Stack, StackError

# One IP (loopback) sends every test's calls: the shared sandbox's limits are far above them.
GENEROUS = Limits(requests_per_window=100_000, failures_per_window=100_000)


@pytest.fixture(scope="module")
def gateway() -> Iterator[ServerThread]:
    with ServerThread(create_app(GatewayStore(), GENEROUS)) as server:
        yield server


@dataclass
class Shop:
    """A merchant of the sandbox: its id, its admin, and an HTTP client holding its API key."""

    merchant_id: str
    admin: GatewaySandboxAdmin
    http: httpx.Client

    def card(self, fails: str | None = None) -> str:
        return str(self.admin.add_payment_method(self.merchant_id, "card", "Dana Whitfield", fails)["id"])

    def bank(self, fails: str | None = None) -> str:
        return str(self.admin.add_payment_method(self.merchant_id, "bank", "Acme of Austin", fails)["id"])

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """JSON with Decimals as JSON numbers, as Stax's own examples send them."""
        return self.http.post(path, content=dumps(body), headers={"Content-Type": "application/json"})

    def charge(self, payment_method_id: str, total: object, idempotency_id: str | None = None,
               **fields: Any) -> httpx.Response:
        return self.post("/charge", {"payment_method_id": payment_method_id, "total": total,
                                     "idempotency_id": idempotency_id, **fields})

    def void_or_refund(self, transaction_id: str, **fields: Any) -> httpx.Response:
        return self.post(f"/transaction/{transaction_id}/void-or-refund", fields)

    def charges(self) -> list[dict[str, Any]]:
        return self.admin.charges(self.merchant_id)


def open_shop(url: str) -> Shop:
    admin = GatewaySandboxAdmin(url)
    merchant = admin.create_merchant("Acme Franchising", f"acme-{uuid.uuid4().hex[:8]}")
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {merchant['api_key']}"}, timeout=10)
    return Shop(merchant["id"], admin, http)


@pytest.fixture
def shop(gateway: ServerThread) -> Iterator[Shop]:
    shop = open_shop(gateway.url)
    yield shop
    shop.http.close()


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(loads(response.text))


def refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(loads(response.text))


def test_a_repeated_idempotency_id_returns_the_original_charge(shop: Shop) -> None:
    card = shop.card()
    first = ok(shop.charge(card, "149.99", "proposal:P-1:deposit", meta={"payment_note": "Deposit", "tax": "9.99"}))
    assert (first["type"], first["method"], first["success"]) == ("charge", "card", True)
    assert first["total"] == Decimal("149.99") and first["total_refunded"] == 0
    assert (first["is_voidable"], first["is_refundable"], first["settled_at"]) == (True, False, None)
    assert first["meta"] == {"payment_note": "Deposit", "tax": "9.99"}
    again = ok(shop.charge(card, Decimal("149.99"), "proposal:P-1:deposit",
                           meta={"payment_note": "Deposit", "tax": "9.990"}))
    assert again == first
    [charged] = shop.charges()
    assert (charged["id"], charged["total"]) == (first["id"], Decimal("149.99"))
    listed = ok(shop.http.get("/transaction", params={"payment_method_id": card}))
    assert [t["id"] for t in listed["data"]] == [first["id"]] and listed["total"] == 1


def test_an_idempotency_id_reused_with_other_parameters_is_refused(shop: Shop) -> None:
    card = shop.card()
    first = ok(shop.charge(card, "50.00", "key-1"))
    for other in ({"total": "50.01"}, {"invoice_id": "INV-9"}, {"payment_method_id": shop.card()}):
        answer = refused(shop.http.post("/charge", json={"payment_method_id": card, "total": "50.00",
                                                         "idempotency_id": "key-1", **other}))
        assert first["id"] in answer["idempotency_id"][0] and "other parameters" in answer["idempotency_id"][0]
    assert [c["id"] for c in shop.charges()] == [first["id"]]


def test_amounts_are_exact_with_at_most_two_decimals(shop: Shop) -> None:
    card = shop.card()
    exact = ok(shop.charge(card, Decimal("1234567.89")))  # a JSON number, read exactly
    assert exact["total"] == Decimal("1234567.89")
    assert ok(shop.charge(card, 7))["total"] == Decimal("7")
    for bad in ("10.005", 0, "-1.00", "abc", True, None):
        assert "total" in refused(shop.charge(card, bad))
    assert "payment_method_id" in refused(shop.charge("no-such-method", "1.00"))
    assert len(shop.charges()) == 2


def test_a_decline_is_an_answer_with_success_false(shop: Shop) -> None:
    card = shop.card(fails="decline")
    declined = ok(shop.charge(card, "80.00", "decline-1"))
    assert declined["success"] is False and declined["message"] == "Card declined by the issuer"
    assert (declined["is_voidable"], declined["is_refundable"]) == (False, False)
    assert ok(shop.charge(card, "80.00", "decline-1"))["id"] == declined["id"]
    assert "id" in refused(shop.void_or_refund(declined["id"]))
    assert [c["success"] for c in shop.charges()] == [False]
    assert shop.admin.settle(shop.merchant_id) == []


def test_ach_succeeds_unsettled_then_settles_and_a_return_is_a_child_void(shop: Shop) -> None:
    bank = shop.bank()
    debit = ok(shop.charge(bank, "412.50", "royalty:acme:2026-11-20:acme-austin"))
    assert (debit["method"], debit["success"], debit["settled_at"]) == ("bank", True, None)
    [settled] = shop.admin.settle(shop.merchant_id)
    assert settled["id"] == debit["id"] and settled["settled_at"] is not None and settled["is_refundable"]
    assert shop.admin.settle(shop.merchant_id) == []  # nothing left pending
    returned = shop.admin.return_debit(debit["id"], "R01")
    [void] = returned["child_transactions"]
    assert (void["type"], void["total"], void["message"]) == ("void", Decimal("412.50"), "ACH return R01")
    assert (returned["is_refundable"], returned["is_voidable"]) == (False, False)
    assert ok(shop.http.get(f"/transaction/{debit['id']}")) == returned


def test_a_bank_account_set_to_return_bounces_once_settled(gateway: ServerThread, shop: Shop) -> None:
    debit = ok(shop.charge(shop.bank(fails="return"), "99.00", "bounce-1"))
    assert debit["success"] is True
    [settled] = shop.admin.settle(shop.merchant_id)
    assert settled["settled_at"] is not None
    assert [(c["type"], c["total"]) for c in settled["child_transactions"]] == [("void", Decimal("99.00"))]
    card_that_returns = httpx.post(f"{gateway.url}/admin/merchants/{shop.merchant_id}/payment-methods",
                                   json={"method": "card", "customer_name": "Dana", "fails": "return"})
    assert "fails" in refused(card_that_returns)


def test_void_before_settlement_refunds_after(shop: Shop) -> None:
    card = shop.card()
    pending = ok(shop.charge(card, "100.00", "void-me"))
    assert "in full" in refused(shop.void_or_refund(pending["id"], total="40.00"))["total"][0]
    voided = ok(shop.void_or_refund(pending["id"], idempotency_id="void-1"))
    assert [(c["type"], c["total"]) for c in voided["child_transactions"]] == [("void", Decimal("100.00"))]
    assert (voided["is_voidable"], voided["is_refundable"], voided["total_refunded"]) == (False, False, 0)
    assert ok(shop.void_or_refund(pending["id"], idempotency_id="void-1")) == voided  # a retry: no second void
    assert "already voided" in refused(shop.void_or_refund(pending["id"]))["id"][0]

    settled = ok(shop.charge(card, "100.00", "refund-me"))
    assert [t["id"] for t in shop.admin.settle(shop.merchant_id)] == [settled["id"]]  # the voided one never settles
    partly = ok(shop.void_or_refund(settled["id"], total="30.00", idempotency_id="refund-1"))
    assert partly["total_refunded"] == Decimal("30.00") and partly["is_refundable"]
    assert ok(shop.void_or_refund(settled["id"], total="30.00", idempotency_id="refund-1")) == partly
    over = refused(shop.void_or_refund(settled["id"], total="70.01"))
    assert over["total"] == ["The refund total 70.01 is more than what is left to refund (70.00)."]
    rest = ok(shop.void_or_refund(settled["id"]))  # no total: all that is left
    assert [(c["type"], c["total"]) for c in rest["child_transactions"]] == [("refund", Decimal("30.00")),
                                                                              ("refund", Decimal("70.00"))]
    assert (rest["total_refunded"], rest["is_refundable"]) == (Decimal("100.00"), False)
    assert "refunded in full" in refused(shop.void_or_refund(settled["id"], total="0.01"))["total"][0]


def test_keys_are_checked_and_merchants_see_only_their_own(gateway: ServerThread, shop: Shop) -> None:
    charged = ok(shop.charge(shop.card(), "10.00", "mine"))
    for headers in ({}, {"Authorization": "Bearer stax_wrong"}, {"Authorization": "Basic abc"}):
        answer = httpx.post(f"{gateway.url}/charge", json={"payment_method_id": "x", "total": "1"}, headers=headers)
        assert refused(answer, 401) == {"error": "Unauthenticated."}
    other = open_shop(gateway.url)
    assert refused(other.http.get(f"/transaction/{charged['id']}"), 404)["error"].endswith("not found")
    assert "payment_method_id" in refused(other.charge(charged["payment_method_id"], "10.00"))
    assert ok(other.http.get("/transaction"))["data"] == []
    assert len(shop.charges()) == 1


def test_limits_per_ip_and_the_block_after_failures() -> None:
    limits = Limits(requests_per_window=5, failures_per_window=3, window_seconds=1.0, block_seconds=2.0)
    with ServerThread(create_app(GatewayStore(), limits)) as server:
        shop = open_shop(server.url)
        assert [shop.http.get("/transaction").status_code for _ in range(5)] == [200] * 5
        over = shop.http.get("/transaction")
        assert over.status_code == 429 and int(over.headers["Retry-After"]) >= 1
        shop.admin.merchant(shop.merchant_id)  # the admin surface is not limited
        time.sleep(1.1)
        assert shop.http.get("/transaction").status_code == 200

        stranger = {"Authorization": "Bearer stax_wrong"}
        assert [httpx.get(f"{server.url}/transaction", headers=stranger).status_code for _ in range(3)] == [401] * 3
        blocked = shop.http.get("/transaction")  # the right key, from the blocked IP
        assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
        time.sleep(1.1)
        assert shop.http.get("/transaction").status_code == 429  # past the window, still within the block
        time.sleep(1.2)
        assert shop.http.get("/transaction").status_code == 200
        shop.http.close()


def test_injected_faults_and_a_dropped_charge_is_committed_once(shop: Shop) -> None:
    card = shop.card()
    shop.admin.set_faults(shop.merchant_id, queued=["500", "timeout", "429"], hold_seconds=0.2)
    assert shop.charge(card, "25.00", "fault-1").status_code == 500
    assert shop.charge(card, "25.00", "fault-1").status_code == 504
    assert shop.charge(card, "25.00", "fault-1").status_code == 429
    assert shop.charges() == []  # none of them did any work

    shop.admin.set_faults(shop.merchant_id, queued=["drop"], hold_seconds=1.0)
    ok(shop.http.get("/transaction"))  # a read leaves the drop for the next write
    with pytest.raises(httpx.ReadTimeout):
        shop.http.post("/charge", json={"payment_method_id": card, "total": "25.00", "idempotency_id": "fault-1"},
                       timeout=0.3)
    [committed] = shop.charges()
    assert committed["total"] == Decimal("25.00")
    assert ok(shop.charge(card, "25.00", "fault-1"))["id"] == committed["id"]  # the retry: the same charge
    assert len(shop.charges()) == 1


def test_fault_rates_follow_the_seed(shop: Shop) -> None:
    def statuses() -> list[int]:
        shop.admin.set_faults(shop.merchant_id, rates={"500": 0.5}, seed=11)
        return [shop.http.get("/transaction").status_code for _ in range(20)]

    first = statuses()
    assert first == statuses() and set(first) == {200, 500}


def test_a_state_file_keeps_keys_and_idempotency_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "gateway.json"
    with ServerThread(create_app(GatewayStore(state), GENEROUS)) as server:
        shop = open_shop(server.url)
        bank = shop.bank()
        first = ok(shop.charge(bank, "310.25", "before-restart"))
        shop.http.close()
    with ServerThread(create_app(GatewayStore(state), GENEROUS)) as server:
        with httpx.Client(base_url=server.url, headers=shop.http.headers, timeout=10) as http:
            again = ok(http.post("/charge", json={"payment_method_id": bank, "total": "310.25",
                                                  "idempotency_id": "before-restart"}))
        assert again["id"] == first["id"]
        assert [c["total"] for c in GatewaySandboxAdmin(server.url).charges(shop.merchant_id)] == [Decimal("310.25")]


def test_a_busy_gateway_port_names_its_setting(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StackError) as error:
            Stack(Settings(data_dir=tmp_path, gateway_sandbox_port=port)).check_ports()
    assert f"port {port} (Gateway sandbox; change it with LEDGERFLOW_GATEWAY_SANDBOX_PORT)" in str(error.value)
