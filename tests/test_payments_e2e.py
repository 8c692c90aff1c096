"""Payment collection end to end through the real parts: the API takes the payment, the worker on the dev
server charges the gateway sandbox over HTTP, records the payment on the CRM sandbox's proposal, whose webhook
brings it to the proposal's workflow, which books it in the QBO sandbox (python-quickbooks) and the ledger.
Each test checks what a franchisee would: one charge, one CRM payment, one QBO payment applied, the ledger
and the customer's balance right; declines, returns and faults change nothing they should not."""

import asyncio
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.crm import crm_client_for
from config.settings import Settings
from models.accounts import Franchisee
from models.api_keys import create_api_key
from models.collection_ledger import CollectedPayment
from models.crm_credentials import load_crm_credentials
from models.gateway_credentials import save_gateway_credentials
from models.gateway_webhooks import webhook_path
from models.ledger import LedgerPayment
from models.proposals import ProposalState
from models.qbo_connection import QboConnection
from models.scheduled_payments import ScheduledPaymentState
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.gateway.admin import GatewaySandboxAdmin
from sandbox.qbo.admin import list_objects
from sandbox.serve import ServerThread
from schedules import install_autopay_schedule
from tests.conftest import connect_crm_account, new_realm, point_account_at
from tests.e2e import settled, starter, worker
from tests.test_lifecycle_e2e import LINES, TOTAL
from tests.test_proposal_e2e import replay

D = Decimal


