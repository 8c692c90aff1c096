"""The payment workflows alone, their activities stubbed (tests/payment_stubs.py), on the time-skipping test
server: a collection charged, declined or refused; a bank debit watched through a lost webhook until it settles
or comes back; a scheduled payment moved, cancelled, or lowered to what is due; an autopay cycle paying each
chosen invoice once."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.autopay_cycles import AutopayCycleInput
from models.collections import AchWatch, CollectionStatus, GatewayNews, RefundPayment
from models.gateway import ChargeRequest
from models.scheduled_payments import Reschedule, ScheduledPaymentState, SchedulePayment, ScheduleStatus
from tests.payment_stubs import PaymentWorld, choice, collect
from workflows.ach_settlement import AchSettlementWorkflow
from workflows.autopay_cycle import AutopayCycleWorkflow
from workflows.payment_collection import PaymentCollectionWorkflow
from workflows.payment_refund import PaymentRefundWorkflow
from workflows.scheduled_payment import ScheduledPaymentWorkflow

PAYMENT_WORKFLOWS = [PaymentCollectionWorkflow, AchSettlementWorkflow, ScheduledPaymentWorkflow, AutopayCycleWorkflow,
                     PaymentRefundWorkflow]
D = Decimal


@asynccontextmanager
async def payments_worker(client: Client, world: PaymentWorld) -> AsyncIterator[str]:
    task_queue = f"payments-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(client, task_queue=task_queue, workflows=PAYMENT_WORKFLOWS, activities=world.activities(),
                          activity_executor=executor):
            yield task_queue


def unique(workflow_id: str) -> str:
    return f"{workflow_id}-{uuid.uuid4().hex[:6]}"


async def test_a_card_collection_charges_once_records_on_the_crm_and_says_what_it_took(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(due={"P-1": D("319.00")})
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        result = await client.execute_workflow(PaymentCollectionWorkflow.run, collect(tip="15.00"),
                                               id=unique("collect:acme-austin:pay-1"), task_queue=task_queue)
    assert (result.status, result.amount, result.tip, result.transaction_id, result.crm_payment_id) == (
        CollectionStatus.CHARGED, D("100.00"), D("15.00"), world.transaction_id(1), "crm-pay-1")
    [charge] = world.charges.values()
    assert (charge.total, charge.idempotency_id) == (D("115.00"), "collect:acme-austin:pay-1")
    [recorded] = world.crm_payments.values()
    assert (recorded.amount, recorded.tip, recorded.reference, recorded.method) == (
        D("100.00"), D("15.00"), world.transaction_id(1), "card")
    assert world.statuses["pay-1"] == [CollectionStatus.CHARGED, CollectionStatus.CHARGED]


async def test_a_decline_and_a_refusal_are_answers_that_change_no_books(time_skipping_env: WorkflowEnvironment) -> None:
    world = PaymentWorld(due={"P-1": D("50.00")}, declining={"card-bad"})
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        declined = await client.execute_workflow(
            PaymentCollectionWorkflow.run, collect("pay-d", payment_method_id="card-bad", amount="20.00"),
            id=unique("collect:acme-austin:pay-d"), task_queue=task_queue)
        refused = await client.execute_workflow(
            PaymentCollectionWorkflow.run, collect("pay-r", amount="80.00"), id=unique("collect:acme-austin:pay-r"),
            task_queue=task_queue)
    assert (declined.status, declined.transaction_id) == (CollectionStatus.DECLINED, "txn-declined")
    assert world.statuses["pay-d"] == [CollectionStatus.DECLINED]
    assert refused.status == CollectionStatus.REFUSED and "still due" in (refused.message or "")
    assert "pay-r" not in world.statuses and world.crm_payments == {}


async def test_a_bank_debit_is_handed_to_a_watch_that_outlives_the_collection(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(due={"P-1": D("300.00")})
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        result = await client.execute_workflow(
            PaymentCollectionWorkflow.run, collect("pay-ach", method="bank", payment_method_id="bank-1"),
            id=unique("collect:acme-austin:pay-ach"), task_queue=task_queue)
        watch = client.get_workflow_handle(f"ach:acme-austin:{result.transaction_id}")
        assert result.status == CollectionStatus.CHARGED
        assert (await watch.describe()).status == WorkflowExecutionStatus.RUNNING
        # Ended once it waits on its timer: the test server stops skipping time for good if an activity it is
        # running is cut off.
        for _ in range(100):
            history = await watch.fetch_history()
            if any(e.HasField("timer_started_event_attributes") for e in history.events):
                break
            await asyncio.sleep(0.05)
        await watch.terminate("the test is over")


async def test_a_watch_without_webhooks_looks_on_its_timer_until_the_return_window_passes(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(settled_after_looks=2)
    key = "collect:acme-austin:pay-w"
    world.charges[key] = ChargeRequest(account_id="acme-austin", payment_method_id="bank-1", total=D("300.00"),
                                       idempotency_id=key)
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        watch = await client.start_workflow(
            AchSettlementWorkflow.run,
            AchWatch(account_id="acme-austin", collection_key="pay-w", transaction_id=world.transaction_id(1),
                     crm_payment_id="crm-pay-1", poll_interval_seconds=timedelta(hours=12).total_seconds(),
                     return_window_seconds=timedelta(days=2).total_seconds()),
            id=unique("ach:acme-austin:watch"), task_queue=task_queue)
        assert await watch.result() == CollectionStatus.SETTLED
    assert world.looks[world.transaction_id(1)] == 3 and world.voided == []  # at once, then twice 12 hours apart
    assert world.statuses["pay-w"] == [CollectionStatus.SETTLED]


async def test_a_returned_debit_voids_the_crm_payment_as_a_return_when_a_webhook_wakes_the_watch(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(settled_after_looks=1, bouncing={"bank-bounce"})
    world.charges["collect:acme-austin:x"] = ChargeRequest(account_id="acme-austin", payment_method_id="bank-bounce",
                                                           total=D("300.00"), idempotency_id="collect:acme-austin:x")
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        watch = await client.start_workflow(
            AchSettlementWorkflow.run,
            AchWatch(account_id="acme-austin", collection_key="x", transaction_id=world.transaction_id(1),
                     crm_payment_id="crm-9", poll_interval_seconds=timedelta(days=30).total_seconds(),
                     return_window_seconds=86_400 * 5),
            id=unique("ach:acme-austin:txn"), task_queue=task_queue)
        await watch.signal(AchSettlementWorkflow.gateway_event,
                           GatewayNews(event_name="update_transaction", received_at=datetime.now(UTC)))
        assert await watch.result() == CollectionStatus.RETURNED
    [void] = world.voided
    assert (void.crm_payment_id, void.kind) == ("crm-9", "return")
    assert world.statuses["x"] == [CollectionStatus.RETURNED]


def schedule(schedule_id: str, amount: str, at: datetime, payment_method_id: str = "card-1") -> SchedulePayment:
    return SchedulePayment(account_id="acme-austin", schedule_id=schedule_id, proposal_id="P-1",
                           payment_method_id=payment_method_id, method="card", amount=D(amount), pay_on=at.date(),
                           charge_at=at)


async def test_a_scheduled_payment_waits_for_its_day_moves_and_pays_only_what_is_still_due(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(due={"P-1": D("319.00")})
    client = time_skipping_env.client
    now = await time_skipping_env.get_current_time()
    async with payments_worker(client, world) as task_queue:
        handle = await client.start_workflow(ScheduledPaymentWorkflow.run,
                                             schedule("s-1", "319.00", now + timedelta(days=3)),
                                             id=unique("scheduled:acme-austin:s-1"), task_queue=task_queue)
        world.due["P-1"] = D("119.00")  # 200.00 paid by hand meanwhile
        await handle.signal(ScheduledPaymentWorkflow.reschedule,
                            Reschedule(pay_on=(now + timedelta(days=10)).date(), charge_at=now + timedelta(days=10)))
        state = await handle.query(ScheduledPaymentWorkflow.current)
        assert state.status == ScheduleStatus.SCHEDULED and state.charge_at == now + timedelta(days=10)
        final: ScheduledPaymentState = await handle.result()
    assert final.status == ScheduleStatus.DONE and final.result is not None
    assert (final.result.status, final.result.amount) == (CollectionStatus.CHARGED, D("119.00"))
    assert await time_skipping_env.get_current_time() >= now + timedelta(days=10)
    [charge] = world.charges.values()
    assert charge.total == D("119.00") and charge.idempotency_id == "collect:acme-austin:scheduled-s-1"


async def test_a_cancelled_scheduled_payment_charges_nothing_and_a_paid_invoice_is_not_paid_again(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(due={"P-1": D("0.00")})
    client = time_skipping_env.client
    now = await time_skipping_env.get_current_time()
    async with payments_worker(client, world) as task_queue:
        cancelled = await client.start_workflow(ScheduledPaymentWorkflow.run,
                                                schedule("s-c", "50.00", now + timedelta(days=2)),
                                                id=unique("scheduled:acme-austin:s-c"), task_queue=task_queue)
        await cancelled.signal(ScheduledPaymentWorkflow.cancel)
        assert (await cancelled.result()).status == ScheduleStatus.CANCELLED
        paid_up = await client.execute_workflow(ScheduledPaymentWorkflow.run,
                                                schedule("s-p", "50.00", now + timedelta(hours=1)),
                                                id=unique("scheduled:acme-austin:s-p"), task_queue=task_queue)
    assert paid_up.result is not None and paid_up.result.status == CollectionStatus.NOTHING_DUE
    assert world.charges == {}


async def test_an_autopay_cycle_collects_each_chosen_invoice_once_by_its_configuration(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(due={"P-1": D("85.00"), "P-2": D("319.00")},
                         plan=[choice("P-1", "85.00", "small", "card-1"), choice("P-2", "319.00", "rest", "card-2")])
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        result = await client.execute_workflow(AutopayCycleWorkflow.run, AutopayCycleInput(account_id="acme-austin"),
                                               id=unique("autopay:acme-austin"), task_queue=task_queue)
    assert [(o.proposal_id, o.config_id, o.result.status, o.result.amount) for o in result.outcomes] == [
        ("P-1", "small", CollectionStatus.CHARGED, D("85.00")), ("P-2", "rest", CollectionStatus.CHARGED, D("319.00"))]
    assert {(c.payment_method_id, c.total) for c in world.charges.values()} == {
        ("card-1", D("85.00")), ("card-2", D("319.00"))}
    assert sorted(world.reservations) == [f"autopay-{result.cycle_date}-P-1", f"autopay-{result.cycle_date}-P-2"]


async def test_a_refund_gives_the_charge_back_once_and_voids_the_crm_payment_as_a_refund(
    time_skipping_env: WorkflowEnvironment
) -> None:
    world = PaymentWorld(due={"P-1": D("319.00")})
    client = time_skipping_env.client
    async with payments_worker(client, world) as task_queue:
        await client.execute_workflow(PaymentCollectionWorkflow.run, collect("pay-r"),
                                      id=unique("collect:acme-austin:pay-r"), task_queue=task_queue)
        refunded = await client.execute_workflow(
            PaymentRefundWorkflow.run, RefundPayment(account_id="acme-austin", collection_key="pay-r"),
            id=unique("refund:acme-austin:pay-r"), task_queue=task_queue)
    assert (refunded.status, refunded.transaction_id) == (CollectionStatus.REFUNDED, world.transaction_id(1))
    assert list(world.refunds) == ["refund:acme-austin:pay-r"]
    [void] = world.voided
    assert (void.crm_payment_id, void.kind) == ("crm-pay-1", "refund")
    assert world.statuses["pay-r"][-1] == CollectionStatus.REFUNDED
