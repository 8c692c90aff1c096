"""The proposal lifecycle's logic on the time-skipping test server, QBO and the ledger stubbed by StubBooks:
whatever the order and repeats of the CRM's events, the books end the same."""

import asyncio
import contextlib
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import search_attributes as sa
from models.proposals import (
    CrmEvent,
    ProposalEvent,
    ProposalInput,
    ProposalState,
    ProposalSynced,
    Stage,
)
from tests import factories
from tests.factories import SIGNALS, T0, crm_payment, edited, paid, priced, stage, voided, with_bad_item
from tests.stubs import StubBooks
from workflows.proposal import ProposalWorkflow


@dataclass
class Harness:
    """One proposal workflow id on a worker with stubbed QBO and ledger activities."""

    env: WorkflowEnvironment
    task_queue: str
    books: StubBooks
    workflow_id: str = field(default_factory=lambda: f"proposal:{uuid.uuid4()}")

    async def send(self, event: CrmEvent, idle: timedelta = timedelta(days=30),
                   retry_every: timedelta = timedelta(hours=1)) -> WorkflowHandle:
        """Signal-with-start, as the front door does."""
        return await self.env.client.start_workflow(
            ProposalWorkflow.run,
            ProposalInput(account_id="acme-austin", proposal_id="P-1", realm_id="r1", franchisor_id="acme",
                          idle_timeout=idle, stuck_retry_interval=retry_every),
            id=self.workflow_id, task_queue=self.task_queue, start_signal=SIGNALS[type(event)],
            start_signal_args=[event], id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def send_all(self, events: list[CrmEvent]) -> WorkflowHandle:
        handle = None
        for event in events:
            handle = await self.send(event)
        assert handle is not None
        return handle

    async def state_when(self, handle: WorkflowHandle, done: Callable[[ProposalState], bool]) -> ProposalState:
        """The state once `done` holds and the workflow has finished working on what it received."""
        state = None
        for _ in range(300):
            state = await handle.query(ProposalWorkflow.state)
            if done(state) and not await handle.query(ProposalWorkflow.busy):
                return state
            await asyncio.sleep(0.02)
        raise AssertionError(f"state never matched: {state}")

    async def settled(self, handle: WorkflowHandle, events: list[CrmEvent]) -> ProposalState:
        ids = {_id(e) for e in events}
        return await self.state_when(handle, lambda s: ids <= set(s.events_seen))


def _id(event: CrmEvent) -> str:
    return event.change.event_id if isinstance(event, ProposalEvent) else event.event_id


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    books = StubBooks()
    harness = Harness(time_skipping_env, task_queue=f"tq-{uuid.uuid4()}", books=books)
    async with Worker(time_skipping_env.client, task_queue=harness.task_queue, workflows=[ProposalWorkflow],
                      activities=books.activities()):
        yield harness
        # A run left open would hold the shared test server's clock: its timers fire with no worker to serve them.
        with contextlib.suppress(RPCError):
            await time_skipping_env.client.get_workflow_handle(harness.workflow_id).terminate("test over")


PROPOSAL_TOTAL = factories.proposal().total  # 289.00 + 3 x 16.665 = 339.00 (338.995 rounded half-up)


# -- the lifecycle in order ---------------------------------------------------------------------------
async def test_in_order_lifecycle_books_each_object_once(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("e1", Stage.PROPOSAL, 0), paid("e2", "pay-1", "100.00", 5, tip="10.00"),
                              stage("e3", Stage.JOB_COMPLETE, 10), paid("e4", "pay-2", "50.00", 20)]
    handle = await harness.send_all(events)
    state = await harness.settled(handle, events)
    books = harness.books

    assert books.calls == Counter(customer=1, estimate=1, payment=2, invoice=1, apply=2)
    assert books.estimates["P-1"].status == "Closed" and books.invoices["P-1"].total == PROPOSAL_TOTAL
    assert books.balance("P-1") == PROPOSAL_TOTAL - Decimal("160.00")  # the tip is money received too
    assert [p.applied for p in state.payments] == [Decimal("110.00"), Decimal("50.00")]
    assert state.unapplied_total == 0 and state.stuck == [] and state.stage == Stage.JOB_COMPLETE
    assert (await handle.describe()).typed_search_attributes.get(sa.STAGE) == "job_complete"


# -- shuffled and duplicated --------------------------------------------------------------------------
SCENARIO: list[CrmEvent] = [
    stage("s1", Stage.PROPOSAL, 0),
    edited("s2", 2, "300.00"),
    paid("s3", "pay-1", "120.00", 3),
    paid("s4", "pay-2", "80.00", 4),
    stage("s5", Stage.JOB_COMPLETE, 6, snapshot=priced("300.00")),  # the CRM sends what it has now
    voided("s6", "pay-2", "80.00", 7),
    paid("s7", "pay-3", "40.00", 8),
]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_shuffled_and_duplicated_events_give_the_same_books(harness: Harness, seed: int) -> None:
    rng = random.Random(seed)
    events = SCENARIO + rng.sample(SCENARIO, 3)  # three delivered twice
    rng.shuffle(events)
    handle = await harness.send_all(events)
    state = await harness.settled(handle, SCENARIO)
    books = harness.books

    # The edit (newest lines) wins whatever the order; the invoice carries it.
    assert books.invoices["P-1"].total == Decimal("300.00")
    assert books.calls["customer"] == books.calls["estimate"] == books.calls["invoice"] == 1
    assert books.calls["payment"] <= 3 and books.calls["void"] <= 1
    live = {crm_id: p for crm_id, p in books.payments.items() if not p.voided}
    assert sorted(live) == ["pay-1", "pay-3"]
    assert books.balance("P-1") == Decimal("300.00") - Decimal("160.00")
    assert sum((p.unapplied for p in live.values()), start=Decimal(0)) == 0
    assert state.payment("pay-2") is not None and state.payment("pay-2").voided == "refund"  # type: ignore[union-attr]


# -- edges --------------------------------------------------------------------------------------------
async def test_a_payment_before_the_proposal_stage_waits_unapplied_then_is_applied(harness: Harness) -> None:
    first = paid("p1", "pay-1", "75.00", 0)
    handle = await harness.send(first)
    state = await harness.settled(handle, [first])
    assert harness.books.calls == Counter(customer=1, payment=1)
    assert state.estimate_id is None and state.unapplied_total == Decimal("75.00")

    rest: list[CrmEvent] = [stage("p2", Stage.PROPOSAL, 1), stage("p3", Stage.JOB_COMPLETE, 2)]
    state = await harness.settled(await harness.send_all(rest), rest)
    assert harness.books.balance("P-1") == PROPOSAL_TOTAL - Decimal("75.00")
    assert state.unapplied_total == 0


async def test_an_edit_updates_the_open_estimate_but_not_the_invoice(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("u1", Stage.PROPOSAL, 0), edited("u2", 1, "410.00")]
    handle = await harness.send_all(events)
    await harness.settled(handle, events)
    assert harness.books.estimates["P-1"].total == Decimal("410.00")

    complete = stage("u3", Stage.JOB_COMPLETE, 2, snapshot=priced("410.00"))
    await harness.settled(await harness.send(complete), [complete])
    late = edited("u4", 3, "999.00")
    state = await harness.settled(await harness.send(late), [late])
    assert harness.books.invoices["P-1"].total == Decimal("410.00")
    assert harness.books.calls["estimate"] == 1 and harness.books.calls["estimate update"] <= 1
    assert any("changed after the job was complete" in notice for notice in state.notices)


@pytest.mark.parametrize("edit_minutes", [3, 2], ids=["edit later", "edit of the same time"])
@pytest.mark.parametrize("order", ["completion first", "edit first"])
async def test_an_edit_after_the_job_was_complete_is_not_billed_whenever_it_arrives(harness: Harness, order: str,
                                                                                    edit_minutes: int) -> None:
    """Sent back to back, the edit may reach the workflow before the invoice is written, or even before the
    completion itself: the invoice still bills the lines the job was completed with. An edit stamped with the
    completion's own time loses to the lines the completion carried."""
    opened = stage("u1", Stage.PROPOSAL, 0, snapshot=priced("410.00"))
    await harness.settled(await harness.send(opened), [opened])
    later: list[CrmEvent] = [stage("u3", Stage.JOB_COMPLETE, 2, snapshot=priced("410.00")),
                             edited("u4", edit_minutes, "999.00")]
    if order == "edit first":
        later.reverse()
    state = await harness.settled(await harness.send_all(later), later)
    books = harness.books
    assert books.invoices["P-1"].total == Decimal("410.00") and books.calls["invoice"] == 1
    assert books.estimates["P-1"].total == Decimal("410.00") and books.calls["estimate"] == 1
    assert state.proposal == priced("410.00")
    assert any("changed after the job was complete" in notice for notice in state.notices)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 1, 2, 0), (3, 0, 2, 1)],
                         ids=["in order", "first completion last", "reopen after both completions"])
