"""Records workflow histories for the replay tests: `python -m tests.record_histories`.

Run it when a workflow changes on purpose (a new version, behind `workflow.patched`), and commit the new
files beside the old ones: the old histories must keep replaying, which is what running workflows need.
"""

import asyncio
import os
import sys
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.royalty_ledger import RoyaltyLedgerActivities
from config.network import NetworkConfig, install_network, load_network
from config.settings import get_settings
from models import search_attributes
from models.autopay_cycles import AutopayCycleInput
from models.collections import GatewayNews, RefundPayment
from models.db import create_tables, get_engine
from models.enrollments import ContactReplied, EnrollmentInput, PreviewInput
from models.leads import EmailCaptureInput
from models.ledger import LedgerPayment
from models.plans import Plan
from models.proposal_knowledge import event_id
from models.proposals import (
    CrmPayment,
    PaymentAdded,
    ProposalChanged,
    ProposalEvent,
    ProposalInput,
    ProposalSynced,
    Stage,
    proposal_workflow_id,
)
from models.reconcile import CrmChangesPage, ReconcileInput
from models.royalty import NightlyRoyaltyInput, franchisee_royalty_id
from models.scheduled_payments import Reschedule, SchedulePayment
from tests import factories
from tests.factories import SIGNALS, edited, paid, priced, stage, voided, with_bad_item
from tests.lead_stubs import LeadWorld
from tests.lead_stubs import angi as lead_angi
from tests.lead_stubs import delivery as lead_delivery
from tests.lead_stubs import intake as lead_intake
from tests.lead_stubs import mail as lead_mail
from tests.payment_stubs import PaymentWorld
from tests.payment_stubs import choice as payment_choice
from tests.payment_stubs import collect as collect_payment
from tests.plan_stubs import PlanWorld
from tests.plan_stubs import contact as plan_contact
from tests.stubs import StubBooks, StubChecks, StubCrmSync, StubGateway
from workflows.ach_settlement import AchSettlementWorkflow
from workflows.action_plan import ActionPlanWorkflow
from workflows.autopay_cycle import AutopayCycleWorkflow
from workflows.email_capture import EmailCaptureWorkflow
from workflows.franchisee_royalty import FranchiseeRoyaltyWorkflow
from workflows.lead_intake import LeadIntakeWorkflow
from workflows.nightly_royalty import NightlyRoyaltyWorkflow
from workflows.payment_collection import PaymentCollectionWorkflow
from workflows.payment_refund import PaymentRefundWorkflow
from workflows.plan_preview import PlanPreviewWorkflow
from workflows.proposal import ProposalWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.royalty_run import RoyaltyRunWorkflow
from workflows.scheduled_payment import ScheduledPaymentWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def _proposal_scenario(client: Client, task_queue: str, name: str, events: list[Any]) -> None:
    path = HISTORIES / f"proposal_{name}.json"
    if path.exists():  # a recorded history stands for runs already in flight: it is never rewritten
        print(f"kept {path.name}: it exists already")
        return
    workflow_id = proposal_workflow_id("acme-austin", f"{name}-{uuid.uuid4().hex[:6]}")
    workflow_input = ProposalInput(account_id="acme-austin", proposal_id="P-1", realm_id="r1",
                                   franchisor_id="acme", idle_timeout=timedelta(seconds=3))
    handle = await client.start_workflow(ProposalWorkflow.run, workflow_input, id=workflow_id,
                                         task_queue=task_queue, start_signal=SIGNALS[type(events[0])],
                                         start_signal_args=[events[0]])
    for event in events[1:]:
        await handle.signal(SIGNALS[type(event)], event)
    for _ in range(100):  # every event handled
        seen = len((await handle.query(ProposalWorkflow.state)).events_seen) >= len({event_id(e) for e in events})
        if seen and not await handle.query(ProposalWorkflow.busy):
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(4)  # past the idle timeout: a run with nothing deferred finishes
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate("recorded")  # one holding deferred events stays open; its history ends here
    history = await handle.fetch_history()
    path.write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


def _event(event_id: str, stage: Stage = Stage.PROPOSAL, number: str = "1001") -> ProposalEvent:
    return ProposalEvent(change=factories.sales_cycle_change(event_id=event_id, number=number), stage=stage)