class Shop:
    """acme-austin with its gateway merchant (webhooks to this test's API), its API key and its CRM."""

    def __init__(self, settings: Settings, engine: Engine, api: ServerThread, account: str,
                 surcharge_rate: str = "0") -> None:
        self.settings, self.engine, self.account = settings, engine, account
        self.crm = CrmSandboxAdmin(settings.crm_api_url)
        self.gateway = GatewaySandboxAdmin(settings.gateway_api_url)
        created = self.gateway.create_merchant(f"Merchant of {account}", f"{account}-{uuid.uuid4().hex[:8]}")
        self.merchant, self.api_key = created["id"], created["api_key"]
        self.gateway.set_settings(self.merchant, surcharge_rate=surcharge_rate,
                                  webhook_url=api.url + webhook_path(settings, account))
        save_gateway_credentials(engine, account, created["api_key"])
        self.http = httpx.AsyncClient(base_url=api.url, timeout=60,
                                      headers={"X-API-Key": create_api_key(engine, account)})

    def method(self, kind: str = "card", fails: str | None = None) -> str:
        return str(self.gateway.add_payment_method(self.merchant, kind, f"Customer {uuid.uuid4().hex[:6]}",
                                                   fails)["id"])

    def charges(self, payment_method_id: str) -> list[dict[str, Any]]:
        return self.gateway.charges(self.merchant, payment_method_id)

    async def invoiced(self, client: Any, lines: list[dict[str, Any]] = LINES,
                       contact_id: str | None = None) -> tuple[str, ProposalState]:
        """A proposal (of a new contact, or of `contact_id`) taken to Job Complete: its QBO invoice made and
        saved in the ledger."""
        if contact_id is None:
            contact_id = self.crm.create_contact(self.account, firstName="Jordan",
                                                 lastName=f"Lee{uuid.uuid4().hex[:6]}")["client_id"]
        proposal_id = self.crm.create_proposal(self.account, contact_id, lines,
                                               number=f"C-{uuid.uuid4().hex[:6]}")["proposal_id"]
        self.crm.move_step(self.account, contact_id, "Proposal Sent", proposal_id)
        await settled(client, self.account, proposal_id, lambda s: s.estimate_id)
        self.crm.move_step(self.account, contact_id, "Job Complete", proposal_id)
        return proposal_id, await settled(client, self.account, proposal_id, lambda s: s.invoice_id)

    async def pay(self, key: str, **body: Any) -> httpx.Response:
        return await self.http.post(f"/accounts/{self.account}/payments", json=body, headers={"Idempotency-Key": key})

    def crm_payments(self, proposal_id: str) -> list[dict[str, Any]]:
        with crm_client_for(self.settings, self.engine, self.account) as crm:
            return crm.proposal_payments(proposal_id)

    def ledger(self, proposal_id: str) -> list[LedgerPayment]:
        with Session(self.engine) as session:
            return list(session.exec(select(LedgerPayment).where(LedgerPayment.proposal_id == proposal_id)))

    def collection(self, key: str) -> CollectedPayment:
        with Session(self.engine) as session:
            row = session.get(CollectedPayment, (self.account, key))
        assert row is not None
        return row

    async def balance(self, customer_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/accounts/{self.account}/customers/{customer_id}/balance")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


@pytest.fixture
def shop(e2e_settings: Settings, engine: Engine, api: ServerThread, account_realm: str,
         crm_account: str) -> Iterator[Shop]:
    yield Shop(e2e_settings, engine, api, crm_account)


def change_franchisee(engine: Engine, account_id: str, payments: dict[str, Any] | None = None,
                      sales_cycle: dict[str, str] | None = None) -> None:
    """Change an account's settings for one test: payment settings merged in, the sales-cycle mapping replaced."""
    with Session(engine) as session:
        franchisee = session.get(Franchisee, account_id)
        assert franchisee is not None
        franchisee.payments = {**franchisee.payments, **(payments or {})}
        franchisee.sales_cycle = sales_cycle or franchisee.sales_cycle
        session.add(franchisee)
        session.commit()


def austin_today() -> date:
    return datetime.now(ZoneInfo("America/Chicago")).date()


def qbo_payments(settings: Settings, realm: str, customer_id: str) -> list[dict[str, Any]]:
    return [p for p in list_objects(settings.qbo_api_url, realm, "Payment")
            if p["CustomerRef"]["value"] == customer_id and D(str(p["TotalAmt"])) > 0]


def invoice(settings: Settings, realm: str, invoice_id: str) -> dict[str, Any]:
    return next(i for i in list_objects(settings.qbo_api_url, realm, "Invoice") if i["Id"] == invoice_id)


async def until(check: Any, seconds: float = 60) -> Any:
    for _ in range(int(seconds * 10)):
        found = check()
        if found:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {check}")


async def test_a_partial_card_payment_with_a_tip_lands_once_everywhere_even_when_submitted_twice(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, account_realm: str, executor: ThreadPoolExecutor
) -> None:
    card = shop.method("card")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        body = {"proposal_id": proposal_id, "payment_method_id": card, "method": "card", "amount": "100.00",
                "tip": "15.00"}
        first, second = await asyncio.gather(shop.pay("pay-1", **body), shop.pay("pay-1", **body))  # a double click
        assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
        result = first.json()
        assert result == second.json()
        # Austin adds 3% of the amount (never of the tip): 100.00 + 15.00 + 3.00.
        assert (result["status"], result["amount"], result["tip"], result["convenience_fee"]) == (
            "charged", "100.00", "15.00", "3.00")
        [charge] = shop.charges(card)
        assert (charge["id"], D(str(charge["total"]))) == (result["transaction_id"], D("118.00"))

        state = await settled(dev_env.client, shop.account, proposal_id,
                              lambda s: s.payments and s.payments[0].applied is not None)
        [crm_payment] = shop.crm_payments(proposal_id)
        assert (crm_payment["payment_id"], crm_payment["reference"]) == (result["crm_payment_id"], charge["id"])
        [qbo_payment] = qbo_payments(e2e_settings, account_realm, state.customer_id or "")
        assert D(str(qbo_payment["TotalAmt"])) == D("118.00")
        assert D(str(invoice(e2e_settings, account_realm, state.invoice_id or "")["Balance"])) == TOTAL - D("118.00")
        [row] = shop.ledger(proposal_id)
        assert (row.amount, row.tip, row.convenience_fee, row.method, row.voided) == (
            D("100.00"), D("15.00"), D("3.00"), "card", None)
        balance = await shop.balance(state.customer_id or "")
        assert (balance["total_balance"], balance["open_invoices"], balance["total_past_due"]) == (
            str(TOTAL - D("118.00")), 1, "0.00")

        # The same key later answers with the first payment; with another payment it is refused: nothing more.
        again = await shop.pay("pay-1", **body)
        assert again.json()["transaction_id"] == result["transaction_id"]
        other = await shop.pay("pay-1", **{**body, "amount": "50.00"})
        assert other.status_code == 422 and "another payment" in other.json()["detail"]
        # More than is still due, or a third decimal, is refused before anything starts.
        too_much = await shop.pay("pay-2", **{**body, "amount": str(TOTAL)})
        assert too_much.status_code == 409 and "still due" in too_much.json()["detail"]
        assert (await shop.pay("pay-3", **{**body, "amount": "10.005"})).status_code == 422
        assert (await shop.pay("scheduled-x", **body)).status_code == 422  # Ledgerflow's own keys
        assert len(shop.charges(card)) == 1
        await replay(dev_env.client, f"collect:{shop.account}:pay-1")


async def test_a_declined_card_is_reported_and_changes_no_books(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, account_realm: str, executor: ThreadPoolExecutor
) -> None:
    declining = shop.method("card", fails="decline")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        answer = await shop.pay("declined-1", proposal_id=proposal_id, payment_method_id=declining, method="card",
                                amount="50.00")
        assert answer.status_code == 402 and answer.json()["status"] == "declined"
        assert "declined" in answer.json()["message"].lower()
        assert shop.crm_payments(proposal_id) == [] and shop.ledger(proposal_id) == []
        assert shop.collection("declined-1").status == "declined"
        assert (await shop.balance(state.customer_id or ""))["total_balance"] == str(TOTAL)  # nothing held
        assert qbo_payments(e2e_settings, account_realm, state.customer_id or "") == []
        await replay(dev_env.client, f"collect:{shop.account}:declined-1")


async def test_an_ach_return_reverses_the_payment_in_qbo_the_crm_and_the_ledger(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, account_realm: str, executor: ThreadPoolExecutor
) -> None:
    bouncing = shop.method("bank", fails="return")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        answer = await shop.pay("ach-1", invoice_id=state.invoice_id, payment_method_id=bouncing, method="bank",
                                amount="200.00")
        assert answer.status_code == 200 and answer.json()["status"] == "charged", answer.text
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
        [row] = shop.ledger(proposal_id)
        assert (row.amount, row.convenience_fee, row.method) == (D("200.00"), D("6.00"), "ach")
        assert (await shop.balance(state.customer_id or ""))["total_balance"] == str(TOTAL - D("206.00"))

        shop.gateway.settle(shop.merchant)  # the nightly batch; the bank sends the debit back (its webhook wakes us)
        await until(lambda: shop.collection("ach-1").status == "returned")
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments[0].voided_in_qbo)
        [crm_payment] = shop.crm_payments(proposal_id)
        assert (crm_payment["voided"], crm_payment["void_kind"]) == (True, "return")
        [row] = shop.ledger(proposal_id)
        assert row.voided == "return"
        assert qbo_payments(e2e_settings, account_realm, state.customer_id or "") == []  # voided: zero
        assert D(str(invoice(e2e_settings, account_realm, state.invoice_id or "")["Balance"])) == TOTAL
        assert (await shop.balance(state.customer_id or ""))["total_balance"] == str(TOTAL)
        await replay(dev_env.client, f"ach:{shop.account}:{answer.json()['transaction_id']}")


