"""The proposal lifecycle end to end through the real parts: staff act in the CRM sandbox (or events reach the
front door in any order), the API signals the proposal's workflow on the dev server, the worker writes to the
QBO sandbox with python-quickbooks, and the ledger is a real SQLite file. Each test checks the books: one
customer, one estimate, one invoice linked to it, balances right, every payment applied once."""

import random
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from activities.qbo_client import QboConnector
from config.settings import Settings
from dispatch import start_reconcile
from models.ledger import LedgerPayment
from models.proposals import (
    CrmEvent,
    PaymentAdded,
    PaymentVoided,
    Proposal,
    ProposalChanged,
    ProposalLine,
    SalesCycleChange,
)
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.qbo.admin import list_objects, set_faults
from sandbox.serve import ServerThread
from tests import factories
from tests.e2e import post_event, settled, worker
from tests.qbo_turns import call_in_turn
from tests.test_proposal_e2e import replay

LINES = [{"product": "Roof Inspection", "description": "Full roof", "quantity": "1", "unit_price": "149.00"},
         {"product": "Gutter Guard", "description": "Per foot", "quantity": "40", "unit_price": "4.25"}]
TOTAL = Decimal("319.00")  # 149.00 + 40 x 4.25


@dataclass
class Books:
    """One proposal's objects in the QBO sandbox company."""

    customers: list[dict[str, Any]]
    estimates: list[dict[str, Any]]
    invoices: list[dict[str, Any]]
    payments: list[dict[str, Any]]

    @classmethod
    def read(cls, settings: Settings, realm_id: str) -> "Books":
        return cls(*(list_objects(settings.qbo_api_url, realm_id, entity)
                     for entity in ("Customer", "Estimate", "Invoice", "Payment")))

    def assert_invoiced(self, total: Decimal, paid: Decimal) -> None:
        """One customer, one estimate closed by one invoice linked to it, the invoice's balance right, and
        every live payment applied once to it and nothing left unapplied."""
        [customer], [estimate], [invoice] = self.customers, self.estimates, self.invoices
        assert invoice["LinkedTxn"][0] == {"TxnId": estimate["Id"], "TxnType": "Estimate"}
        assert estimate["TxnStatus"] == "Closed" and invoice["DocNumber"] == estimate["DocNumber"]
        assert Decimal(str(invoice["TotalAmt"])) == total
        assert Decimal(str(invoice["Balance"])) == total - paid
        for payment in self.live_payments():
            assert payment["CustomerRef"]["value"] == customer["Id"]
            assert [line["LinkedTxn"] for line in payment["Line"]] == [[{"TxnId": invoice["Id"], "TxnType": "Invoice"}]]
            assert Decimal(str(payment["UnappliedAmt"])) == 0

    def live_payments(self) -> list[dict[str, Any]]:
        return [p for p in self.payments if Decimal(str(p["TotalAmt"])) > 0]

    def of(self, proposal_id: str) -> "Books":
        """One `scenario` proposal's objects, when the company holds several of one customer's: its estimate and
        invoice carry its number, its payments' references start with its id."""
        return Books(self.customers, [e for e in self.estimates if e["DocNumber"] == proposal_id],
                     [i for i in self.invoices if i["DocNumber"] == proposal_id],
                     [p for p in self.payments if p["PaymentRefNum"].startswith(proposal_id)])


def crm_proposal(settings: Settings, account: str, first: str, last: str) -> tuple[CrmSandboxAdmin, str, str]:
    """Staff's first steps in the CRM: a contact and a proposal with LINES. The admin, contact id, proposal id."""
    crm = CrmSandboxAdmin(settings.crm_api_url)
    contact_id = crm.create_contact(account, firstName=first, lastName=last)["client_id"]
    return crm, contact_id, crm.create_proposal(account, contact_id, LINES)["proposal_id"]


def ledger_payments(engine: Engine, proposal_id: str) -> list[LedgerPayment]:
    with Session(engine) as session:
        return list(session.exec(select(LedgerPayment).where(LedgerPayment.proposal_id == proposal_id)
                                 .order_by(LedgerPayment.id)))


