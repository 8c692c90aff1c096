"""The chaos suite, on the dev server through the real parts: every outside service failing at once (QBO, the
CRM, the gateway, SMTP and SMS answering 500s, 429s, timeouts and commit-then-drop on about 15% of the calls),
and two workers sharing a burst while one of them is killed with SIGKILL. After each: every expected object
exists exactly once, no charge, check or message is doubled, no event is lost."""

import asyncio
import shutil
import signal
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from dispatch import enroll_contact, start_royalty_run
from models.api_keys import create_api_key
from models.enrollments import EnrollmentResult, plan_workflow_id
from models.lead_keys import LeadChannel, create_lead_key
from models.lead_receipts import LeadReceipt, receipts
from models.proposals import proposal_workflow_id
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.messaging.admin import MessagingSandboxAdmin
from sandbox.qbo.admin import dump_company, list_objects, set_faults
from sandbox.serve import ServerThread
from tests.conftest import install_franchisor, new_realm, point_account_at
from tests.e2e import polling, post_event, settled, worker, worker_process
from tests.test_lead_e2e import angi_lead, contacts_with, person
from tests.test_lifecycle_e2e import LINES, TOTAL, Books, scenario
from tests.test_payments_e2e import Shop, qbo_payments
from tests.test_plan_e2e import noon_zone, plan_file, until
from tests.test_royalty_e2e import NIGHT, check_lines, checks, run_night
from tests.test_royalty_workflow import pay
from workflows.action_plan import ActionPlanWorkflow

D = Decimal
ROOT = Path(__file__).parent.parent
# About 15% of the calls fail; a drop is the worst: the write lands and its answer never comes.
CHAOS = {"500": 0.05, "429": 0.04, "timeout": 0.03, "drop": 0.03}
EACH_KIND = ["drop", "429", "500", "timeout"]  # first, so every service meets each kind whatever the dice say
PROPOSALS = 8
HOLD = 1.5  # how long a timeout or a drop keeps the client waiting: longer than its timeout below
HELLO = [{"id": "hello", "type": "email", "subject": "Hello {{ contact.first_name | fallback('you') }}",
          "body": "<p>Hi</p>"},
         {"id": "hello-text", "type": "text",
          "body": "Hi {{ contact.first_name | fallback('there') }}. Reply STOP to opt out."},
         {"id": "wait", "type": "wait", "duration": "30d"}]


@pytest.fixture
def chaos_settings(e2e_settings: Settings, tmp_path: Path) -> Settings:
    """Short client timeouts (a lost answer costs a second, not a minute), a short QBO activity time limit (a
    dead worker's QBO activities run again elsewhere after it) and, beside the shipped plans, one that emails,
    texts and waits."""
    plans = tmp_path / "plans"
    shutil.copytree(ROOT / "config" / "plans", plans)
    plan_file(plans, "chaos-hello", HELLO)
    return e2e_settings.model_copy(update={
        "plans_dir": plans, "qbo_http_timeout_seconds": 1.0, "crm_http_timeout_seconds": 1.0,
        "gateway_http_timeout_seconds": 1.0, "gateway_retries": 0, "qbo_activity_timeout": timedelta(seconds=10)})


@pytest.fixture
def chaos_api(chaos_settings: Settings, engine: Engine) -> Any:
    from api.app import create_app

    with ServerThread(create_app(chaos_settings)) as server:
        yield server


def faults_everywhere(settings: Settings, shop: Shop, realm: str, on: bool) -> None:
    """Every outside service of acme-austin failing at CHAOS rates (or, `on=False`, working again)."""
    rates, queued = (CHAOS, EACH_KIND) if on else ({}, [])
    set_faults(settings.qbo_api_url, realm, queued=queued, rates=rates, hold_seconds=HOLD, seed=17)
    shop.crm.set_faults(shop.account, queued=queued, rates=rates, hold_seconds=HOLD, seed=18)
    shop.gateway.set_faults(shop.merchant, queued=queued, rates=rates, hold_seconds=HOLD, seed=19)
    messages = MessagingSandboxAdmin(settings.sms_api_url)
    messages.set_email_faults(queued=queued, rates=rates, hold_seconds=HOLD)
    messages.set_sms_faults(settings.twilio_account_sid, queued=queued, rates=rates, hold_seconds=HOLD)