async def test_gateway_faults_never_charge_twice(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, executor: ThreadPoolExecutor
) -> None:
    settings = e2e_settings.model_copy(update={"gateway_http_timeout_seconds": 0.5, "gateway_retries": 0})
    card = shop.method("card")
    async with worker(dev_env, settings, executor):
        proposal_id, _state = await shop.invoiced(dev_env.client)
        # The charge goes through but its answer is lost, then the gateway fails, then it times out.
        shop.gateway.set_faults(shop.merchant, queued=["drop", "500", "timeout", "429"], hold_seconds=1.0)
        answer = await shop.pay("faulty-1", proposal_id=proposal_id, payment_method_id=card, method="card",
                                amount="80.00")
        assert answer.status_code == 200 and answer.json()["status"] == "charged", answer.text
        [charge] = shop.charges(card)
        assert D(str(charge["total"])) == D("82.40")  # 80.00 + 3%
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
        assert len(shop.crm_payments(proposal_id)) == 1 and len(shop.ledger(proposal_id)) == 1
        shop.gateway.set_faults(shop.merchant)


async def test_a_scheduled_payment_is_lowered_by_an_earlier_payment_and_can_be_moved_or_cancelled(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, account_realm: str, engine: Engine,
    executor: ThreadPoolExecutor
) -> None:
    card = shop.method("card")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        later = austin_today() + timedelta(days=30)
        made = await shop.http.post(f"/accounts/{shop.account}/scheduled-payments", json={
            "schedule_id": "rest-of-it", "proposal_id": proposal_id, "payment_method_id": card, "method": "card",
            "amount": str(TOTAL), "pay_on": later.isoformat()})
        assert made.status_code == 201 and made.json()["status"] == "scheduled", made.text
        cancelled = await shop.http.post(f"/accounts/{shop.account}/scheduled-payments", json={
            "schedule_id": "never", "proposal_id": proposal_id, "payment_method_id": card, "method": "card",
            "amount": "10.00", "pay_on": later.isoformat()})
        assert cancelled.status_code == 201
        gone = await shop.http.delete(f"/accounts/{shop.account}/scheduled-payments/never")
        assert gone.json()["status"] == "cancelled"

        # A payment by hand first: 100.00 + 3.00 fee.
        paid = await shop.pay("by-hand", proposal_id=proposal_id, payment_method_id=card, method="card",
                              amount="100.00")
        assert paid.json()["status"] == "charged"
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)

        # Moved to today, whose payment time (set to midnight here) has passed: it pays what is left now, not
        # the 319.00 scheduled. A day in the past is refused.
        past = await shop.http.patch(f"/accounts/{shop.account}/scheduled-payments/rest-of-it",
                                     json={"pay_on": (austin_today() - timedelta(days=1)).isoformat()})
        assert past.status_code == 422
        change_franchisee(engine, shop.account, payments={"scheduled_payment_time": "00:00"})
        moved = await shop.http.patch(f"/accounts/{shop.account}/scheduled-payments/rest-of-it",
                                      json={"pay_on": austin_today().isoformat()})
        assert moved.status_code == 200, moved.text
        handle = dev_env.client.get_workflow_handle(f"scheduled:{shop.account}:rest-of-it",
                                                    result_type=ScheduledPaymentState)
        final = await handle.result()
        assert final.status == "done" and final.result is not None and final.result.status == "charged"
        # 216.00 was left: 209.71 and its 3% fee (6.29) come to exactly that, so the invoice is not overpaid.
        row = shop.collection("scheduled-rest-of-it")
        assert (row.amount, row.convenience_fee) == (D("209.71"), D("6.29"))
        assert [D(str(c["total"])) for c in shop.charges(card)] == [D("103.00"), D("216.00")]
        await settled(dev_env.client, shop.account, proposal_id,
                      lambda s: len(s.payments) == 2 and all(p.applied is not None for p in s.payments))
        assert D(str(invoice(e2e_settings, account_realm, state.invoice_id or "")["Balance"])) == D("0")
        # Cancelled: never charged. Paid: moving it now is refused.
        assert len(shop.charges(card)) == 2
        late = await shop.http.patch(f"/accounts/{shop.account}/scheduled-payments/rest-of-it",
                                     json={"pay_on": later.isoformat()})
        assert late.status_code == 409
        await replay(dev_env.client, f"scheduled:{shop.account}:rest-of-it")