async def test_a_reopened_job_reported_out_of_order_invoices_its_second_completion(
        time_skipping_env: WorkflowEnvironment, order: tuple[int, ...]) -> None:
    """Every report reaches the run before it writes anything (after an outage, webhooks redelivered out of
    order): completed with 500, reopened, edited to 700 and completed again with 600 in the same CRM second as
    the edit. The invoice bills 600 whatever the order."""
    harness = Harness(time_skipping_env, task_queue=f"tq-{uuid.uuid4()}", books=StubBooks())
    reports: list[CrmEvent] = [stage("r2", Stage.JOB_COMPLETE, 10, snapshot=priced("500.00")),
                               stage("r3", Stage.PROPOSAL, 11), edited("r4", 12, "700.00"),
                               stage("r5", Stage.JOB_COMPLETE, 12, snapshot=priced("600.00"))]
    events = [stage("r1", Stage.PROPOSAL, 0, snapshot=priced("410.00")), *(reports[i] for i in order)]
    handle = await harness.send_all(events)  # before any worker polls: the run's first task holds them all
    async with Worker(time_skipping_env.client, task_queue=harness.task_queue, workflows=[ProposalWorkflow],
                      activities=harness.books.activities()):
        state = await harness.state_when(handle, lambda s: s.invoice_id is not None)
        await handle.terminate("test over")
    assert harness.books.invoices["P-1"].total == Decimal("600.00") and harness.books.calls["invoice"] == 1
    assert state.proposal == priced("600.00") and state.stage == Stage.JOB_COMPLETE