async def test_the_lifecycle_from_the_crm_books_everything_once_and_a_refund_reverses_it(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, crm_account: str
) -> None:
    crm = CrmSandboxAdmin(e2e_settings.crm_api_url)
    contact = crm.create_contact(crm_account, firstName="Morgan", lastName="Reyes", email="morgan@example.com")
    proposal = crm.create_proposal(crm_account, contact["client_id"], LINES, number=f"Q-{uuid.uuid4().hex[:6]}")
    proposal_id = proposal["proposal_id"]
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            # A deposit before the proposal is even sent: an unapplied payment on the customer.
            deposit = crm.add_payment(crm_account, proposal_id, Decimal("100.00"), date(2026, 11, 18),
                                      tip=Decimal("10.00"), method="check")
            state = await settled(dev_env.client, crm_account, proposal_id,
                                  lambda s: s.payments and s.payments[0].qbo_id)
            assert state.estimate_id is None and state.unapplied_total == Decimal("110.00")

            crm.move_step(crm_account, contact["client_id"], "Proposal Sent")
            crm.edit_proposal(crm_account, proposal_id, contact["client_id"],
                              [LINES[0], {**LINES[1], "quantity": "50"}])  # 149.00 + 50 x 4.25 = 361.50
            await settled(dev_env.client, crm_account, proposal_id, lambda s: s.estimate_id and
                          s.estimate_version == s.proposal_version and s.proposal_version >= 1)
            crm.move_step(crm_account, contact["client_id"], "Job Complete")
            await settled(dev_env.client, crm_account, proposal_id, lambda s: s.invoice_id)
            later = crm.add_payment(crm_account, proposal_id, Decimal("51.50"), date(2026, 11, 21))
            state = await settled(dev_env.client, crm_account, proposal_id,
                                  lambda s: len(s.payments) == 2 and all(p.applied for p in s.payments))

            books = Books.read(e2e_settings, account_realm)
            books.assert_invoiced(total=Decimal("361.50"), paid=Decimal("161.50"))
            assert books.customers[0]["DisplayName"] == "Morgan Reyes"
            assert sorted(p["PaymentRefNum"] for p in books.payments) == sorted(
                [deposit["payment_id"], later["payment_id"]])
            rows = ledger_payments(engine, proposal_id)
            assert [(r.amount, r.tip, r.received_on, r.method, r.voided) for r in rows] == [
                (Decimal("100.00"), Decimal("10.00"), date(2026, 11, 18), "check", None),
                (Decimal("51.50"), Decimal("0.00"), date(2026, 11, 21), "card", None)]

            crm.void_payment(crm_account, later["payment_id"], kind="refund")
            await settled(dev_env.client, crm_account, proposal_id,
                          lambda s: any(p.voided_in_qbo for p in s.payments))
            await replay(dev_env.client, f"proposal:{crm_account}:{proposal_id}")

    books = Books.read(e2e_settings, account_realm)
    books.assert_invoiced(total=Decimal("361.50"), paid=Decimal("110.00"))
    assert len(books.payments) == 2 and len(books.live_payments()) == 1  # the refunded one voided, kept
    refunded = next(r for r in ledger_payments(engine, proposal_id) if r.crm_payment_id == later["payment_id"])
    assert refunded.voided == "refund" and refunded.voided_at is not None


def scenario(proposal_id: str) -> list[SalesCycleChange | CrmEvent]:
    """A proposal's events as the CRM would send them, with its own ids."""
    proposal = factories.proposal(proposal_id=proposal_id, number=proposal_id)
    edited = proposal.model_copy(update={"lines": proposal.lines[:1]})  # down to the 289.00 line
    contact = factories.contact()

    def stage(event_id: str, step: str, minutes: int) -> SalesCycleChange:
        change = factories.sales_cycle_change(event_id=event_id, step=step, proposal_id=proposal_id,
                                              number=proposal_id)
        return change.model_copy(update={"occurred_at": factories.T0 + timedelta(minutes=minutes),
                                         "proposal": proposal if minutes < 2 else edited})

    def payment(event_id: str, payment_id: str, amount: str, minutes: int, void: bool = False) -> CrmEvent:
        fields: dict[str, Any] = dict(
            event_id=event_id, account_id="acme-austin", occurred_at=factories.T0 + timedelta(minutes=minutes),
            contact=contact, proposal_id=proposal_id, proposal_number=proposal_id,
            payment=factories.crm_payment(f"{proposal_id}-{payment_id}", amount))
        return PaymentVoided(**fields, kind="void") if void else PaymentAdded(**fields)

    return [
        stage(f"{proposal_id}-1", "Proposal Sent", 0),
        payment(f"{proposal_id}-2", "pay-1", "89.00", 1),
        ProposalChanged(event_id=f"{proposal_id}-3", account_id="acme-austin",
                        occurred_at=factories.T0 + timedelta(minutes=2), contact=contact, proposal=edited),
        payment(f"{proposal_id}-4", "pay-2", "40.00", 3),
        stage(f"{proposal_id}-5", "Job Complete", 4),
        payment(f"{proposal_id}-6", "pay-2", "40.00", 5, void=True),
        payment(f"{proposal_id}-7", "pay-3", "100.00", 6),
    ]