async def test_autopay_pays_each_invoice_once_by_the_first_configuration_that_matches(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, account_realm: str,
    executor: ThreadPoolExecutor
) -> None:
    first_card, second_card, bank = shop.method("card"), shop.method("card"), shop.method("bank")
    small = [{"product": "Gutter Guard", "description": "Per foot", "quantity": "20", "unit_price": "4.25"}]  # 85.00
    async with worker(dev_env, e2e_settings, executor):
        big_id, big = await shop.invoiced(dev_env.client)  # 319.00, two lines
        assert big.contact is not None and big.proposal is not None
        small_id, small_state = await shop.invoiced(dev_env.client, small, contact_id=big.contact.id)
        assert small_state.customer_id == big.customer_id and small_state.proposal is not None
        customer = big.customer_id

        configs = [
            {"id": "small-jobs", "position": 1, "name": "Small jobs on the first card",
             "payment_method_id": first_card, "method": "card",
             "criteria": [{"field": "amount", "operator": "le", "value": "100"},
                          {"field": "line_item", "operator": "is", "value": "gutter guard"}]},
            {"id": "everything", "position": 2, "name": "The rest on the second card",
             "payment_method_id": second_card, "method": "card", "criteria": []},
            {"id": "off", "position": 0, "name": "Disabled bank rule", "payment_method_id": bank,
             "method": "bank", "criteria": [], "disabled": True},
        ]
        saved = await shop.http.put(f"/accounts/{shop.account}/customers/{customer}/autopay",
                                    json={"configs": configs})
        assert saved.status_code == 200, saved.text
        today = austin_today()
        # Two cycles at once (yesterday's caught up while today's starts) and today's again afterwards.
        cycles = await asyncio.gather(*(shop.http.post(f"/accounts/{shop.account}/autopay-cycles",
                                                       json={"cycle_date": day.isoformat()})
                                        for day in (today - timedelta(days=1), today)))
        outcomes = [o for cycle in cycles for o in cycle.json()["outcomes"] if o["result"]["status"] == "charged"]
        assert sorted((o["invoice_number"], o["config_id"]) for o in outcomes) == sorted(
            [(small_state.proposal.number, "small-jobs"), (big.proposal.number, "everything")])
        again = await shop.http.post(f"/accounts/{shop.account}/autopay-cycles", json={"cycle_date": today.isoformat()})
        assert again.json() == cycles[1].json()  # the day already ran: its result, nothing charged
        # Each invoice in full, its 3% fee within it: 82.52 + 2.48 and 309.71 + 9.29.
        assert [D(str(c["total"])) for c in shop.charges(first_card)] == [D("85.00")]
        assert [D(str(c["total"])) for c in shop.charges(second_card)] == [D("319.00")]
        assert shop.charges(bank) == []
        for proposal_id in (big_id, small_id):
            await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
        assert (await shop.balance(customer or ""))["open_invoices"] == 0
        for day in (today - timedelta(days=1), today):
            await replay(dev_env.client, f"autopay:{shop.account}:{day.isoformat()}")