async def test_an_older_edit_arriving_late_does_not_undo_a_newer_one(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("o1", Stage.PROPOSAL, 0), edited("o2", 5, "500.00"), edited("o3", 3, "350.00")]
    handle = await harness.send_all(events)
    await harness.settled(handle, events)
    assert harness.books.estimates["P-1"].total == Decimal("500.00")


async def test_a_lost_proposal_rejects_the_estimate_and_reports_its_payments(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("l1", Stage.PROPOSAL, 0), paid("l2", "pay-1", "60.00", 1),
                              stage("l3", Stage.LOST, 2)]
    handle = await harness.send_all(events)
    state = await harness.settled(handle, events)

    assert harness.books.estimates["P-1"].status == "Rejected" and "P-1" not in harness.books.invoices
    assert harness.books.payments["pay-1"].unapplied == Decimal("60.00")  # stays, unapplied
    assert state.unapplied_total == Decimal("60.00")
    assert any("lost with 60.00" in notice for notice in state.notices)

    reopened = stage("l4", Stage.PROPOSAL, 3)
    await harness.settled(await harness.send(reopened), [reopened])
    assert harness.books.estimates["P-1"].status == "Pending"


async def test_a_refund_after_the_invoice_reopens_its_balance(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("r1", Stage.PROPOSAL, 0), paid("r2", "pay-1", "100.00", 1),
                              stage("r3", Stage.JOB_COMPLETE, 2)]
    handle = await harness.send_all(events)
    await harness.settled(handle, events)
    assert harness.books.balance("P-1") == PROPOSAL_TOTAL - Decimal("100.00")

    refund = voided("r4", "pay-1", "100.00", 3)
    state = await harness.settled(await harness.send(refund), [refund])
    assert harness.books.balance("P-1") == PROPOSAL_TOTAL
    assert harness.books.payments["pay-1"].voided and harness.books.calls["void"] == 1
    assert state.payments[0].voided_in_qbo and state.unapplied_total == 0


async def test_a_void_that_overtakes_its_payment_books_nothing(harness: Harness) -> None:
    events: list[CrmEvent] = [voided("v1", "pay-1", "100.00", 5, kind="void"), stage("v2", Stage.PROPOSAL, 0),
                              paid("v3", "pay-1", "100.00", 1)]
    handle = await harness.send_all(events)
    state = await harness.settled(handle, events)
    assert "pay-1" not in harness.books.payments
    assert state.payments[0].voided == "void" and state.payments[0].qbo_id is None


