"""The payment gateway sandbox over HTTP, as Stax's contract says it behaves: idempotent charges, declines,
ACH that settles and gets returned, void before settlement and refunds after, surcharges on cards, webhooks,
its keys, limits and faults."""

import asyncio
import json
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
from fastapi import FastAPI, Request

from config.settings import Settings
from sandbox.delivery import WebhookDelivery
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

    def review(self, **params: str) -> httpx.Response:
        return self.http.get("/surcharge/review", params=params)


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


# -- surcharges ------------------------------------------------------------------------------------------
def test_the_surcharge_review_previews_credit_cards_only(gateway: ServerThread, shop: Shop) -> None:
    card, bank = shop.card(), shop.bank()
    assert ok(shop.review(payment_method_id=card, total="149.99")) == {
        "bin_type": "CREDIT", "surcharge_rate": 0, "surcharge_amount": 0, "total_with_surcharge": Decimal("149.99")}
    settings = shop.admin.set_settings(shop.merchant_id, "3.0")
    assert settings == {"id": shop.merchant_id, "surcharge_rate": Decimal("3.0"), "webhook_url": None}
    assert shop.admin.merchant(shop.merchant_id)["surcharge_rate"] == Decimal("3.0")
    preview = ok(shop.review(payment_method_id=card, total="149.99"))  # 4.4997
    assert preview == {"bin_type": "CREDIT", "surcharge_rate": Decimal("3.0"), "surcharge_amount": Decimal("4.50"),
                       "total_with_surcharge": Decimal("154.49")}
    assert ok(shop.review(payment_method_id=bank, total="149.99")) == {
        "bin_type": "ACH", "surcharge_rate": 0, "surcharge_amount": 0, "total_with_surcharge": Decimal("149.99")}
    shop.admin.set_settings(shop.merchant_id, Decimal("2.5"))
    assert ok(shop.review(payment_method_id=card, total="1.00"))["surcharge_amount"] == Decimal("0.03")  # half up

    for bad in ({"payment_method_id": card, "total": "10.005"}, {"payment_method_id": card, "total": "abc"},
                {"payment_method_id": card, "total": "0"}, {"payment_method_id": card}):
        assert "total" in refused(shop.review(**bad))
    assert "payment_method_id" in refused(shop.review(total="10.00"))
    assert "payment_method_id" in refused(shop.review(payment_method_id="no-such-method", total="10.00"))
    other = open_shop(gateway.url)
    assert "payment_method_id" in refused(other.review(payment_method_id=card, total="10.00"))
    assert refused(httpx.get(f"{gateway.url}/surcharge/review", params={"payment_method_id": card, "total": "1"}),
                   401) == {"error": "Unauthenticated."}
    for rate in ("-1", "abc", "101", "3.00001"):
        with pytest.raises(httpx.HTTPStatusError) as error:
            shop.admin.set_settings(shop.merchant_id, rate)
        assert error.value.response.status_code == 422 and "surcharge_rate" in error.value.response.json()
    with pytest.raises(TypeError):
        shop.admin.set_settings(shop.merchant_id, 3.0)  # type: ignore[arg-type]
    assert shop.admin.merchant(shop.merchant_id)["surcharge_rate"] == Decimal("2.5")


def test_a_card_charge_on_a_surcharging_merchant_keeps_total_and_adds_the_surcharge(shop: Shop) -> None:
    card, bank = shop.card(), shop.bank()
    shop.admin.set_settings(shop.merchant_id, "3.0")
    charged = ok(shop.charge(card, "149.99", "surcharged-1"))
    assert (charged["total"], charged["surcharge"], charged["success"]) == (Decimal("149.99"), Decimal("4.50"), True)
    debit = ok(shop.charge(bank, "412.50", "ach-1"))
    assert (debit["total"], debit["surcharge"]) == (Decimal("412.50"), 0)
    shop.admin.set_settings(shop.merchant_id, "0")  # later charges only: a repeat answers what was charged
    assert ok(shop.charge(card, "149.99", "surcharged-1")) == charged
    assert ok(shop.charge(card, "10.00", "unsurcharged"))["surcharge"] == 0

    voided = ok(shop.void_or_refund(charged["id"]))  # a void gives back all the customer paid
    [void] = voided["child_transactions"]
    assert (void["type"], void["total"], void["surcharge"]) == ("void", Decimal("149.99"), Decimal("4.50"))
    assert (voided["total"], voided["surcharge"], voided["total_refunded"]) == (Decimal("149.99"), Decimal("4.50"), 0)

    shop.admin.set_settings(shop.merchant_id, "3.0")
    settled = ok(shop.charge(card, "100.00", "surcharged-2"))
    assert settled["surcharge"] == Decimal("3.00")
    shop.admin.settle_transaction(settled["id"])
    over = refused(shop.void_or_refund(settled["id"], total="100.01"))  # refunds are of `total`, as before
    assert over["total"] == ["The refund total 100.01 is more than what is left to refund (100.00)."]
    refunded = ok(shop.void_or_refund(settled["id"], total="40.00"))
    assert [(c["type"], c["total"], c["surcharge"]) for c in refunded["child_transactions"]] == [
        ("refund", Decimal("40.00"), 0)]
    assert (refunded["total_refunded"], refunded["surcharge"]) == (Decimal("40.00"), Decimal("3.00"))