async def test_the_daily_autopay_schedule_runs_at_the_accounts_time_and_pays_what_is_due(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, engine: Engine, executor: ThreadPoolExecutor
) -> None:
    card = shop.method("card")
    with Session(engine) as session:
        franchisee = session.get(Franchisee, shop.account)
    assert franchisee is not None
    installed = await install_autopay_schedule(dev_env.client, e2e_settings, franchisee)
    schedule = dev_env.client.get_schedule_handle(installed.schedule_id)
    try:
        assert not (await install_autopay_schedule(dev_env.client, e2e_settings, franchisee)).created
        described = await schedule.describe()
        assert described.schedule.spec.time_zone_name == "America/Chicago"
        assert all(t.astimezone(ZoneInfo("America/Chicago")).time() == time(6, 0)
                   for t in described.info.next_action_times)
        async with worker(dev_env, e2e_settings, executor):
            proposal_id, state = await shop.invoiced(dev_env.client)
            saved = await shop.http.put(f"/accounts/{shop.account}/customers/{state.customer_id}/autopay", json={
                "configs": [{"id": "all", "position": 1, "name": "Everything", "payment_method_id": card,
                             "method": "card"}]})
            assert saved.status_code == 200, saved.text
            await schedule.trigger()  # as at 06:00
            [charge] = await until(lambda: shop.charges(card))
            assert D(str(charge["total"])) == TOTAL  # 309.71 and its fee: the invoice, exactly
            await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
            assert (await shop.balance(state.customer_id or ""))["total_balance"] == "0.00"
    finally:
        await schedule.delete()


async def test_the_command_line_collects_once_per_key_and_prints_the_balance(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, executor: ThreadPoolExecutor
) -> None:
    card = shop.method("card")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        def pay(key: str, amount: str) -> Any:
            return starter(e2e_settings, dev_env, "pay", "--account", shop.account, "--key", key, "--invoice",
                           state.invoice_id or "", "--method", "card", "--payment-method", card, "--amount", amount,
                           "--tip", "1.00")

        first = await asyncio.to_thread(pay, "cli-1", "19.00")
        again = await asyncio.to_thread(pay, "cli-1", "19.00")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["transaction_id"] == json.loads(again.stdout)["transaction_id"]
        [charge] = shop.charges(card)
        assert D(str(charge["total"])) == D("20.57")  # 19.00 + 1.00 tip + 0.57 (3% of 19.00)
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
        balance = await asyncio.to_thread(starter, e2e_settings, dev_env, "balance", "--account", shop.account,
                                          "--customer", state.customer_id or "")
        assert f"balance {TOTAL - D('20.57')}" in balance.stdout, balance.stdout
        refused = await asyncio.to_thread(pay, "cli-2", "999.00")
        assert refused.returncode == 4 and '"refused"' in refused.stdout and len(shop.charges(card)) == 1