async def test_every_service_failing_at_once_delays_the_books_but_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, chaos_settings: Settings, engine: Engine, account_realm: str, crm_account: str,
    franchisor_id: str, chaos_api: ServerThread
) -> None:
    settings = chaos_settings
    shop = Shop(settings, engine, chaos_api, crm_account)
    crm = shop.crm
    messages = MessagingSandboxAdmin(settings.sms_api_url)
    cards = [shop.method("card") for _ in range(2)]
    lead_key = create_lead_key(engine, crm_account, LeadChannel.ANGI, api_key="angi-chaos-secret")
    leads = [person() for _ in range(2)]
    enrolled = [crm.create_contact(crm_account, firstName=f"Casey{n}", lastName="Chaos", smsok=True,
                                   email=f"casey.{uuid.uuid4().hex[:8]}@example.com", time_zone=noon_zone(),
                                   phone=f"737555{uuid.uuid4().int % 10_000:04d}")
                for n in range(2)]
    contacts = [crm.create_contact(crm_account, firstName="Sky", lastName=f"Burst{n}")["client_id"] for n in range(3)]
    numbers = [f"X-{uuid.uuid4().hex[:6]}" for _ in contacts]
    proposals = [crm.create_proposal(crm_account, contact, LINES, number=number)["proposal_id"]
                 for contact, number in zip(contacts, numbers, strict=True)]
    api_key = create_api_key(engine, crm_account)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor), httpx.AsyncClient(
                base_url=chaos_api.url, timeout=120, headers={"X-API-Key": api_key}) as http:
            faults_everywhere(settings, shop, account_realm, on=True)
            try:
                # The staff's work in the CRM reaches the front door as webhooks; leads and enrollments come too.
                for contact, proposal in zip(contacts, proposals, strict=True):
                    crm.add_payment(crm_account, proposal, D("100.00"), date(2026, 11, 10))
                    crm.move_step(crm_account, contact, "Proposal Sent", proposal)
                    crm.move_step(crm_account, contact, "Job Complete", proposal)
                    crm.add_payment(crm_account, proposal, D("50.00"), date(2026, 11, 12))
                for who in leads:
                    answer = await http.post(f"/leads/angi/{lead_key}", json=angi_lead(who),
                                             headers={"x-api-key": "angi-chaos-secret"})
                    assert answer.status_code == 200, answer.text
                for contact in enrolled:
                    answer = await http.post(f"/accounts/{crm_account}/contacts/{contact['client_id']}/plans",
                                             json={"plan_id": "chaos-hello"})
                    assert answer.status_code == 202, answer.text
                states = [await settled(dev_env.client, crm_account, proposal, seconds=240, done=lambda s: s.invoice_id
                                        and len(s.payments) == 2 and all(p.applied for p in s.payments))
                          for proposal in proposals]
                # Two customers pay through the gateway: charged, recorded on the CRM proposal, booked in QBO.
                for n, card in enumerate(cards):
                    answer = await http.post(f"/accounts/{crm_account}/payments", json={
                        "proposal_id": proposals[n], "payment_method_id": card, "method": "card", "amount": "40.00"},
                        headers={"Idempotency-Key": f"chaos-{n}"})
                    assert answer.status_code == 200 and answer.json()["status"] == "charged", answer.text
                for proposal in proposals[:2]:
                    await settled(dev_env.client, crm_account, proposal, seconds=240,
                                  done=lambda s: len(s.payments) == 3 and all(p.applied for p in s.payments))
                outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT)
                for contact in enrolled:
                    await waiting_in(dev_env.client, plan_workflow_id(crm_account, contact["client_id"], "chaos-hello"),
                                     "wait")
                lead_rows = await lead_receipts_settled(engine, crm_account, len(leads))
                injected = (dump_company(settings.qbo_api_url, account_realm)["faults"]["injected"],
                            crm.faults(crm_account)["injected"])
            finally:
                faults_everywhere(settings, shop, account_realm, on=False)

    assert all(set(kinds) == set(EACH_KIND) for kinds in injected), injected  # the chaos did happen: QBO, CRM
    # QBO: per proposal one customer, estimate and invoice; every CRM payment once, applied in full.
    books = Books.read(settings, account_realm)
    assert len(books.customers) == 3 and len(books.estimates) == 3
    assert sorted(i["DocNumber"] for i in books.invoices) == sorted(numbers)
    references = [p["PaymentRefNum"] for p in books.payments]
    assert len(references) == len(set(references)) == 3 * 2 + 2
    assert all(D(str(p["UnappliedAmt"])) == 0 for p in books.payments)
    collected = D("40.00") * D("1.03")  # Austin's 3% convenience fee on the card
    assert sorted(D(str(i["Balance"])) for i in books.invoices) == sorted(
        [TOTAL - D("150.00") - collected] * 2 + [TOTAL - D("150.00")])
    for state in states[:2]:
        assert collected in {D(str(p["TotalAmt"])) for p in qbo_payments(settings, account_realm,
                                                                          state.customer_id or "")}
    # The gateway charged each card once; the CRM holds each collected payment once.
    assert [len(shop.charges(card)) for card in cards] == [1, 1]
    assert [len(shop.crm_payments(p)) for p in proposals] == [3, 3, 2]
    # The royalty check, once: 6% royalty and 2% marketing on the six CRM payments before the cut-off.
    assert outcomes["acme-austin"].status == "check_written"
    [check] = checks(settings, account_realm)
    assert check_lines(check) == [("Royalty Expense", D("27.00")), ("Advertising & Marketing", D("9.00"))]
    # Each lead is one contact with one note; each enrolled contact got its email and its text once.
    assert sorted(r.outcome for r in lead_rows) == ["created", "created"]
    for who in leads:
        [lead_contact] = contacts_with(crm, email=who["email"])
        assert len([n for n in crm.notes(crm_account, lead_contact["client_id"])
                    if "[ledgerflow lead-source:" in n["note"]]) == 1
    for contact in enrolled:
        # SMTP cannot be asked whether a message whose answer was lost was taken: a resend carries the same
        # Message-ID, which the contact's mailbox shows once.
        mails = messages.emails(to=contact["email"])
        assert {(m["message_id"], m["subject"]) for m in mails} == {(mails[0]["message_id"],
                                                                     f"Hello {contact['firstName']}")}
        assert len(messages.texts(to=f"+1{contact['phone']}", direction="outbound-api")) == 1
        notes = Counter(n["note"] for n in crm.notes(crm_account, contact["client_id"]))
        assert len(notes) == 2 and set(notes.values()) == {1}, notes  # a note per step taken, each once


