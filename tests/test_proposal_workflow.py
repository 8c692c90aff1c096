"""The proposal workflow's logic on the time-skipping test server, with the QBO activities stubbed."""

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import search_attributes as sa
from models.proposals import ProposalEvent, ProposalInput, Stage
from tests import factories
from tests.stubs import StubQuickBooks
from workflows.proposal import ProposalWorkflow


async def send(client: Client, task_queue: str, workflow_id: str, event: ProposalEvent,
               idle: timedelta = timedelta(days=30)) -> WorkflowHandle:
    return await client.start_workflow(
        ProposalWorkflow.run,
        ProposalInput(account_id="acme-austin", proposal_id="P-1", realm_id="r1", franchisor_id="acme",
                      idle_timeout=idle),
        id=workflow_id, task_queue=task_queue, start_signal="event", start_signal_args=[event],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


def proposal_event(event_id: str, stage: Stage = Stage.PROPOSAL, number: str = "1001") -> ProposalEvent:
    return ProposalEvent(change=factories.sales_cycle_change(event_id=event_id, number=number), stage=stage)


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


async def wait_for(handle: WorkflowHandle, predicate, env: WorkflowEnvironment) -> None:  # type: ignore[no-untyped-def]
    for _ in range(200):
        if predicate(await handle.query(ProposalWorkflow.state)):
            return
        await env.sleep(0.05)
    raise AssertionError(f"state never matched: {await handle.query(ProposalWorkflow.state)}")


async def test_proposal_event_creates_customer_and_estimate_once(time_skipping_env: WorkflowEnvironment,
                                                                 task_queue: str) -> None:
    stub = StubQuickBooks()
    client = time_skipping_env.client
    workflow_id = f"proposal:{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[ProposalWorkflow],
                      activities=[stub.ensure_customer, stub.ensure_estimate]):
        handle = await send(client, task_queue, workflow_id, proposal_event("evt-1"))
        await send(client, task_queue, workflow_id, proposal_event("evt-1"))  # duplicated delivery
        await wait_for(handle, lambda s: s.events_seen == ["evt-1"], time_skipping_env)
        state = await handle.query(ProposalWorkflow.state)
        description = await handle.describe()

    assert (state.stage, state.customer_id, state.estimate_id) == (Stage.PROPOSAL, "cust-C-1", "est-1001")
    assert stub.calls == Counter(customer=1, estimate=1)
    assert description.typed_search_attributes.get(sa.STAGE) == "proposal"


async def test_later_stage_events_are_kept_not_dropped(time_skipping_env: WorkflowEnvironment,
                                                       task_queue: str) -> None:
    stub = StubQuickBooks()
    client = time_skipping_env.client
    workflow_id = f"proposal:{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[ProposalWorkflow],
                      activities=[stub.ensure_customer, stub.ensure_estimate]):
        handle = await send(client, task_queue, workflow_id, proposal_event("evt-done", Stage.JOB_COMPLETE))
        await wait_for(handle, lambda s: s.events_seen == ["evt-done"], time_skipping_env)
        state = await handle.query(ProposalWorkflow.state)

    assert [e.change.event_id for e in state.deferred_events] == ["evt-done"]
    assert stub.calls == Counter()


async def test_final_qbo_fault_is_recorded_and_later_events_still_run(time_skipping_env: WorkflowEnvironment,
                                                                      task_queue: str) -> None:
    stub = StubQuickBooks()
    client = time_skipping_env.client
    workflow_id = f"proposal:{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[ProposalWorkflow],
                      activities=[stub.ensure_customer, stub.ensure_estimate]):
        handle = await send(client, task_queue, workflow_id, proposal_event("evt-bad", number="BAD"))
        await send(client, task_queue, workflow_id, proposal_event("evt-good", number="1002"))
        await wait_for(handle, lambda s: len(s.events_seen) == 2, time_skipping_env)
        state = await handle.query(ProposalWorkflow.state)

    assert len(state.failed_events) == 1 and state.failed_events[0].startswith("evt-bad:")
    assert "Invalid Reference Id" in state.failed_events[0]
    assert state.estimate_id == "est-1002"


async def test_idle_workflow_finishes_and_a_later_event_starts_a_new_run(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    stub = StubQuickBooks()
    client = time_skipping_env.client
    workflow_id = f"proposal:{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[ProposalWorkflow],
                      activities=[stub.ensure_customer, stub.ensure_estimate]):
        first = await send(client, task_queue, workflow_id, proposal_event("evt-1"), idle=timedelta(hours=1))
        finished = await first.result()  # the test server skips the idle hour
        second = await send(client, task_queue, workflow_id, proposal_event("evt-2"), idle=timedelta(hours=1))
        await wait_for(second, lambda s: s.events_seen == ["evt-2"], time_skipping_env)

    assert finished.events_seen == ["evt-1"]
    assert second.result_run_id != first.result_run_id
