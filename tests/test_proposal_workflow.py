"""The proposal workflow's logic on the time-skipping test server, with the QBO activities stubbed."""

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models import search_attributes as sa
from models.proposals import ProposalEvent, ProposalInput, ProposalState, Stage
from tests import factories
from tests.stubs import StubQuickBooks
from workflows.proposal import ProposalWorkflow


@dataclass
class Harness:
    """One proposal workflow id on a worker with stubbed QBO activities."""

    env: WorkflowEnvironment
    task_queue: str
    stub: StubQuickBooks = field(default_factory=StubQuickBooks)
    workflow_id: str = field(default_factory=lambda: f"proposal:{uuid.uuid4()}")

    async def send(self, event: ProposalEvent, idle: timedelta = timedelta(days=30)) -> WorkflowHandle:
        """Signal-with-start, as the front door does."""
        return await self.env.client.start_workflow(
            ProposalWorkflow.run,
            ProposalInput(account_id="acme-austin", proposal_id="P-1", realm_id="r1", franchisor_id="acme",
                          idle_timeout=idle),
            id=self.workflow_id, task_queue=self.task_queue, start_signal="event", start_signal_args=[event],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )

    async def state_when(self, handle: WorkflowHandle, done: Callable[[ProposalState], bool]) -> ProposalState:
        for _ in range(200):
            state = await handle.query(ProposalWorkflow.state)
            if done(state):
                return state
            await self.env.sleep(0.05)
        raise AssertionError(f"state never matched: {state}")


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment) -> AsyncIterator[Harness]:
    harness = Harness(time_skipping_env, task_queue=f"tq-{uuid.uuid4()}")
    async with Worker(time_skipping_env.client, task_queue=harness.task_queue, workflows=[ProposalWorkflow],
                      activities=[harness.stub.ensure_customer, harness.stub.ensure_estimate]):
        yield harness


def proposal_event(event_id: str, stage: Stage = Stage.PROPOSAL, number: str = "1001") -> ProposalEvent:
    return ProposalEvent(change=factories.sales_cycle_change(event_id=event_id, number=number), stage=stage)


async def test_proposal_event_creates_customer_and_estimate_once(harness: Harness) -> None:
    handle = await harness.send(proposal_event("evt-1"))
    await harness.send(proposal_event("evt-1"))  # duplicated delivery
    state = await harness.state_when(handle, lambda s: s.events_seen == ["evt-1"])
    description = await handle.describe()

    assert (state.stage, state.customer_id, state.estimate_id) == (Stage.PROPOSAL, "cust-C-1", "est-1001")
    assert harness.stub.calls == Counter(customer=1, estimate=1)
    assert description.typed_search_attributes.get(sa.STAGE) == "proposal"


async def test_later_stage_events_are_kept_not_dropped(harness: Harness) -> None:
    handle = await harness.send(proposal_event("evt-done", Stage.JOB_COMPLETE))
    state = await harness.state_when(handle, lambda s: s.events_seen == ["evt-done"])

    assert [e.change.event_id for e in state.deferred_events] == ["evt-done"]
    assert harness.stub.calls == Counter()


async def test_final_qbo_fault_is_recorded_and_later_events_still_run(harness: Harness) -> None:
    handle = await harness.send(proposal_event("evt-bad", number="BAD"))
    await harness.send(proposal_event("evt-good", number="1002"))
    state = await harness.state_when(handle, lambda s: len(s.events_seen) == 2)

    assert len(state.failed_events) == 1 and state.failed_events[0].startswith("evt-bad:")
    assert "Invalid Reference Id" in state.failed_events[0]
    assert state.estimate_id == "est-1002"


async def test_idle_workflow_finishes_and_a_later_event_starts_a_new_run(harness: Harness) -> None:
    first = await harness.send(proposal_event("evt-1"), idle=timedelta(hours=1))
    finished = await first.result()  # the test server skips the idle hour
    second = await harness.send(proposal_event("evt-2"), idle=timedelta(hours=1))
    await harness.state_when(second, lambda s: s.events_seen == ["evt-2"])

    assert finished.events_seen == ["evt-1"]
    assert second.result_run_id != first.result_run_id


async def test_a_run_holding_deferred_events_does_not_finish_when_idle(harness: Harness) -> None:
    handle = await harness.send(proposal_event("evt-done", Stage.JOB_COMPLETE), idle=timedelta(hours=1))
    await harness.state_when(handle, lambda s: s.events_seen == ["evt-done"])
    # Waiting on the result lets the test server skip time: an idle timer would fire at once and end the run.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(handle.result(), timeout=3)
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    state = await handle.query(ProposalWorkflow.state)
    assert [e.change.event_id for e in state.deferred_events] == ["evt-done"]  # type: ignore[union-attr]