async def test_a_refund_gives_a_card_payment_back_once_and_reverses_the_books(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, account_realm: str, executor: ThreadPoolExecutor
) -> None:
    card = shop.method("card")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        never = await shop.http.post(f"/accounts/{shop.account}/payments/never-made/refund", json={})
        assert never.status_code == 409  # nothing was charged under that key
        paid = await shop.pay("to-refund", proposal_id=proposal_id, payment_method_id=card, method="card",
                              amount="60.00")
        assert paid.json()["status"] == "charged"
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
        shop.gateway.settle(shop.merchant)  # settled: given back as a refund, not a void
        first, second = await asyncio.gather(*(shop.http.post(f"/accounts/{shop.account}/payments/to-refund/refund",
                                                              json={"reason": "job redone"}) for _ in range(2)))
        assert first.status_code == second.status_code == 200, first.text
        assert first.json()["status"] == "refunded"
        [charge] = shop.charges(card)
        assert [(c["type"], D(str(c["total"]))) for c in charge["child_transactions"]] == [("refund", D("61.80"))]
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments[0].voided_in_qbo)
        [crm_payment] = shop.crm_payments(proposal_id)
        assert (crm_payment["voided"], crm_payment["void_kind"]) == (True, "refund")
        assert [row.voided for row in shop.ledger(proposal_id)] == ["refund"]
        assert shop.collection("to-refund").status == "refunded"
        assert D(str(invoice(e2e_settings, account_realm, state.invoice_id or "")["Balance"])) == TOTAL
        assert (await shop.balance(state.customer_id or ""))["total_balance"] == str(TOTAL)
        await replay(dev_env.client, f"refund:{shop.account}:to-refund")


async def test_a_return_after_the_watch_has_ended_still_reverses_the_books(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, engine: Engine, account_realm: str,
    executor: ThreadPoolExecutor
) -> None:
    # No return window: the watch ends as soon as the debit settles.
    change_franchisee(engine, shop.account, payments={"ach_return_window_days": 0})
    bank = shop.method("bank")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await shop.invoiced(dev_env.client)
        answer = await shop.pay("late-1", proposal_id=proposal_id, payment_method_id=bank, method="bank",
                                amount="100.00")
        transaction_id = answer.json()["transaction_id"]
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments and s.payments[0].applied)
        shop.gateway.settle(shop.merchant)
        await until(lambda: shop.collection("late-1").status == "settled")
        watch = dev_env.client.get_workflow_handle(f"ach:{shop.account}:{transaction_id}")
        assert await watch.result() == "settled"
        assert (await watch.describe()).status == WorkflowExecutionStatus.COMPLETED  # nothing watches it now

        shop.gateway.return_debit(transaction_id, "R10")  # weeks later: the customer disputes the debit
        await until(lambda: shop.collection("late-1").status == "returned")
        await settled(dev_env.client, shop.account, proposal_id, lambda s: s.payments[0].voided_in_qbo)
        assert [row.voided for row in shop.ledger(proposal_id)] == ["return"]
        assert D(str(invoice(e2e_settings, account_realm, state.invoice_id or "")["Balance"])) == TOTAL