async def test_a_sync_snapshot_brings_everything_a_lost_webhook_missed(harness: Harness) -> None:
    snapshot = ProposalSynced(
        event_id="sync-1", account_id="acme-austin", occurred_at=T0, contact=factories.contact(),
        proposal=factories.proposal(), stage=Stage.JOB_COMPLETE, stage_at=T0,
        payments=[crm_payment("pay-1", "100.00"), crm_payment("pay-2", "30.00")], voided_payment_ids=["pay-2"])
    handle = await harness.send(snapshot)
    await harness.send(snapshot)  # the next sync reads the same again
    await harness.settled(handle, [snapshot])
    books = harness.books
    assert books.calls == Counter(customer=1, estimate=1, invoice=1, payment=1, apply=1)
    assert books.balance("P-1") == PROPOSAL_TOTAL - Decimal("100.00")


# -- stuck on a validation fault, then resumed --------------------------------------------------------
async def test_a_bad_item_holds_only_what_depends_on_it_and_an_edit_resumes_it(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("b1", Stage.PROPOSAL, 0, snapshot=with_bad_item()),
                              paid("b2", "pay-1", "50.00", 1)]
    handle = await harness.send_all(events)
    state = await harness.state_when(handle, lambda s: s.stuck and s.payments and s.payments[0].qbo_id)
    assert [s.step for s in state.stuck] == ["estimate"] and "category" in state.stuck[0].error
    assert (await handle.describe()).typed_search_attributes.get(sa.SYNC_STATUS) == "stuck"

    fixed = edited("b3", 2, "90.00")  # staff fix the line in the CRM
    state = await harness.settled(await harness.send(fixed), [fixed])
    assert state.stuck == [] and harness.books.estimates["P-1"].total == Decimal("90.00")
    assert (await handle.describe()).typed_search_attributes.get(sa.SYNC_STATUS) == "ok"


async def test_a_fault_fixed_in_qbo_resumes_on_the_retry_timer(harness: Harness) -> None:
    event = stage("t1", Stage.PROPOSAL, 0, snapshot=with_bad_item())
    handle = await harness.send(event, retry_every=timedelta(minutes=30))
    await harness.state_when(handle, lambda s: bool(s.stuck))
    harness.books.bad_items.clear()  # someone fixes the item in QBO
    # Waiting on the result lets the test server skip time: to the retry timer, then (nothing stuck any more)
    # to the idle finish. A run still stuck would never finish.
    state = await asyncio.wait_for(handle.result(), timeout=10)
    assert state.stuck == [] and state.estimate_id is not None


async def test_the_retry_signal_resumes_at_once(harness: Harness) -> None:
    event = stage("x1", Stage.PROPOSAL, 0, snapshot=with_bad_item())
    handle = await harness.send(event, retry_every=timedelta(days=7))
    await harness.state_when(handle, lambda s: bool(s.stuck))
    harness.books.bad_items.clear()
    await handle.signal(ProposalWorkflow.retry)
    state = await harness.state_when(handle, lambda s: s.estimate_id is not None)
    assert state.stuck == [] and harness.books.calls["estimate"] == 1


# -- idle finish and a new run from the ledger --------------------------------------------------------
async def test_an_idle_proposal_finishes_and_the_next_run_starts_from_the_ledger(harness: Harness) -> None:
    events: list[CrmEvent] = [stage("i1", Stage.PROPOSAL, 0), stage("i2", Stage.JOB_COMPLETE, 1)]
    for event in events:
        first = await harness.send(event, idle=timedelta(hours=1))
    finished = await first.result()  # the test server skips the idle hour
    assert finished.invoice_id is not None

    late = paid("i3", "pay-1", "25.00", 60 * 24)
    second = await harness.send(late, idle=timedelta(hours=1))
    state = await harness.settled(second, [late])
    assert second.result_run_id != first.result_run_id
    assert state.invoice_id == finished.invoice_id  # rebuilt, not created again
    assert harness.books.calls["invoice"] == 1 and harness.books.calls["apply"] == 1
    assert harness.books.balance("P-1") == PROPOSAL_TOTAL - Decimal("25.00")
    assert (await second.describe()).status == WorkflowExecutionStatus.RUNNING
