"""The QuickBooks adapter against the sandbox with faults injected: lost answers, concurrent calls, 429
storms. Whatever happens, each customer, invoice and payment exists once and the company's limits hold."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.qbo_client import QboConnector
from activities.qbo_limits import RealmBusy
from activities.quickbooks import QuickBooksActivities
from config.settings import Settings
from models.money import cents
from models.proposals import (
    ApplyPaymentInput,
    CrmPayment,
    EnsureCustomerInput,
    EnsureEstimateInput,
    InvoiceFromEstimateInput,
    ProposalLine,
    RecordPaymentInput,
)
from models.royalty import CheckLine, EnsureVendorInput, RoyaltyCheckInput
from sandbox.qbo.admin import dump_company, list_objects, set_faults
from tests import factories
from tests.qbo_turns import call_in_turn, with_retries

T = TypeVar("T")
ACCOUNT = "acme-austin"


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """A short client timeout, so a dropped answer costs a second, and a short wait after a 429."""
    return settings.model_copy(update={"qbo_http_timeout_seconds": 0.5, "qbo_throttle_retry_seconds": 0.2})


@pytest.fixture
def qbo(fast_settings: Settings, engine: Engine) -> QuickBooksActivities:
    return QuickBooksActivities(QboConnector(fast_settings, engine), engine)


def objects(settings: Settings, realm_id: str, entity: str) -> list[dict[str, Any]]:
    return list_objects(settings.qbo_api_url, realm_id, entity)


def lifecycle(qbo: QuickBooksActivities, realm_id: str, proposal_id: str = "P-1") -> dict[str, str]:
    """Customer, estimate, invoice, one payment recorded then applied: the proposal lifecycle's QBO side."""
    proposal = factories.proposal(proposal_id, number=proposal_id)
    customer = with_retries(qbo.ensure_customer, EnsureCustomerInput(account_id=ACCOUNT, realm_id=realm_id,
                                                                     contact=factories.contact()))
    estimate = with_retries(qbo.ensure_estimate, EnsureEstimateInput(account_id=ACCOUNT, realm_id=realm_id,
                                                                     customer_id=customer, proposal=proposal))
    payment = with_retries(qbo.record_unapplied_payment, RecordPaymentInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=customer,
        payment=CrmPayment(id=f"pay-{proposal_id}", amount=Decimal("100.00"), tip=Decimal("15.00"),
                           received_on=date(2026, 11, 20))))
    invoice = with_retries(qbo.create_invoice_from_estimate, InvoiceFromEstimateInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=customer, estimate_id=estimate, proposal=proposal))
    with_retries(qbo.apply_payment, ApplyPaymentInput(account_id=ACCOUNT, realm_id=realm_id, payment_id=payment,
                                                      invoice_id=invoice))
    return {"customer": customer, "estimate": estimate, "invoice": invoice, "payment": payment}


def assert_books(settings: Settings, realm_id: str, ids: dict[str, str]) -> None:
    assert [c["Id"] for c in objects(settings, realm_id, "Customer")] == [ids["customer"]]
    assert [e["Id"] for e in objects(settings, realm_id, "Estimate")] == [ids["estimate"]]
    [invoice] = objects(settings, realm_id, "Invoice")
    [payment] = objects(settings, realm_id, "Payment")
    assert (invoice["Id"], payment["Id"]) == (ids["invoice"], ids["payment"])
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("339.00")
    assert Decimal(str(invoice["Balance"])) == Decimal("224.00")  # 339.00 - 115.00 (amount + tip)
    assert Decimal(str(payment["UnappliedAmt"])) == Decimal("0")
    assert [line["LinkedTxn"][0]["TxnId"] for line in payment["Line"]] == [ids["invoice"]]


def test_lifecycle_lands_once_and_links(qbo: QuickBooksActivities, fast_settings: Settings, realm_id: str) -> None:
    ids = lifecycle(qbo, realm_id)
    assert lifecycle(qbo, realm_id) == ids  # everything again: nothing new
    assert_books(fast_settings, realm_id, ids)
    [estimate] = objects(fast_settings, realm_id, "Estimate")
    assert estimate["TxnStatus"] == "Closed"
    assert estimate["LinkedTxn"] == [{"TxnId": ids["invoice"], "TxnType": "Invoice"}]