async def test_on_a_surcharging_account_the_gateway_adds_its_card_surcharge_and_it_lands_as_the_fee(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, api: ServerThread,
    executor: ThreadPoolExecutor
) -> None:
    realm = point_account_at(engine, "acme-denver", new_realm(e2e_settings, engine))
    connect_crm_account(e2e_settings, api.url, engine, "acme-denver", "Acme Home Services of Denver")
    # The CRM sandbox's own step names, not Denver's.
    change_franchisee(engine, "acme-denver", sales_cycle={"Proposal Sent": "proposal", "Job Complete": "job_complete"})
    denver = Shop(e2e_settings, engine, api, "acme-denver", surcharge_rate="3.0")
    card, bank = denver.method("card"), denver.method("bank")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, state = await denver.invoiced(dev_env.client)
        by_card = await denver.pay("denver-card", proposal_id=proposal_id, payment_method_id=card, method="card",
                                   amount="100.00", tip="10.00")
        assert by_card.status_code == 200, by_card.text
        # Denver adds no fee of its own; the gateway adds 3% of what it charged (110.00) on top: 3.30.
        assert (by_card.json()["convenience_fee"], by_card.json()["surcharge"]) == ("0.00", "3.30")
        by_bank = await denver.pay("denver-bank", proposal_id=proposal_id, payment_method_id=bank, method="bank",
                                   amount="50.00")
        assert by_bank.json()["surcharge"] == "0.00"  # never on a bank debit
        await settled(dev_env.client, denver.account, proposal_id,
                      lambda s: len(s.payments) == 2 and all(p.applied is not None for p in s.payments))
        rows = sorted(denver.ledger(proposal_id), key=lambda r: r.amount)
        assert [(r.amount, r.tip, r.convenience_fee, r.method) for r in rows] == [
            (D("50.00"), D("0.00"), D("0.00"), "ach"), (D("100.00"), D("10.00"), D("3.30"), "card")]
        assert sorted(D(str(p["TotalAmt"])) for p in qbo_payments(e2e_settings, realm, state.customer_id or "")) == [
            D("50.00"), D("113.30")]
        assert D(str(invoice(e2e_settings, realm, state.invoice_id or "")["Balance"])) == TOTAL - D("163.30")


async def test_no_key_token_or_secret_reaches_a_workflow_history(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, shop: Shop, engine: Engine, account_realm: str,
    executor: ThreadPoolExecutor
) -> None:
    """Every run a card payment and an ACH refund touch, read back from the server: ids only, never the
    gateway key, the CRM's keys, the QBO tokens, the webhook secrets or the encryption key."""
    card, bank = shop.method("card"), shop.method("bank")
    async with worker(dev_env, e2e_settings, executor):
        proposal_id, _state = await shop.invoiced(dev_env.client)
        for key, method, pm in (("secret-card", "card", card), ("secret-bank", "bank", bank)):
            paid = await shop.pay(key, proposal_id=proposal_id, payment_method_id=pm, method=method, amount="10.00")
            assert paid.json()["status"] == "charged"
        refund = await shop.http.post(f"/accounts/{shop.account}/payments/secret-bank/refund", json={})
        assert refund.status_code == 200, refund.text
        await settled(dev_env.client, shop.account, proposal_id, lambda s: len(s.payments) == 2)
        crm = load_crm_credentials(engine, shop.account)
        with Session(engine) as session:
            qbo = session.get(QboConnection, account_realm)
        assert crm is not None and qbo is not None
        secrets = {"gateway API key": shop.api_key, "CRM access token": crm.access_token, "CRM web key": crm.web_key,
                   "QBO refresh token": qbo.refresh_token, "QBO access token": qbo.access_token or "-",
                   "encryption key": e2e_settings.secret_key.get_secret_value(),
                   "CRM webhook secret": e2e_settings.crm_webhook_secrets[shop.account].get_secret_value(),
                   "gateway webhook token": webhook_path(e2e_settings, shop.account).rsplit("/", 1)[1]}
        runs = [run async for run in dev_env.client.list_workflows(
            f"AccountId = '{shop.account}' AND ProposalId = '{proposal_id}'")]
        runs += [run async for run in dev_env.client.list_workflows(
            f"WorkflowId STARTS_WITH 'refund:{shop.account}:secret-'")]
        kinds = {run.workflow_type for run in runs}
        assert {"ProposalWorkflow", "PaymentCollectionWorkflow", "AchSettlementWorkflow",
                "PaymentRefundWorkflow"} <= kinds, kinds
        for run in runs:
            history = (await dev_env.client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()).to_json()
            leaked = [name for name, value in secrets.items() if value in history]
            assert leaked == [], f"{run.id} carries {leaked}"