# -- webhooks --------------------------------------------------------------------------------------------
@dataclass
class Hook:
    event: str
    body: dict[str, Any]
    headers: dict[str, str]
    saved: dict[str, Any] | None  # the charge as the state file held it when the webhook arrived


class Receiver:
    """A merchant's webhook endpoint: what arrived, in order, and what the gateway had saved by then."""

    def __init__(self, state_file: Path) -> None:
        self.hooks: list[Hook] = []
        self.app = FastAPI()

        @self.app.post("/stax")
        async def receive(request: Request) -> dict[str, str]:
            body = loads(await request.body())
            saved = json.loads(await asyncio.to_thread(state_file.read_text))["transactions"].get(body["id"])
            self.hooks.append(Hook(request.headers["stax-event-name"], body, dict(request.headers), saved))
            return {"status": "received"}

    def wait_for(self, count: int, timeout: float = 15.0) -> list[Hook]:
        deadline = time.monotonic() + timeout
        while len(self.hooks) < count:
            assert time.monotonic() < deadline, f"{len(self.hooks)} webhooks of {count} arrived"
            time.sleep(0.02)
        time.sleep(0.2)  # long enough for one more, had the gateway sent one too many
        return list(self.hooks)


def test_webhooks_announce_each_change_once_it_is_saved(tmp_path: Path) -> None:
    state = tmp_path / "gateway.json"
    receiver, delivery = Receiver(state), WebhookDelivery(attempts=2, first_delay=0.05)
    with ServerThread(receiver.app) as endpoint, \
            ServerThread(create_app(GatewayStore(state), GENEROUS, delivery)) as server:
        url = f"{endpoint.url}/stax"
        shop, quiet = open_shop(server.url), open_shop(server.url)  # the quiet one has no webhook_url
        shop.admin.set_settings(shop.merchant_id, "3.0", url)
        card = shop.card()
        charged = ok(shop.charge(card, "100.00", "hook-1"))
        assert ok(shop.charge(card, "100.00", "hook-1")) == charged  # a repeat announces nothing
        ok(quiet.charge(quiet.card(), "5.00", "quiet-1"))
        declined = ok(shop.charge(shop.card(fails="decline"), "20.00", "hook-2"))
        voided = ok(shop.void_or_refund(charged["id"], idempotency_id="void-1"))
        ok(shop.void_or_refund(charged["id"], idempotency_id="void-1"))  # nor does a repeated void
        to_refund = ok(shop.charge(card, "50.00", "hook-3"))
        debit = ok(shop.charge(shop.bank(), "412.50", "hook-4"))
        nightly = shop.admin.settle(shop.merchant_id)
        refunded = ok(shop.void_or_refund(to_refund["id"], total="10.00", idempotency_id="refund-1"))
        returned = shop.admin.return_debit(debit["id"])
        single = ok(shop.charge(shop.bank(), "75.00", "hook-5"))
        settled_one = shop.admin.settle_transaction(single["id"])
        bounce = ok(shop.charge(shop.bank(fails="return"), "99.00", "hook-6"))
        [bounced] = shop.admin.settle(shop.merchant_id)
        hooks = receiver.wait_for(14)

        assert [(h.event, h.body["id"]) for h in hooks] == [
            ("create_transaction", charged["id"]), ("create_transaction", declined["id"]),
            ("update_transaction", charged["id"]),
            ("create_transaction", to_refund["id"]), ("create_transaction", debit["id"]),
            ("update_transaction_settled", to_refund["id"]), ("update_transaction_settled", debit["id"]),
            ("update_transaction", to_refund["id"]), ("update_transaction", debit["id"]),
            ("create_transaction", single["id"]), ("update_transaction_settled", single["id"]),
            ("create_transaction", bounce["id"]), ("update_transaction_settled", bounce["id"]),
            ("update_transaction", bounce["id"])]
        # each the charge as the API showed it then; a child's change shows as its charge, as it now stands
        assert [h.body for h in hooks[:3]] == [charged, declined, voided]
        assert hooks[0].body["surcharge"] == Decimal("3.00") and hooks[1].body["success"] is False
        assert [h.body for h in hooks[5:11]] == [*nightly, refunded, returned, single, settled_one]
        assert hooks[12].body["settled_at"] is not None and hooks[12].body["child_transactions"] == []
        assert hooks[13].body == bounced and bounced["child_transactions"][0]["message"] == "ACH return R01"
        for hook in hooks:
            assert hook.headers["content-type"] == "application/json"
            assert not any("signature" in name for name in hook.headers)  # Stax documents none
            assert hook.saved is not None  # saved before it was sent (and perhaps changed again since)
            assert hook.saved["settled_at"] is not None or hook.body["settled_at"] is None
            assert len(hook.saved["child_ids"]) >= len(hook.body["child_transactions"])

        deadline = time.monotonic() + 5
        while len(delivery.delivered_json()) < 14 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [(d["url"], d["status"]) for d in delivery.delivered_json()] == [(url, 200)] * 14
        shop.admin.set_settings(shop.merchant_id, "3.0")  # webhooks off: nothing more goes out
        ok(shop.charge(card, "1.00", "hook-7"))
        time.sleep(0.3)
        assert len(receiver.hooks) == 14