def test_items_are_created_from_products_once(qbo: QuickBooksActivities, fast_settings: Settings,
                                              realm_id: str) -> None:
    customer = with_retries(qbo.ensure_customer, EnsureCustomerInput(account_id=ACCOUNT, realm_id=realm_id,
                                                                     contact=factories.contact()))
    for number in ("1", "2"):
        proposal = factories.proposal(f"P-{number}", number=number).model_copy(update={"lines": [
            ProposalLine(product="Gutter: Cleaning", description="Front", quantity=Decimal(1),
                         unit_price=Decimal("10.00")),
            ProposalLine(product="gutter  cleaning", description="Back", quantity=Decimal(2),
                         unit_price=Decimal("5.00")),
            ProposalLine(description="Other", quantity=Decimal(1), unit_price=Decimal("1.00"))]})
        with_retries(qbo.ensure_estimate, EnsureEstimateInput(account_id=ACCOUNT, realm_id=realm_id,
                                                              customer_id=customer, proposal=proposal))
    names = sorted(i["Name"] for i in objects(fast_settings, realm_id, "Item"))
    assert names == ["Gutter Cleaning", "Services"]


def test_an_item_another_account_made_meanwhile_is_taken_not_doubled(
    qbo: QuickBooksActivities, fast_settings: Settings, realm_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two accounts sharing a QBO company each need a new item: one makes it between the other's look-up and
    its write. QBO refuses the name (6240), and the item it has is taken."""
    def estimate(account: str, number: str, retry_on: tuple[type[ApplicationError], ...] = (ApplicationError,)
                 ) -> str:
        proposal = factories.proposal(f"P-{number}", number=number).model_copy(update={"lines": [
            ProposalLine(product="Gutter Guard", description="Front", quantity=Decimal(1), unit_price=Decimal("10"))]})
        customer = with_retries(qbo.ensure_customer, EnsureCustomerInput(account_id=account, realm_id=realm_id,
                                                                         contact=factories.contact()))
        return with_retries(qbo.ensure_estimate, EnsureEstimateInput(account_id=account, realm_id=realm_id,
                                                                     customer_id=customer, proposal=proposal),
                            retry_on=retry_on)

    estimate(ACCOUNT, "1")
    looked_up, lookups = qbo._named, []

    def named_late(*args: Any) -> str | None:
        lookups.append(args)
        return None if len(lookups) == 1 else looked_up(*args)  # the first ran before the item was made

    monkeypatch.setattr(qbo, "_named", named_late)
    estimate("acme-round-rock", "2", retry_on=(RealmBusy,))  # QBO's refusal is not retried away

    assert [i["Name"] for i in objects(fast_settings, realm_id, "Item")].count("Gutter Guard") == 1
    item_refs = {line["SalesItemLineDetail"]["ItemRef"]["value"] for e in objects(fast_settings, realm_id, "Estimate")
                 for line in e["Line"] if line["DetailType"] == "SalesItemLineDetail"}
    assert len(objects(fast_settings, realm_id, "Estimate")) == 2 and len(item_refs) == 1
    assert len(lookups) == 2  # the look-up, then the one after QBO refused the name


@pytest.mark.parametrize("fault", ["drop", "timeout", "500"])
def test_lost_answers_never_duplicate(qbo: QuickBooksActivities, fast_settings: Settings, realm_id: str,
                                      fault: str) -> None:
    """Every write's answer is lost once ("drop": QBO did the write, the client never heard)."""
    set_faults(fast_settings.qbo_api_url, realm_id, queued=[fault] * 6, hold_seconds=1.0)
    ids = lifecycle(qbo, realm_id)
    assert_books(fast_settings, realm_id, ids)


def test_random_faults_never_duplicate(qbo: QuickBooksActivities, fast_settings: Settings, realm_id: str) -> None:
    set_faults(fast_settings.qbo_api_url, realm_id, rates={"500": 0.1, "429": 0.1, "drop": 0.15}, hold_seconds=1.0,
               seed=7)
    ids = lifecycle(qbo, realm_id)
    assert_books(fast_settings, realm_id, ids)


def test_concurrent_calls_for_one_contact_create_one_customer(qbo: QuickBooksActivities, fast_settings: Settings,
                                                               realm_id: str) -> None:
    set_faults(fast_settings.qbo_api_url, realm_id, latency_seconds=0.05)
    request = EnsureCustomerInput(account_id=ACCOUNT, realm_id=realm_id, contact=factories.contact())
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: with_retries(qbo.ensure_customer, request), range(8)))
    assert len(set(ids)) == 1
    assert len(objects(fast_settings, realm_id, "Customer")) == 1