async def main() -> None:
    settings = get_settings()
    stub = StubBooks()
    async with await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(settings.temporal_cli), data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
    ) as env:
        task_queue = "record-histories"
        async with Worker(env.client, task_queue=task_queue, workflows=[ProposalWorkflow],
                          activities=stub.activities()):
            await _proposal_scenario(env.client, task_queue, "estimate_duplicate_and_deferred", [
                _event("evt-1"), _event("evt-1"), _event("evt-2", Stage.JOB_COMPLETE)])
            await _proposal_scenario(env.client, task_queue, "final_fault_then_success", [
                _event("evt-bad", number="BAD"), _event("evt-good", number="1002")])
            change = factories.sales_cycle_change()
            await _proposal_scenario(env.client, task_queue, "deferred_events_keep_the_run_open", [
                _event("evt-1"), _event("evt-2", Stage.JOB_COMPLETE)])
            await _proposal_scenario(env.client, task_queue, "edit_and_payment_kept", [
                _event("evt-1"),
                ProposalChanged(event_id="evt-edit", account_id="acme-austin", occurred_at=change.occurred_at,
                                contact=change.contact, proposal=factories.proposal()),
                PaymentAdded(event_id="evt-pay", account_id="acme-austin", occurred_at=change.occurred_at,
                             contact=change.contact, proposal_id="P-1", proposal_number="1001",
                             payment=CrmPayment(id="pay-1", amount=Decimal("50.00"), received_on=date(2026, 11, 21)))])
            # The lifecycle (runs started by today's code).
            await _proposal_scenario(env.client, task_queue, "lifecycle_in_order", [
                stage("l1", Stage.PROPOSAL, 0), paid("l2", "pay-1", "100.00", 1, tip="5.00"),
                stage("l3", Stage.JOB_COMPLETE, 2), paid("l4", "pay-2", "40.00", 3), voided("l5", "pay-2", "40.00", 4)])
            await _proposal_scenario(env.client, task_queue, "lifecycle_stuck_then_fixed_lost", [
                stage("s1", Stage.PROPOSAL, 0, snapshot=with_bad_item()), paid("s2", "pay-1", "30.00", 1),
                edited("s3", 2, "90.00"), stage("s4", Stage.LOST, 3), stage("s4", Stage.LOST, 3)])
            await _proposal_scenario(env.client, task_queue, "lifecycle_edit_after_completion", [
                stage("c1", Stage.PROPOSAL, 0, snapshot=priced("410.00")), edited("c3", 3, "999.00"),
                stage("c2", Stage.JOB_COMPLETE, 2, snapshot=priced("410.00"))])
            await _proposal_scenario(env.client, task_queue, "lifecycle_edit_of_the_completions_second", [
                stage("t1", Stage.PROPOSAL, 0, snapshot=priced("410.00")), edited("t3", 2, "999.00"),
                stage("t2", Stage.JOB_COMPLETE, 2, snapshot=priced("410.00")), edited("t3", 2, "999.00")])
            await _proposal_scenario(env.client, task_queue, "lifecycle_reopened_job_reported_out_of_order", [
                stage("r1", Stage.PROPOSAL, 0, snapshot=priced("410.00")),
                stage("r5", Stage.JOB_COMPLETE, 12, snapshot=priced("600.00")), edited("r4", 12, "700.00"),
                stage("r3", Stage.PROPOSAL, 11), stage("r2", Stage.JOB_COMPLETE, 10, snapshot=priced("500.00"))])

        await _royalty_scenario(env.client, {
            "nightlyroyalty_two_franchisees_vendor_first.json": "nightly",
            "royaltyrun_one_franchisee_failing_vendor_first.json": "run",
            "franchiseeroyalty_check_written_vendor_first.json": "acme-austin",
            "franchiseeroyalty_check_refused_vendor_first.json": "acme-denver"})
        await _royalty_scenario(env.client, {"franchiseeroyalty_check_written_and_debited.json": "acme-austin"},
                                ach_debit=True)

        sync = StubCrmSync([reconcile_page("1", "2", total=3), reconcile_page("3", total=3)])
        async with Worker(env.client, task_queue="record-reconcile", workflows=[ReconcileWorkflow],
                          activities=sync.activities()):
            await _reconcile_scenario(env.client, "record-reconcile", "two_pages")

        await _plan_scenarios(env.client)
        await _lead_scenarios(env.client)
        await _payment_scenarios(env.client)


