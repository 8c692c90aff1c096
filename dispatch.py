"""Routes CRM events to their workflows with signal-with-start; the API and the CLI both send through here."""

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from config.settings import Settings
from models import search_attributes as sa
from models.accounts import Franchisee
from models.proposals import ProposalEvent, ProposalInput, SalesCycleChange, proposal_workflow_id, stage_for_step
from workflows.proposal import ProposalWorkflow


@dataclass(frozen=True)
class Dispatched:
    status: str  # "accepted" or "ignored"
    workflow_id: str | None = None
    stage: str | None = None
    reason: str | None = None


async def send_sales_cycle_change(
    client: Client, settings: Settings, franchisee: Franchisee, change: SalesCycleChange
) -> Dispatched:
    """Signal the proposal's workflow, starting it if it is not running. A step the account does not map to
    a lifecycle stage starts nothing."""
    stage = stage_for_step(franchisee.sales_cycle, change.sales_cycle_step)
    if stage is None:
        return Dispatched("ignored", reason=f"sales-cycle step {change.sales_cycle_step!r} is not mapped "
                                             f"to a lifecycle stage for account {franchisee.account_id}")
    if change.proposal is None:
        return Dispatched("ignored", reason=f"contact {change.contact.id} has no proposal")
    workflow_id = proposal_workflow_id(franchisee.account_id, change.proposal.id)
    await client.start_workflow(
        ProposalWorkflow.run,
        ProposalInput(account_id=franchisee.account_id, proposal_id=change.proposal.id,
                    realm_id=franchisee.qbo_realm_id, franchisor_id=franchisee.franchisor_id,
                    idle_timeout=settings.proposal_idle_timeout),
        id=workflow_id,
        task_queue=settings.task_queue,
        start_signal="event",
        start_signal_args=[ProposalEvent(change=change, stage=stage)],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.ACCOUNT_ID, franchisee.account_id),
            SearchAttributePair(sa.CONTACT_ID, change.contact.id),
            SearchAttributePair(sa.PROPOSAL_ID, change.proposal.id),
            SearchAttributePair(sa.FRANCHISOR, franchisee.franchisor_id),
            SearchAttributePair(sa.STAGE, "new"),
        ]),
        static_summary=f"Proposal {change.proposal.number} of {change.contact.display_name}",
    )
    return Dispatched("accepted", workflow_id=workflow_id, stage=stage.value)
