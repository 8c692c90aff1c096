"""Reconciliation's logic on the time-skipping test server, its activities stubbed: every page is read and
fed, the cursor moves to the newest change seen and never back, and the next run reads from it."""

import uuid
from datetime import timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from models.proposals import ProposalSynced
from models.reconcile import CrmChangesPage, ReconcileInput
from tests import factories
from tests.factories import T0
from tests.stubs import StubCrmSync
from workflows.reconcile import OVERLAP, ReconcileWorkflow


def snapshot(proposal_id: str, minutes: int) -> ProposalSynced:
    return ProposalSynced(event_id=f"sync-{proposal_id}", account_id="acme-austin",
                          occurred_at=T0 + timedelta(minutes=minutes), contact=factories.contact(),
                          proposal=factories.proposal(proposal_id=proposal_id, number=f"N-{proposal_id}"))


def page(*snapshots: ProposalSynced, total: int) -> CrmChangesPage:
    return CrmChangesPage(proposals=list(snapshots), read=len(snapshots), total=total,
                          newest=max(s.occurred_at for s in snapshots))


async def run(env: WorkflowEnvironment, stub: StubCrmSync, full: bool = False) -> object:
    task_queue = f"tq-{uuid.uuid4()}"
    async with Worker(env.client, task_queue=task_queue, workflows=[ReconcileWorkflow], activities=stub.activities()):
        return await env.client.execute_workflow(ReconcileWorkflow.run, ReconcileInput(account_id="acme-austin",
                                                                                       full=full),
                                                 id=f"reconcile:{uuid.uuid4()}", task_queue=task_queue)


async def test_every_page_is_fed_and_the_cursor_moves_to_the_newest_change(time_skipping_env: WorkflowEnvironment
                                                                           ) -> None:
    stub = StubCrmSync([page(snapshot("1", 5), snapshot("2", 9), total=3), page(snapshot("3", 7), total=3)])
    result = await run(time_skipping_env, stub)

    assert stub.fed == ["1", "2", "3"]
    assert [r.offset for r in stub.reads] == [0, 2] and stub.reads[0].since is None  # no cursor yet: everything
    assert stub.cursor == T0 + timedelta(minutes=9)
    assert result.proposals_fed == 3  # type: ignore[attr-defined]


async def test_the_next_run_reads_from_the_cursor_with_an_overlap(time_skipping_env: WorkflowEnvironment) -> None:
    stub = StubCrmSync([page(snapshot("4", 1), total=1)], cursor=T0 + timedelta(hours=1))
    await run(time_skipping_env, stub)

    assert stub.reads[0].since == T0 + timedelta(hours=1) - OVERLAP
    assert stub.cursor == T0 + timedelta(hours=1)  # an older change seen again never moves it back


async def test_a_full_run_ignores_the_cursor(time_skipping_env: WorkflowEnvironment) -> None:
    stub = StubCrmSync([page(snapshot("5", 1), total=1)], cursor=T0 + timedelta(hours=1))
    await run(time_skipping_env, stub, full=True)
    assert stub.reads[0].since is None and stub.fed == ["5"]