async def _reconcile_scenario(client: Client, task_queue: str, name: str) -> None:
    path = HISTORIES / f"reconcile_{name}.json"
    if path.exists():
        print(f"kept {path.name}: it exists already")
        return
    handle = await client.start_workflow(ReconcileWorkflow.run, ReconcileInput(account_id="acme-austin"),
                                         id=f"reconcile:{name}-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
    await handle.result()
    path.write_text((await handle.fetch_history()).to_json())
    print(f"recorded reconcile {name}")


async def _royalty_scenario(client: Client, names: dict[str, str], ach_debit: bool = False) -> None:
    """The nightly run of a network of two franchisees: Austin's check written, Denver's refused by QBO; with
    `ach_debit`, Austin's check collected through the (stubbed) gateway. `names`: file -> whose history."""
    if all((HISTORIES / name).exists() for name in names):
        print(f"kept {', '.join(names)}: they exist already")
        return
    network = load_network(get_settings().network_file)
    if ach_debit:  # a franchisor of its own: its runs' ids differ from the plain scenario's
        data = network.model_dump()
        data["franchisor"]["id"] = "acme-ach"
        data["franchisor"]["royalty"]["ach_debit"] = True
        for franchisee in data["franchisees"]:
            franchisee["ach_payment_method_id"] = f"pm-{franchisee['account_id']}"
        network = NetworkConfig.model_validate(data)
    with tempfile.TemporaryDirectory() as tmp:
        engine = get_engine(f"sqlite:///{tmp}/ledger.db")
        create_tables(engine)
        install_network(engine, network)
        received = datetime.now(UTC).date() - timedelta(days=10)
        with Session(engine) as session:
            for account_id in ("acme-austin", "acme-denver"):
                session.add(LedgerPayment(account_id=account_id, crm_payment_id="pay-1", proposal_id="P-1",
                                          amount=Decimal("250.00"), tip=Decimal("25.00"), convenience_fee=Decimal(0),
                                          received_on=received, method="card"))
            session.commit()
        checks = StubChecks()
        checks.refusing.add("acme-denver")
        task_queue = f"record-royalty-{uuid.uuid4().hex[:6]}"
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with Worker(client, task_queue=task_queue, activity_executor=executor,
                              workflows=[NightlyRoyaltyWorkflow, RoyaltyRunWorkflow, FranchiseeRoyaltyWorkflow],
                              activities=[*RoyaltyLedgerActivities(engine).activities(), *checks.activities(),
                                          *StubGateway().activities()]):
                nightly = await client.start_workflow(
                    NightlyRoyaltyWorkflow.run,
                    NightlyRoyaltyInput(franchisor_id=network.franchisor.id, time_zone="America/Chicago"),
                    id=f"royalty-nightly:{network.franchisor.id}-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
                result = await nightly.result()
    assert result is not None
    ids = {"nightly": nightly.id, "run": result.run_id,
           **{account: franchisee_royalty_id(result.run_id, account) for account in ("acme-austin", "acme-denver")}}
    for name, which in names.items():
        history = await client.get_workflow_handle(ids[which]).fetch_history()
        (HISTORIES / name).write_text(history.to_json())
        print(f"recorded {name}: {len(history.events)} events")


RECORDED_PLAN = {
    "schema_version": 1, "id": "recorded", "version": 1, "name": "Recorded", "type": "conversion",
    "settings": {"exit_on_reply": True},
    "steps": [
        {"id": "hello", "type": "email", "subject": "Hi {{ contact.first_name }}", "body": "<p>Thanks</p>"},
        {"id": "where", "type": "branch", "when": [{"field": "contact.city", "op": "eq", "value": "Austin"}],
         "then": "local"},
        {"id": "far", "type": "webhook", "url": "https://hooks.example.com/far", "body": {"c": "{{ contact.id }}"}},
        {"id": "local", "type": "text", "body": "Hi {{ contact.first_name | fallback('there') }}"},
        {"id": "pause", "type": "wait", "duration": "2s"},
        {"id": "broken", "type": "notify_user", "subject": "x", "body": "{{ contact.first_name"},
        {"id": "listen", "type": "wait", "until_event": "reply", "timeout": "30s"},
        {"id": "after", "type": "text", "body": "never sent: the reply ends the plan"},
    ]}


async def _plan_scenarios(client: Client) -> None:
    """An enrollment sending, branching, waiting, failing a step and ended by a reply; and a preview."""
    names = ("actionplan_sent_branched_replied.json", "planpreview_one_contact.json")
    if all((HISTORIES / name).exists() for name in names):
        print(f"kept {', '.join(names)}: they exist already")
        return
    with tempfile.TemporaryDirectory() as tmp:
        settings = get_settings().model_copy(update={"database_url": f"sqlite:///{tmp}/ledger.db"})
        engine = get_engine(settings.database_url)
        create_tables(engine)
        world = PlanWorld(engine, settings, contacts={"C-1": plan_contact()})
        plan = Plan.model_validate(RECORDED_PLAN)
        task_queue = f"record-plans-{uuid.uuid4().hex[:6]}"
        with ThreadPoolExecutor(max_workers=4) as executor:
            async with Worker(client, task_queue=task_queue, workflows=[ActionPlanWorkflow, PlanPreviewWorkflow],
                              activities=world.activities(), activity_executor=executor):
                handle = await client.start_workflow(
                    ActionPlanWorkflow.run, EnrollmentInput(account_id="acme-austin", contact_id="C-1", plan=plan,
                                                            source="recorder"),
                    id=f"plan:acme-austin:C-1:recorded-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
                for _ in range(300):
                    if (await handle.query(ActionPlanWorkflow.state)).current_step == "listen":
                        break
                    await asyncio.sleep(0.1)
                await handle.signal(ActionPlanWorkflow.contact_replied, ContactReplied(
                    channel="text", message_id="SM-recorded", body="yes", received_at=datetime.now(UTC)))
                await handle.result()
                preview = await client.start_workflow(
                    PlanPreviewWorkflow.run, PreviewInput(account_id="acme-austin", contact_id="C-1", plan=plan),
                    id=f"plan-preview:recorded-{uuid.uuid4().hex[:6]}", task_queue=task_queue)
                await preview.result()
    for name, recorded in zip(names, (handle, preview), strict=True):
        history = await recorded.fetch_history()
        (HISTORIES / name).write_text(history.to_json())
        print(f"recorded {name}: {len(history.events)} events")


async def _lead_scenarios(client: Client) -> None:
    """A lead delivered twice (created, then a duplicate), one refused, and a captured email noted."""
    names = ("leadintake_created_then_duplicate.json", "leadintake_refused.json", "emailcapture_noted.json")
    if all((HISTORIES / name).exists() for name in names):
        print(f"kept {', '.join(names)}: they exist already")
        return
    world = LeadWorld(refuse={"A-bad"}, contacts={"email:dana@example.com": "C-1"})
    task_queue = f"record-leads-{uuid.uuid4().hex[:6]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(client, task_queue=task_queue, workflows=[LeadIntakeWorkflow, EmailCaptureWorkflow],
                          activities=world.activities(), activity_executor=executor):
            handles = []
            for lead_id, receipts in (("A-1", [1, 2]), ("A-bad", [3])):
                handle = await client.start_workflow(
                    LeadIntakeWorkflow.run, lead_intake(lead_angi(lead_id), settle_time=timedelta(seconds=2)),
                    id=f"lead:acme-austin:angi:{lead_id}-{uuid.uuid4().hex[:6]}", task_queue=task_queue,
                    start_signal="lead_received", start_signal_args=[lead_delivery(receipts[0], lead_angi(lead_id))])
                for receipt in receipts[1:]:
                    await handle.signal(LeadIntakeWorkflow.lead_received, lead_delivery(receipt, lead_angi(lead_id)))
                await handle.result()
                handles.append(handle)
            handles.append(await client.start_workflow(
                EmailCaptureWorkflow.run, EmailCaptureInput(account_id="acme-austin", receipt_id=4, mail=lead_mail(
                    "Office <office@acme-austin.example.com>", ["dana@example.com"])),
                id=f"email:acme-austin:recorded-{uuid.uuid4().hex[:6]}", task_queue=task_queue))
            await handles[-1].result()
    for name, recorded in zip(names, handles, strict=True):
        history = await recorded.fetch_history()
        (HISTORIES / name).write_text(history.to_json())
        print(f"recorded {name}: {len(history.events)} events")


async def _payment_scenarios(client: Client) -> None:
    """A card collection with a tip, a decline, a bank debit handed to its watch and returned after a webhook,
    a scheduled payment moved then paid, and an autopay cycle of two invoices."""
    names = ("paymentcollection_card_with_tip.json", "paymentcollection_declined.json",
             "paymentcollection_bank_handed_to_watch.json", "achsettlement_returned_after_webhook.json",
             "scheduledpayment_rescheduled_then_paid.json", "autopaycycle_two_invoices.json",
             "paymentrefund_refunded.json")
    if all((HISTORIES / name).exists() for name in names):
        print(f"kept {', '.join(names)}: they exist already")
        return
    # One run plays every scenario; only the files not yet recorded are written.
    world = PaymentWorld(due={"P-1": Decimal("319.00"), "P-2": Decimal("300.00"), "P-3": Decimal("200.00"),
                              "P-4": Decimal("85.00"), "P-5": Decimal("319.00")},
                         declining={"card-bad"}, bouncing={"bank-bounce"}, settled_after_looks=1,
                         plan=[payment_choice("P-4", "85.00", "small", "card-1"),
                               payment_choice("P-5", "319.00", "rest", "card-2")])
    task_queue = f"record-payments-{uuid.uuid4().hex[:6]}"
    tag = uuid.uuid4().hex[:6]
    workflows = [PaymentCollectionWorkflow, AchSettlementWorkflow, ScheduledPaymentWorkflow, AutopayCycleWorkflow,
                 PaymentRefundWorkflow]
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(client, task_queue=task_queue, workflows=workflows, activities=world.activities(),
                          activity_executor=executor):
            handles: list[Any] = []
            for key, request in ((f"card-{tag}", collect_payment(f"card-{tag}", tip="15.00")),
                                 (f"bad-{tag}", collect_payment(f"bad-{tag}", payment_method_id="card-bad")),
                                 (f"bank-{tag}", collect_payment(f"bank-{tag}", "P-2", "300.00", "bank",
                                                                 "bank-bounce"))):
                handle = await client.start_workflow(PaymentCollectionWorkflow.run, request,
                                                     id=f"collect:acme-austin:{key}", task_queue=task_queue)
                await handle.result()
                handles.append(handle)
            bank = await handles[-1].result()
            watch = client.get_workflow_handle(f"ach:acme-austin:{bank.transaction_id}")
            await watch.signal(AchSettlementWorkflow.gateway_event,
                               GatewayNews(event_name="update_transaction", received_at=datetime.now(UTC)))
            await watch.result()
            handles.append(watch)
            now = datetime.now(UTC)
            scheduled = await client.start_workflow(
                ScheduledPaymentWorkflow.run,
                SchedulePayment(account_id="acme-austin", schedule_id=f"s-{tag}", proposal_id="P-3",
                                payment_method_id="card-1", method="card", amount=Decimal("250.00"),
                                pay_on=now.date(), charge_at=now + timedelta(seconds=30)),
                id=f"scheduled:acme-austin:s-{tag}", task_queue=task_queue)
            await scheduled.signal(ScheduledPaymentWorkflow.reschedule, Reschedule(
                pay_on=now.date(), charge_at=now + timedelta(seconds=2)))
            await scheduled.result()
            handles.append(scheduled)
            cycle = await client.start_workflow(AutopayCycleWorkflow.run, AutopayCycleInput(account_id="acme-austin"),
                                                id=f"autopay:acme-austin:{tag}", task_queue=task_queue)
            await cycle.result()
            handles.append(cycle)
            refund = await client.start_workflow(
                PaymentRefundWorkflow.run, RefundPayment(account_id="acme-austin", collection_key=f"card-{tag}"),
                id=f"refund:acme-austin:card-{tag}", task_queue=task_queue)
            await refund.result()
            handles.append(refund)
    for name, recorded in zip(names, handles, strict=True):
        if (HISTORIES / name).exists():
            continue
        history = await recorded.fetch_history()
        (HISTORIES / name).write_text(history.to_json())
        print(f"recorded {name}: {len(history.events)} events")


def reconcile_page(*proposal_ids: str, total: int) -> CrmChangesPage:
    snapshots = [ProposalSynced(event_id=f"sync-{pid}", account_id="acme-austin", occurred_at=factories.T0,
                                contact=factories.contact(), proposal=factories.proposal(pid, f"N-{pid}"))
                 for pid in proposal_ids]
    return CrmChangesPage(proposals=snapshots, read=len(snapshots), total=total, newest=factories.T0)


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: the SDK's runtime thread can abort it (sdk-python#300)