async def test_shuffled_and_duplicated_deliveries_give_the_same_books(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread
) -> None:
    proposal_id = f"P-{uuid.uuid4().hex[:8]}"
    events = scenario(proposal_id)
    rng = random.Random(proposal_id)
    deliveries = events + rng.sample(events, 4)
    rng.shuffle(deliveries)
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            answers = [(await post_event(api.url, e2e_settings, event)).status_code for event in deliveries]
            ids = {e.event_id for e in events}
            await settled(dev_env.client, "acme-austin", proposal_id, lambda s: ids <= set(s.events_seen))

    assert set(answers) == {202}
    books = Books.read(e2e_settings, account_realm)
    books.assert_invoiced(total=Decimal("289.00"), paid=Decimal("189.00"))
    assert len(books.live_payments()) == 2


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 1, 2, 0), (3, 0, 2, 1)],
                         ids=["in order", "first completion last", "reopen after both completions"])
async def test_a_reopened_job_redelivered_out_of_order_invoices_its_second_completion(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread,
    order: tuple[int, ...],
) -> None:
    """Webhooks redelivered in any order after an outage, all taken in before a worker writes anything: the job
    completed with 500, reopened, edited to 700 and completed again with 600 in the edit's CRM second. The
    invoice bills 600."""
    proposal_id = f"P-{uuid.uuid4().hex[:8]}"

    def priced(unit_price: str) -> Proposal:
        return factories.proposal(proposal_id, number=proposal_id).model_copy(update={"lines": [
            ProposalLine(description="Gutter cleaning", quantity=Decimal(1), unit_price=Decimal(unit_price))]})

    def moved(n: int, step: str, seconds: int, unit_price: str) -> SalesCycleChange:
        change = factories.sales_cycle_change(event_id=f"{proposal_id}-{n}", step=step, proposal_id=proposal_id,
                                              number=proposal_id)
        return change.model_copy(update={"occurred_at": factories.T0 + timedelta(seconds=seconds),
                                         "proposal": priced(unit_price)})

    edit = ProposalChanged(event_id=f"{proposal_id}-4", account_id="acme-austin", contact=factories.contact(),
                           occurred_at=factories.T0 + timedelta(seconds=12), proposal=priced("700.00"))
    reports: list[SalesCycleChange | CrmEvent] = [
        moved(2, "Job Complete", 10, "500.00"), moved(3, "Proposal Sent", 11, "500.00"), edit,
        moved(5, "Job Complete", 12, "600.00")]
    deliveries = [moved(1, "Proposal Sent", 0, "410.00"), *(reports[i] for i in order)]
    answers = [(await post_event(api.url, e2e_settings, event)).status_code for event in deliveries]
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            state = await settled(dev_env.client, "acme-austin", proposal_id, lambda s: s.invoice_id)

    assert set(answers) == {202}
    Books.read(e2e_settings, account_realm).assert_invoiced(total=Decimal("600.00"), paid=Decimal(0))
    assert state.proposal == priced("600.00")