def test_concurrent_applications_of_one_payment_apply_it_once(qbo: QuickBooksActivities, fast_settings: Settings,
                                                               realm_id: str) -> None:
    ids = lifecycle(qbo, realm_id)
    second_invoice_proposal = factories.proposal("P-2", number="P-2")
    estimate = with_retries(qbo.ensure_estimate, EnsureEstimateInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=ids["customer"], proposal=second_invoice_proposal))
    invoice = with_retries(qbo.create_invoice_from_estimate, InvoiceFromEstimateInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=ids["customer"], estimate_id=estimate,
        proposal=second_invoice_proposal))
    payment = with_retries(qbo.record_unapplied_payment, RecordPaymentInput(
        account_id=ACCOUNT, realm_id=realm_id, customer_id=ids["customer"],
        payment=CrmPayment(id="pay-2", amount=Decimal("50.00"), received_on=date(2026, 11, 21))))
    set_faults(fast_settings.qbo_api_url, realm_id, latency_seconds=0.05)
    apply = ApplyPaymentInput(account_id=ACCOUNT, realm_id=realm_id, payment_id=payment, invoice_id=invoice)
    with ThreadPoolExecutor(max_workers=5) as pool:
        applied = list(pool.map(lambda _: with_retries(qbo.apply_payment, apply), range(5)))
    assert applied == [Decimal("50.00")] * 5
    saved = next(p for p in objects(fast_settings, realm_id, "Payment") if p["Id"] == payment)
    assert len(saved["Line"]) == 1 and Decimal(str(saved["UnappliedAmt"])) == 0
    balance = next(i for i in objects(fast_settings, realm_id, "Invoice") if i["Id"] == invoice)["Balance"]
    assert Decimal(str(balance)) == Decimal("289.00")


def test_limits_hold_across_concurrent_callers(settings: Settings, engine: Engine, realm_id: str) -> None:
    """30 callers at once on one company, through two workers' connectors: never more than 10 calls in flight
    at QBO, never QBO's own 429. (No answer is dropped here: the usual client timeout, as 30 callers on the
    in-process sandbox can take longer than the fault tests' half second on a busy machine.)"""
    set_faults(settings.qbo_api_url, realm_id, latency_seconds=0.1)
    workers = [QboConnector(settings, engine) for _ in range(2)]
    busy: list[str] = []

    def one_call(n: int) -> int:
        return len(call_in_turn(workers[n % 2], realm_id, lambda qb: qb.query("SELECT * FROM Item"),
                                on_busy=lambda error: busy.append(error.type or "")))

    with ThreadPoolExecutor(max_workers=30) as pool:
        list(pool.map(one_call, range(30)))
    dump = dump_company(settings.qbo_api_url, realm_id)
    assert busy, "the callers should have been made to wait"
    assert 1 < dump["peak_in_flight"] <= 10
    assert dump["throttled"] == 0


def test_royalty_check_is_written_once(qbo: QuickBooksActivities, fast_settings: Settings, realm_id: str) -> None:
    vendor = EnsureVendorInput(account_id=ACCOUNT, realm_id=realm_id, name="Acme Franchising")
    set_faults(fast_settings.qbo_api_url, realm_id, queued=["drop"], hold_seconds=1.0)
    vendor_id = with_retries(qbo.ensure_vendor, vendor)
    assert with_retries(qbo.ensure_vendor, vendor) == vendor_id
    check = RoyaltyCheckInput(
        account_id=ACCOUNT, realm_id=realm_id, run_id="royalty:acme:2026-11-21", vendor_name="Acme Franchising",
        vendor_id=vendor_id, bank_account="Checking", memo="Royalty 2026-11-21: payments pay-1, pay-2",
        doc_number="R20261121",
        lines=[CheckLine(expense_account="Royalty Expense", amount=cents(Decimal("60.005")), description="6%"),
               CheckLine(expense_account="Advertising & Marketing", amount=Decimal("20.00"), description="2%")])
    set_faults(fast_settings.qbo_api_url, realm_id, queued=["drop"], hold_seconds=1.0)
    first = with_retries(qbo.write_royalty_check, check)
    assert with_retries(qbo.write_royalty_check, check) == first
    [purchase] = objects(fast_settings, realm_id, "Purchase")
    assert purchase["PaymentType"] == "Check" and Decimal(str(purchase["TotalAmt"])) == Decimal("80.01")
    [vendor] = objects(fast_settings, realm_id, "Vendor")
    assert purchase["EntityRef"]["value"] == vendor["Id"] and vendor["DisplayName"] == "Acme Franchising"

    # A run started before the workflow ensured the vendor first leaves it to the check: the same vendor.
    older = check.model_copy(update={"run_id": "royalty:acme:2026-11-20", "doc_number": "R20261120",
                                     "vendor_id": None})
    with_retries(qbo.write_royalty_check, older)
    assert {p["EntityRef"]["value"] for p in objects(fast_settings, realm_id, "Purchase")} == {vendor["Id"]}
    assert len(objects(fast_settings, realm_id, "Vendor")) == 1