async def lead_receipts_settled(engine: Engine, account_id: str, count: int) -> list[LeadReceipt]:
    """The account's `count` newest receipts once their workflows have settled them."""
    return list(await until(lambda: (rows := receipts(engine, account_id, limit=count)) and len(rows) == count
                            and all(r.outcome != "received" for r in rows) and rows, seconds=240))


async def waiting_in(client: Client, workflow_id: str, step_id: str, seconds: float = 240) -> None:
    """The enrollment has reached `step_id`: every step before it is done."""
    handle = client.get_workflow_handle(workflow_id, result_type=EnrollmentResult)
    for _ in range(int(seconds * 10)):
        try:
            if (await handle.query(ActionPlanWorkflow.state)).current_step == step_id:
                return
        except RPCError:
            pass  # not started yet
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never reached {step_id}")


async def activity_workers(client: Client, workflow_id: str) -> set[str]:
    """The identities of the workers that started the workflow's activities."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return {event.activity_task_started_event_attributes.identity for event in history.events
            if event.HasField("activity_task_started_event_attributes")}


async def test_two_workers_share_a_burst_and_one_killed_mid_burst_loses_and_doubles_nothing(
    dev_env: WorkflowEnvironment, chaos_settings: Settings, engine: Engine, account_realm: str, crm_account: str,
    chaos_api: ServerThread
) -> None:
    """Two worker processes on the task queue take a burst of proposals, a royalty run and plan sends on one
    QBO company between them, within its limits; one is killed with SIGKILL mid-burst and a third takes over."""
    settings = chaos_settings.model_copy(update={"qbo_http_timeout_seconds": 5.0})  # no faults here
    franchisor_id = install_franchisor(settings, engine)
    denver_realm = point_account_at(engine, "acme-denver", new_realm(settings, engine))
    for n, amount in enumerate(("200.00", "150.00", "75.50")):  # before the night's cut-off
        pay(engine, "acme-denver", f"D-{uuid.uuid4().hex[:6]}-{n}", amount, date(2026, 11, 15))
    set_faults(settings.qbo_api_url, account_realm, latency_seconds=0.15)  # keeps work in flight at the kill
    crm = CrmSandboxAdmin(settings.crm_api_url)
    messages = MessagingSandboxAdmin(settings.sms_api_url)
    enrolled = [crm.create_contact(crm_account, firstName=f"Kim{n}", lastName="Kill", smsok=True,
                                   email=f"kim.{uuid.uuid4().hex[:8]}@example.com", time_zone=noon_zone(),
                                   phone=f"737556{uuid.uuid4().int % 10_000:04d}") for n in range(3)]
    proposal_ids = [f"K-{uuid.uuid4().hex[:6]}" for _ in range(PROPOSALS)]
    workers = [worker_process(settings), worker_process(settings)]
    try:
        await polling(dev_env.client, settings.task_queue, workers=2)

        async def kill_mid_burst() -> int:
            """SIGKILL the first worker once the books are partly written: watched while the burst is posted,
            which on a busy machine takes as long as the work."""
            await until(lambda: len(list_objects(settings.qbo_api_url, account_realm, "Payment")) >= 3, seconds=60)
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(timeout=10)
            return len(list_objects(settings.qbo_api_url, account_realm, "Payment"))

        run = await start_royalty_run(dev_env.client, settings, franchisor_id, NIGHT)
        for contact in enrolled:
            await enroll_contact(dev_env.client, settings, engine, crm_account, contact["client_id"], "chaos-hello",
                                 source="test")
        killing = asyncio.create_task(kill_mid_burst())
        for proposal_id in proposal_ids:
            for event in scenario(proposal_id):
                assert (await post_event(chaos_api.url, settings, event)).status_code == 202
        written_at_kill = await killing
        workers.append(worker_process(settings))
        for proposal_id in proposal_ids:
            await settled(dev_env.client, "acme-austin", proposal_id, seconds=120, done=lambda s: s.invoice_id and
                          all(p.applied is not None or p.voided for p in s.payments))
        outcomes = {o.account_id: o for o in (await run.result()).outcomes}
        for contact in enrolled:
            await waiting_in(dev_env.client, plan_workflow_id(crm_account, contact["client_id"], "chaos-hello"), "wait")
        identities = set().union(*[await activity_workers(dev_env.client, proposal_workflow_id("acme-austin", p))
                                   for p in proposal_ids])
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        set_faults(settings.qbo_api_url, account_realm)

    assert written_at_kill < 2 * PROPOSALS  # the kill did land mid-burst
    assert len(identities) >= 2  # the work was shared
    invoices = list_objects(settings.qbo_api_url, account_realm, "Invoice")
    every_payment = list_objects(settings.qbo_api_url, account_realm, "Payment")
    references = [p["PaymentRefNum"] for p in every_payment]  # the CRM payment's id
    assert len(references) == len(set(references))  # no CRM payment recorded twice (pay-2 is voided, if recorded)
    live = [p for p in every_payment if D(str(p["TotalAmt"])) > 0]
    assert sorted(p["PaymentRefNum"] for p in live) == sorted(f"{proposal_id}-{payment}" for proposal_id in
                                                              proposal_ids for payment in ("pay-1", "pay-3"))
    assert sorted(i["DocNumber"] for i in invoices) == sorted(proposal_ids)  # one invoice each
    assert len(list_objects(settings.qbo_api_url, account_realm, "Estimate")) == PROPOSALS
    assert len(list_objects(settings.qbo_api_url, account_realm, "Customer")) == 1  # one contact, C-1
    assert all(D(str(p["UnappliedAmt"])) == 0 for p in live)
    assert all(D(str(i["Balance"])) == D("100.00") for i in invoices)  # 289.00 - 89.00 - 100.00
    company = dump_company(settings.qbo_api_url, account_realm)  # three workers kept within QBO's limits
    assert company["throttled"] == 0 and 1 < company["peak_in_flight"] <= 10
    # Denver's check once: 5.5% royalty and 1.5% marketing on 425.50, each rounded half-up once.
    assert outcomes["acme-denver"].status == "check_written"
    [check] = checks(settings, denver_realm)
    assert check_lines(check) == [("Royalty Expense", D("23.40")), ("Advertising & Marketing", D("6.38"))]
    for contact in enrolled:
        assert len({m["message_id"] for m in messages.emails(to=contact["email"])}) == 1
        assert len(messages.texts(to=f"+1{contact['phone']}", direction="outbound-api")) == 1
