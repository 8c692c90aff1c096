"""Routes CRM events to their workflows with signal-with-start; the API, the CLI and reconciliation all send
through here. Workflows are named, not imported, so activities can use this module without importing
workflow code."""

import logging
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from config.settings import Settings
from models import search_attributes as sa
from models.accounts import Franchisee
from models.proposals import (
    CrmContact,
    PaymentAdded,
    PaymentVoided,
    ProposalChanged,
    ProposalEvent,
    ProposalInput,
    ProposalSynced,
    SalesCycleChange,
    proposal_workflow_id,
    stage_for_step,
)
from models.reconcile import ReconcileInput, ReconcileResult, reconcile_workflow_id
from models.royalty import RoyaltyRunInput, RoyaltyRunResult, RoyaltyTimeouts, royalty_run_id

log = logging.getLogger("ledgerflow.dispatch")


@dataclass(frozen=True)
class Dispatched:
    status: str  # "accepted" or "ignored"
    workflow_id: str | None = None
    stage: str | None = None
    reason: str | None = None


async def _signal_with_start(client: Client, settings: Settings, franchisee: Franchisee, contact: CrmContact,
                             proposal_id: str, proposal_number: str, signal: str, event: Any) -> Dispatched:
    """Signal the proposal's workflow, starting it if it is not running; answers once Temporal has the event."""
    workflow_id = proposal_workflow_id(franchisee.account_id, proposal_id)
    await client.start_workflow(
        "ProposalWorkflow",
        ProposalInput(account_id=franchisee.account_id, proposal_id=proposal_id, realm_id=franchisee.qbo_realm_id,
                      franchisor_id=franchisee.franchisor_id, idle_timeout=settings.proposal_idle_timeout,
                      stuck_retry_interval=settings.proposal_stuck_retry_interval,
                      qbo_timeout=settings.qbo_activity_timeout),
        id=workflow_id,
        task_queue=settings.task_queue,
        start_signal=signal,
        start_signal_args=[event],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.ACCOUNT_ID, franchisee.account_id),
            SearchAttributePair(sa.CONTACT_ID, contact.id),
            SearchAttributePair(sa.PROPOSAL_ID, proposal_id),
            SearchAttributePair(sa.FRANCHISOR, franchisee.franchisor_id),
            SearchAttributePair(sa.STAGE, "new"),
        ]),
        static_summary=f"Proposal {proposal_number} of {contact.display_name}",
    )
    return Dispatched("accepted", workflow_id=workflow_id)


async def send_sales_cycle_change(
    client: Client, settings: Settings, franchisee: Franchisee, change: SalesCycleChange
) -> Dispatched:
    """A step change: to the proposal's workflow when the account maps the step to a lifecycle stage."""
    stage = stage_for_step(franchisee.sales_cycle, change.sales_cycle_step)
    if stage is None:
        reason = (f"sales-cycle step {change.sales_cycle_step!r} is not mapped to a lifecycle stage for account "
                  f"{franchisee.account_id}")
        log.info("CRM event %s ignored: %s", change.event_id, reason)
        return Dispatched("ignored", reason=reason)
    if change.proposal is None:
        return Dispatched("ignored", reason=f"contact {change.contact.id} has no proposal")
    dispatched = await _signal_with_start(client, settings, franchisee, change.contact, change.proposal.id,
                                          change.proposal.number, "event", ProposalEvent(change=change, stage=stage))
    return replace(dispatched, stage=stage.value)


async def send_proposal_changed(client: Client, settings: Settings, franchisee: Franchisee,
                                event: ProposalChanged) -> Dispatched:
    return await _signal_with_start(client, settings, franchisee, event.contact, event.proposal.id,
                                    event.proposal.number, "proposal_changed", event)


async def send_payment_added(client: Client, settings: Settings, franchisee: Franchisee,
                             event: PaymentAdded) -> Dispatched:
    return await _signal_with_start(client, settings, franchisee, event.contact, event.proposal_id,
                                    event.proposal_number, "payment_added", event)


async def send_payment_voided(client: Client, settings: Settings, franchisee: Franchisee,
                              event: PaymentVoided) -> Dispatched:
    return await _signal_with_start(client, settings, franchisee, event.contact, event.proposal_id,
                                    event.proposal_number, "payment_voided", event)


async def send_proposal_synced(client: Client, settings: Settings, franchisee: Franchisee,
                               event: ProposalSynced) -> Dispatched:
    return await _signal_with_start(client, settings, franchisee, event.contact, event.proposal.id,
                                    event.proposal.number, "synced", event)


async def start_reconcile(client: Client, settings: Settings, account_id: str,
                          full: bool = False) -> WorkflowHandle[Any, ReconcileResult]:
    """Sync an account now; a sync of the account already running takes the request instead."""
    return await client.start_workflow(
        "ReconcileWorkflow", ReconcileInput(account_id=account_id, full=full), result_type=ReconcileResult,
        id=reconcile_workflow_id(account_id), task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ACCOUNT_ID, account_id)]),
        static_summary=f"Reconcile CRM account {account_id}{' (full)' if full else ''}",
    )


def royalty_timeouts(settings: Settings) -> RoyaltyTimeouts:
    # One gateway attempt holds the client's own retries of a timed-out call, with room to spare.
    gateway_call = timedelta(seconds=settings.gateway_http_timeout_seconds * (settings.gateway_retries + 1) + 10)
    return RoyaltyTimeouts(qbo_call=settings.qbo_activity_timeout, check_patience=settings.royalty_check_patience,
                           gateway_call=gateway_call)


async def start_royalty_run(client: Client, settings: Settings, franchisor_id: str,
                            business: date) -> WorkflowHandle[Any, RoyaltyRunResult]:
    """Run a franchisor's royalty for a business date now. A date already running takes the request; a date
    run before runs again, and charges only what no run has charged."""
    return await client.start_workflow(
        "RoyaltyRunWorkflow", RoyaltyRunInput(franchisor_id=franchisor_id, business_date=business,
                                              timeouts=royalty_timeouts(settings)),
        result_type=RoyaltyRunResult, id=royalty_run_id(franchisor_id, business), task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.FRANCHISOR, franchisor_id)]),
        static_summary=f"Royalty of {franchisor_id} for {business}",
    )