async def test_a_429_storm_through_temporal_ends_with_all_work_done(
    dev_env: WorkflowEnvironment, fast_settings: Settings, engine: Engine, account_realm: str
) -> None:
    """A burst of proposals for one company while QBO throttles a third of the calls: every estimate lands
    once, and the company never sees more than its limits from us."""
    from sqlmodel import Session

    from dispatch import send_sales_cycle_change
    from models.accounts import Franchisee
    from models.proposals import ProposalState, proposal_workflow_id
    from worker import build_worker
    from workflows.proposal import ProposalWorkflow

    realm_id = account_realm
    with Session(engine) as session:
        franchisee = session.get(Franchisee, ACCOUNT)
    assert franchisee is not None
    settings = fast_settings.model_copy(update={"qbo_http_timeout_seconds": 5.0, "qbo_throttle_retry_seconds": 1.0})
    set_faults(settings.qbo_api_url, realm_id, rates={"429": 0.33}, seed=3)
    proposals = [f"P-{uuid.uuid4().hex[:6]}" for _ in range(12)]
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with build_worker(dev_env.client, settings, executor):
            for n, proposal_id in enumerate(proposals):
                change = factories.sales_cycle_change(event_id=f"e{n}", contact_id=f"C-{n}", proposal_id=proposal_id,
                                                      number=proposal_id)
                change = change.model_copy(update={"contact": change.contact.model_copy(
                    update={"first_name": f"Storm{n}"})})
                await send_sales_cycle_change(dev_env.client, settings, franchisee, change)
            states: list[ProposalState] = []
            for proposal_id in proposals:
                handle = dev_env.client.get_workflow_handle(proposal_workflow_id(ACCOUNT, proposal_id))
                for _ in range(900):
                    state = await handle.query(ProposalWorkflow.state)
                    if state.estimate_id:
                        break
                    await asyncio.sleep(0.1)
                states.append(state)
    assert all(s.estimate_id and not s.failed_events for s in states), [s.failed_events for s in states]
    estimates = objects(settings, realm_id, "Estimate")
    assert sorted(e["DocNumber"] for e in estimates) == sorted(proposals)
    assert len(objects(settings, realm_id, "Customer")) == 12
    dump = dump_company(settings.qbo_api_url, realm_id)
    assert dump["peak_in_flight"] <= 10 and dump["throttled"] == 0


def test_parallel_refreshes_by_two_workers_never_burn_the_refresh_token(settings: Settings, engine: Engine,
                                                                         realm_id: str) -> None:
    """Refresh tokens rotate: two workers refreshing with the same one would get invalid_grant. The row lock
    makes the second use the token the first stored. (No faults here: the usual client timeout, as eight calls
    at once to the in-process sandbox can take longer than the fault tests' half second.)"""
    workers = [QboConnector(settings, engine) for _ in range(2)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: workers[n % 2].call(realm_id, lambda qb: qb.query("SELECT * FROM Item")),
                                range(8)))
    assert all(r["QueryResponse"]["Item"] for r in results)
    from sqlmodel import Session

    from models.qbo_connection import QboConnection
    from sandbox.qbo.admin import sandbox_root

    with Session(engine) as session:
        stored = session.get(QboConnection, realm_id)
    assert stored is not None
    import httpx

    still_good = httpx.post(f"{sandbox_root(settings.qbo_api_url)}/oauth2/v1/tokens/bearer",
                            data={"grant_type": "refresh_token", "refresh_token": stored.refresh_token})
    assert still_good.status_code == 200  # the stored refresh token is the newest one