def test_settings_persist_and_a_state_file_from_before_them_loads(tmp_path: Path) -> None:
    state = tmp_path / "gateway.json"
    made = "2026-11-02T15:04:05+00:00"
    state.write_text(json.dumps({  # as the sandbox wrote it before surcharges and webhooks
        "merchants": [{"id": "acme-old", "name": "Acme Franchising", "api_key": "stax_old_key"}],
        "customers": {"cus-1": {"id": "cus-1", "merchant_id": "acme-old", "name": "Dana", "created_at": made}},
        "payment_methods": {"pm-1": {"id": "pm-1", "merchant_id": "acme-old", "customer_id": "cus-1",
                                     "method": "card", "person_name": "Dana", "fails": None, "card_last_four": "1111",
                                     "bank_name": None, "created_at": made}},
        "transactions": {"tx-1": {
            "id": "tx-1", "merchant_id": "acme-old", "type": "charge", "method": "card", "payment_method_id": "pm-1",
            "customer_id": "cus-1", "total": "60.00", "total_refunded": "0.00", "success": True, "message": None,
            "pre_auth": False, "settled_at": None, "invoice_id": None, "meta": {}, "reference_id": None,
            "child_ids": [], "idempotency_id": "old-1", "created_at": made, "updated_at": made,
            "request": {"op": "charge", "payment_method_id": "pm-1", "total": "60.00", "pre_auth": False,
                        "meta": {}, "invoice_id": None}}}}))
    headers = {"Authorization": "Bearer stax_old_key"}
    quick = WebhookDelivery(attempts=1)  # the hook URL below answers nobody
    with ServerThread(create_app(GatewayStore(state), GENEROUS, quick)) as server, \
            httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        admin = GatewaySandboxAdmin(server.url)
        merchant = admin.merchant("acme-old")
        assert (merchant["surcharge_rate"], merchant["webhook_url"]) == (0, None)
        old = ok(http.post("/charge", json={"payment_method_id": "pm-1", "total": "60.00", "idempotency_id": "old-1"}))
        assert (old["id"], old["total"], old["surcharge"]) == ("tx-1", Decimal("60.00"), 0)
        admin.set_settings("acme-old", "3.0", "http://127.0.0.1:9/stax")
        new = ok(http.post("/charge", json={"payment_method_id": "pm-1", "total": "60.00", "idempotency_id": "new-1"}))
        assert new["surcharge"] == Decimal("1.80")
    assert json.loads(state.read_text())["merchants"][0]["surcharge_rate"] == "3.0"
    with ServerThread(create_app(GatewayStore(state), GENEROUS, quick)) as server:
        admin = GatewaySandboxAdmin(server.url)
        merchant = admin.merchant("acme-old")
        assert (merchant["surcharge_rate"], merchant["webhook_url"]) == (Decimal("3.0"), "http://127.0.0.1:9/stax")
        assert [(c["id"], c["surcharge"]) for c in merchant["charges"]] == [("tx-1", 0), (new["id"], Decimal("1.80"))]