async def test_activities_waiting_in_the_worker_for_a_thread_still_book_everything_once(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread
) -> None:
    """The worker takes more activity tasks than it has threads (so Temporal can hand them over eagerly): with
    one thread and six slots, three proposals' activities queue in the worker, and every book is still right."""
    settings = e2e_settings.model_copy(update={"worker_activity_threads": 1, "worker_activity_slots": 6})
    proposal_ids = [f"P-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor):
            for event in [e for events in zip(*map(scenario, proposal_ids), strict=True) for e in events]:
                await post_event(api.url, settings, event)
            for proposal_id in proposal_ids:
                await settled(dev_env.client, "acme-austin", proposal_id, lambda s: s.invoice_id and all(
                    p.applied is not None or p.voided for p in s.payments), seconds=120)

    books = Books.read(settings, account_realm)
    assert len(books.customers) == 1  # the scenario's one contact
    for proposal_id in proposal_ids:
        proposal_books = books.of(proposal_id)
        proposal_books.assert_invoiced(total=Decimal("289.00"), paid=Decimal("189.00"))
        assert sorted(Decimal(str(p["TotalAmt"])) for p in proposal_books.live_payments()) == [
            Decimal("89.00"), Decimal("100.00")]


async def test_an_edit_right_after_the_job_is_complete_is_not_billed(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, crm_account: str
) -> None:
    """Staff complete the job and edit the proposal straight after (often within the CRM's same second): the
    invoice bills the lines the job was completed with, and the edit is a notice."""
    crm, contact_id, proposal_id = crm_proposal(e2e_settings, crm_account, "Avery", "Cole")
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            crm.move_step(crm_account, contact_id, "Proposal Sent")
            await settled(dev_env.client, crm_account, proposal_id, lambda s: s.estimate_id)
            crm.move_step(crm_account, contact_id, "Job Complete")
            crm.edit_proposal(crm_account, proposal_id, contact_id, [{**LINES[0], "unit_price": "999.00"}])
            state = await settled(dev_env.client, crm_account, proposal_id, lambda s: s.invoice_id and any(
                "changed after the job was complete" in notice for notice in s.notices))

    books = Books.read(e2e_settings, account_realm)
    books.assert_invoiced(total=TOTAL, paid=Decimal(0))
    assert Decimal(str(books.estimates[0]["TotalAmt"])) == TOTAL
    assert state.proposal is not None and state.proposal.total == TOTAL


async def test_a_lost_proposal_rejects_its_estimate_and_keeps_its_payment_unapplied(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, crm_account: str
) -> None:
    crm, contact_id, proposal_id = crm_proposal(e2e_settings, crm_account, "Riley", "Stone")
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            crm.move_step(crm_account, contact_id, "Proposal Sent")
            crm.add_payment(crm_account, proposal_id, Decimal("75.00"), date(2026, 11, 20))
            await settled(dev_env.client, crm_account, proposal_id, lambda s: s.estimate_id and s.payments)
            crm.move_step(crm_account, contact_id, "Lost")
            state = await settled(dev_env.client, crm_account, proposal_id, lambda s: s.estimate_status == "Rejected")

    books = Books.read(e2e_settings, account_realm)
    assert [e["TxnStatus"] for e in books.estimates] == ["Rejected"] and books.invoices == []
    assert [Decimal(str(p["UnappliedAmt"])) for p in books.payments] == [Decimal("75.00")]
    assert any("lost with 75.00" in notice for notice in state.notices)


async def test_qbo_faults_delay_the_books_but_never_double_them(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, account_realm: str, api: ServerThread
) -> None:
    """500s, 429s, timeouts and commit-then-drop (the write lands, its answer never does) on a fifth of the
    calls: every object still exists exactly once."""
    settings = e2e_settings.model_copy(update={"qbo_http_timeout_seconds": 1.0})
    set_faults(settings.qbo_api_url, account_realm, rates={"500": 0.06, "429": 0.04, "timeout": 0.04, "drop": 0.06},
               hold_seconds=1.5, seed=7)
    proposal_id = f"P-{uuid.uuid4().hex[:8]}"
    events = scenario(proposal_id)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor):
            for event in events:
                await post_event(api.url, settings, event)
            await settled(dev_env.client, "acme-austin", proposal_id,
                          lambda s: s.invoice_id and all(p.applied is not None or p.voided for p in s.payments),
                          seconds=120)
    set_faults(settings.qbo_api_url, account_realm)
    books = Books.read(settings, account_realm)
    books.assert_invoiced(total=Decimal("289.00"), paid=Decimal("189.00"))
    assert len(books.live_payments()) == 2


