"""Reconciliation: read an account's CRM for the proposals changed since the last run and feed them to the
proposal workflows. The safety net under the webhooks: scheduled every few hours, and run on demand."""

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.crm import CrmActivities
    from activities.ledger import LedgerActivities
    from activities.proposal_feed import ProposalFeedActivities
    from models.reconcile import (
        CrmChangesPage,
        CursorInput,
        FeedInput,
        ReadChangesInput,
        ReconcileInput,
        ReconcileResult,
    )

CRM_RETRY = RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=5),
                        non_retryable_error_types=["UnknownAccount"])
# Read again this far before the cursor: rows changed within the same second as the last one read.
OVERLAP = timedelta(minutes=10)


@workflow.defn
class ReconcileWorkflow:
    @workflow.run
    async def run(self, input: ReconcileInput) -> ReconcileResult:
        since: datetime | None = None
        if not input.full:
            cursor = await workflow.execute_activity_method(
                LedgerActivities.load_sync_cursor, input.account_id, start_to_close_timeout=timedelta(seconds=30),
                summary="Ledger: where the last sync stopped")
            since = cursor - OVERLAP if cursor is not None else None
        offset, fed, newest = 0, 0, None
        while True:
            page: CrmChangesPage = await workflow.execute_activity_method(
                CrmActivities.read_crm_changes, ReadChangesInput(account_id=input.account_id, since=since,
                                                                 offset=offset),
                start_to_close_timeout=timedelta(minutes=5), retry_policy=CRM_RETRY,
                summary=f"CRM: proposals changed since {since.isoformat() if since else 'ever'}, from {offset}")
            if page.proposals:
                fed += await workflow.execute_activity_method(
                    ProposalFeedActivities.feed_proposals, FeedInput(account_id=input.account_id,
                                                                     proposals=page.proposals),
                    start_to_close_timeout=timedelta(minutes=5), heartbeat_timeout=timedelta(minutes=1),
                    summary=f"Feed {len(page.proposals)} proposals to their workflows")
            if page.newest is not None and (newest is None or page.newest > newest):
                newest = page.newest
            offset += page.read
            if page.read == 0 or offset >= page.total:
                break
        if newest is not None:
            await workflow.execute_activity_method(
                LedgerActivities.save_sync_cursor, CursorInput(account_id=input.account_id, cursor=newest),
                start_to_close_timeout=timedelta(seconds=30), summary=f"Ledger: sync cursor to {newest.isoformat()}")
        return ReconcileResult(account_id=input.account_id, since=since, proposals_fed=fed, cursor=newest)