async def test_reconciliation_catches_up_what_lost_webhooks_missed(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, crm_account: str
) -> None:
    # Webhooks off: every one of them is lost.
    CrmSandboxAdmin(e2e_settings.crm_api_url).create_account(crm_account, "Acme Home Services of Austin")
    crm, contact_id, proposal_id = crm_proposal(e2e_settings, crm_account, "Jamie", "Lin")
    crm.move_step(crm_account, contact_id, "Job Complete")
    payment = crm.add_payment(crm_account, proposal_id, Decimal("119.00"), date(2026, 11, 21))
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            result = await (await start_reconcile(dev_env.client, e2e_settings, crm_account)).result()
            await settled(dev_env.client, crm_account, proposal_id, lambda s: s.payments and s.payments[0].applied)
            assert result.proposals_fed >= 1 and result.cursor is not None
            Books.read(e2e_settings, account_realm).assert_invoiced(total=TOTAL, paid=Decimal("119.00"))

            crm.void_payment(crm_account, payment["payment_id"])
            second = await (await start_reconcile(dev_env.client, e2e_settings, crm_account)).result()
            await settled(dev_env.client, crm_account, proposal_id, lambda s: s.payments[0].voided_in_qbo)

    assert second.since is not None  # the second run read from the cursor, not from the start
    Books.read(e2e_settings, account_realm).assert_invoiced(total=TOTAL, paid=Decimal(0))
    assert [r.voided for r in ledger_payments(engine, proposal_id)] == ["void"]


@pytest.mark.parametrize("made_by_hand", [False, True], ids=["fixed", "fixed-and-made-by-hand"])
async def test_a_sync_stuck_on_a_qbo_setup_fault_is_visible_and_resumes_once_fixed(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, crm_account: str,
    made_by_hand: bool,
) -> None:
    """New items need the "Services" income account; renamed away, the estimate is stuck (and says why) while
    the payment still lands. Renamed back, a `retry` signal resumes it; an estimate staff made by hand meanwhile
    (the proposal's number, for its customer) is taken, not doubled."""
    from quickbooks.objects.account import Account
    from quickbooks.objects.estimate import Estimate
    from quickbooks.objects.item import Item

    from models import search_attributes as sa
    from workflows.proposal import ProposalWorkflow

    qbo = QboConnector(e2e_settings, engine)

    def rename(old: str, new: str) -> None:
        [account] = call_in_turn(qbo, account_realm, lambda qb: Account.filter(Name=old, qb=qb))
        account.Name = new
        call_in_turn(qbo, account_realm, lambda qb: account.save(qb=qb))

    rename("Services", "Sales of services")
    crm, contact_id, proposal_id = crm_proposal(e2e_settings, crm_account, "Quinn", "Ade")
    with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
        async with worker(dev_env, e2e_settings, executor):
            crm.move_step(crm_account, contact_id, "Proposal Sent")
            crm.add_payment(crm_account, proposal_id, Decimal("20.00"), date(2026, 11, 21))
            state = await settled(dev_env.client, crm_account, proposal_id,
                                  lambda s: s.stuck and s.payments and s.payments[0].qbo_id)
            handle = dev_env.client.get_workflow_handle(f"proposal:{crm_account}:{proposal_id}")
            assert [s.step for s in state.stuck] == ["estimate"] and "Services" in state.stuck[0].error
            assert (await handle.describe()).typed_search_attributes.get(sa.SYNC_STATUS) == "stuck"

            by_hand = None
            if made_by_hand:
                assert state.proposal is not None and state.customer_id is not None
                [item] = call_in_turn(qbo, account_realm, lambda qb: Item.filter(Name="Services", qb=qb))
                estimate = Estimate.from_json({
                    "DocNumber": state.proposal.number, "CustomerRef": {"value": state.customer_id},
                    "Line": [{"Amount": "339.00", "DetailType": "SalesItemLineDetail",
                              "SalesItemLineDetail": {"ItemRef": {"value": item.Id}}}]})
                by_hand = call_in_turn(qbo, account_realm, lambda qb: estimate.save(qb=qb)).Id

            rename("Sales of services", "Services")
            await handle.signal(ProposalWorkflow.retry)
            state = await settled(dev_env.client, crm_account, proposal_id, lambda s: s.estimate_id)
            assert state.stuck == []
            assert (await handle.describe()).typed_search_attributes.get(sa.SYNC_STATUS) == "ok"
    estimates = Books.read(e2e_settings, account_realm).estimates
    assert [e["Id"] for e in estimates] == [state.estimate_id]
    assert by_hand is None or state.estimate_id == by_hand
