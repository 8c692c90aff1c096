"""Routes CRM events to their workflows with signal-with-start, and contacts into action plans; the API, the
CLI, reconciliation and the plans themselves all send through here. Workflows are named, not imported, so
activities can use this module without importing workflow code."""

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from models import search_attributes as sa
from models.accounts import Franchisee
from models.autopay_cycles import AutopayCycleInput, AutopayCycleResult, autopay_workflow_id
from models.collection_ledger import CollectedPayment
from models.collections import (
    AchWatch,
    CollectionResult,
    CollectPayment,
    RefundPayment,
    ach_workflow_id,
    collection_workflow_id,
    refund_workflow_id,
)
from models.db import get_engine
from models.enrollments import EnrollmentInput, SalesCycleChanged, plan_workflow_id
from models.leads import EmailCaptureInput, LeadDelivery, LeadIntakeInput, email_workflow_id, lead_workflow_id
from models.plan_enrollments import ever_enrolled
from models.plans import Plan, Reentry
from models.proposals import (
    CrmContact,
    PaymentAdded,
    PaymentVoided,
    ProposalChanged,
    ProposalEvent,
    ProposalInput,
    ProposalSynced,
    SalesCycleChange,
    for_step,
    proposal_workflow_id,
    stage_for_step,
)
from models.reconcile import ReconcileInput, ReconcileResult, reconcile_workflow_id
from models.royalty import RoyaltyRunInput, RoyaltyRunResult, RoyaltyTimeouts, royalty_run_id
from models.scheduled_payments import ScheduledPaymentState, SchedulePayment, scheduled_workflow_id

log = logging.getLogger("ledgerflow.dispatch")
# Temporal answers that mean "not now": the caller should send again later (the front door answers 503).
TRANSIENT = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED,
                       RPCStatusCode.ABORTED, RPCStatusCode.CANCELLED})


def transient(error: BaseException) -> bool:
    return isinstance(error, RPCError) and error.status in TRANSIENT


@dataclass(frozen=True)
class Dispatched:
    status: str  # "accepted" or "ignored"
    workflow_id: str | None = None
    run_id: str | None = None
    stage: str | None = None
    reason: str | None = None


async def _signal_with_start(client: Client, settings: Settings, franchisee: Franchisee, contact: CrmContact,
                             proposal_id: str, proposal_number: str, signal: str, event: Any) -> Dispatched:
    """Signal the proposal's workflow, starting it if it is not running; answers once Temporal has the event."""
    workflow_id = proposal_workflow_id(franchisee.account_id, proposal_id)
    handle = await client.start_workflow(
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
    return Dispatched("accepted", workflow_id=workflow_id, run_id=handle.result_run_id)


async def send_sales_cycle_change(
    client: Client, settings: Settings, franchisee: Franchisee, change: SalesCycleChange
) -> Dispatched:
    """A step change: to the proposal's workflow when the account maps the step to a lifecycle stage, to the
    contact's running action plans (a step may be a plan's goal), and into the plan the account starts there."""
    plans = await _sales_cycle_to_plans(client, settings, franchisee, change)
    dispatched = await _sales_cycle_to_proposal(client, settings, franchisee, change)
    if plans and dispatched.status == "ignored":
        return Dispatched("accepted", workflow_id=plans[0], reason=dispatched.reason)
    return dispatched


async def _sales_cycle_to_plans(client: Client, settings: Settings, franchisee: Franchisee,
                                change: SalesCycleChange) -> list[str]:
    """The enrollments told of the change, and the one the step starts: their workflow ids."""
    query = (f"WorkflowType = 'ActionPlanWorkflow' AND ExecutionStatus = 'Running' AND "
             f"AccountId = '{_quoted(franchisee.account_id)}' AND ContactId = '{_quoted(change.contact.id)}'")
    signal = SalesCycleChanged(event_id=change.event_id, step=change.sales_cycle_step, occurred_at=change.occurred_at)
    try:
        running = [(e.id, e.run_id) async for e in client.list_workflows(query)]
    except RPCError as error:  # the proposal's part must not wait on the plans' visibility...
        if transient(error):  # ...but a Temporal that is away takes neither: the sender delivers again
            raise
        log.warning("CRM event %s: the contact's action plans were not told of the step: %s", change.event_id, error)
        running = []
    touched = await signal_runs(client, running, "sales_cycle_changed", signal)
    plan_id = for_step(franchisee.action_plans, change.sales_cycle_step)
    if plan_id is not None:
        try:
            enrolled = await enroll_contact(client, settings, get_engine(settings.database_url),
                                            franchisee.account_id, change.contact.id, plan_id,
                                            f"step:{change.sales_cycle_step}", trigger=change.event_id)
        except PlanNotEnrollable as fault:
            log.error("CRM event %s: %s", change.event_id, fault)
        else:
            touched += [enrolled.workflow_id] if enrolled.status == "accepted" and enrolled.workflow_id else []
    return touched


def _quoted(value: str) -> str:
    """A value inside a visibility query's single quotes."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


async def _sales_cycle_to_proposal(
    client: Client, settings: Settings, franchisee: Franchisee, change: SalesCycleChange
) -> Dispatched:
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


# -- action plans -----------------------------------------------------------------------------------------
class PlanNotEnrollable(LookupError):
    """The plan or the account does not exist, or the plan does not validate: nothing is started."""


async def enroll_contact(client: Client, settings: Settings, engine: Engine, account_id: str, contact_id: str,
                         plan_id: str, source: str, trigger: str | None = None) -> Dispatched:
    """Start the plan for the contact as the plan file says now (its version travels with the run). The
    plan's re-entry policy decides a second enrollment: `once` ignores it forever, `one_active` while one
    runs, `always` restarts the running one from the top. `trigger` names what enrolled (a CRM event's id):
    the same trigger delivered again never restarts a run."""
    from config.plans import PlanError, load_plan  # the loader reads files: only enrollments need it

    def read() -> tuple[Franchisee, Plan, bool]:
        """The files and the database, off the event loop: a worker's workflow tasks share it."""
        with Session(engine) as session:
            franchisee = session.get(Franchisee, account_id)
        if franchisee is None:
            raise PlanNotEnrollable(f"unknown account {account_id!r}")
        try:
            plan = load_plan(plan_id, sorted(settings.plans_dir.glob("*.yaml")))
        except PlanError as fault:
            raise PlanNotEnrollable(f"plan {plan_id!r} cannot be enrolled: {fault}") from fault
        return franchisee, plan, ever_enrolled(engine, account_id, contact_id, plan.id)

    franchisee, plan, enrolled_before = await asyncio.to_thread(read)
    workflow_id = plan_workflow_id(account_id, contact_id, plan.id)
    reentry = plan.settings.reentry
    if reentry is Reentry.ONCE and enrolled_before:
        return Dispatched("ignored", workflow_id=workflow_id, reason=f"{plan.id} runs once per contact")
    for attempt in range(2):
        try:
            handle = await client.start_workflow(
                "ActionPlanWorkflow", EnrollmentInput(account_id=account_id, contact_id=contact_id, plan=plan,
                                                      source=source),
                id=workflow_id, task_queue=settings.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=TypedSearchAttributes([
                    SearchAttributePair(sa.ACCOUNT_ID, account_id), SearchAttributePair(sa.CONTACT_ID, contact_id),
                    SearchAttributePair(sa.FRANCHISOR, franchisee.franchisor_id)]),
                static_summary=f"{plan.name} (v{plan.version}) for contact {contact_id}",
                static_details=f"from {source}", memo={"trigger": trigger or ""})
            return Dispatched("accepted", workflow_id=workflow_id, run_id=handle.result_run_id)
        except WorkflowAlreadyStartedError:
            if reentry is not Reentry.ALWAYS or attempt > 0:
                return Dispatched("ignored", workflow_id=workflow_id,
                                  reason=f"{plan.id} is already running for the contact")
        running = await _running_trigger(client, workflow_id)
        if trigger is not None and running == trigger:
            return Dispatched("ignored", workflow_id=workflow_id, reason=f"{plan.id} runs for this trigger already")
        if running is not None:
            await client.get_workflow_handle(workflow_id).terminate(f"re-enrolled ({source}): restarted from the top")
    raise AssertionError("unreachable: the second attempt returns")


async def _running_trigger(client: Client, workflow_id: str) -> str | None:
    """The trigger of the enrollment `workflow_id` if it is running ("" when it was started without one)."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if description.status != WorkflowExecutionStatus.RUNNING:
        return None
    return str(await description.memo_value("trigger", default=""))


async def signal_runs(client: Client, runs: list[tuple[str, str | None]], signal: str, arg: Any) -> list[str]:
    """Signal each run (workflow id, run id) of an enrollment: a reply, an opt-out, a step change. One that has
    just ended is passed over. The workflow ids signalled."""
    signalled = []
    for workflow_id, run_id in runs:
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).signal(signal, arg)
            signalled.append(workflow_id)
        except RPCError as error:
            log.info("signal %s to %s not delivered: %s", signal, workflow_id, error)
    return signalled


# -- lead intake ------------------------------------------------------------------------------------------
async def send_lead(client: Client, franchisor_id: str, task_queue: str, input: LeadIntakeInput,
                    delivery: LeadDelivery) -> Dispatched:
    """Hand one arrival of a lead to its workflow (started if not running): the same lead posted twice at once
    reaches one run, which handles both in order."""
    workflow_id = lead_workflow_id(input.account_id, input.channel, input.lead_id)
    handle = await client.start_workflow(
        "LeadIntakeWorkflow", input, id=workflow_id, task_queue=task_queue,
        start_signal="lead_received", start_signal_args=[delivery],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ACCOUNT_ID, input.account_id),
                                                 SearchAttributePair(sa.FRANCHISOR, franchisor_id)]),
        static_summary=f"Lead {input.lead_id} from {input.lead_source or input.channel.value}: "
                       f"{delivery.lead.display_name}")
    return Dispatched("accepted", workflow_id=workflow_id, run_id=handle.result_run_id)


async def send_captured_email(client: Client, franchisor_id: str, task_queue: str,
                              input: EmailCaptureInput) -> Dispatched:
    """A captured email to its workflow; the same message delivered again joins the run already handling it."""
    workflow_id = email_workflow_id(input.account_id, input.mail.message_id)
    handle = await client.start_workflow(
        "EmailCaptureWorkflow", input, id=workflow_id, task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ACCOUNT_ID, input.account_id),
                                                 SearchAttributePair(sa.FRANCHISOR, franchisor_id)]),
        static_summary=f"Email from {input.mail.sender_address}: {input.mail.subject[:80]}")
    return Dispatched("accepted", workflow_id=workflow_id, run_id=handle.result_run_id)


# -- payments ---------------------------------------------------------------------------------------------
async def _start_once(client: Client, workflow: str, input: Any, workflow_id: str, result_type: type,
                      task_queue: str, attributes: list[SearchAttributePair[str]], summary: str,
                      reuse: WorkflowIDReusePolicy = WorkflowIDReusePolicy.REJECT_DUPLICATE
                      ) -> WorkflowHandle[Any, Any]:
    """Start a workflow whose id is the caller's idempotency key: the same key again, while it runs or after
    it ended (after it failed too, unless `reuse` says otherwise), gets the first run and its result."""
    try:
        return await client.start_workflow(
            workflow, input, id=workflow_id, task_queue=task_queue, result_type=result_type,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=reuse, search_attributes=TypedSearchAttributes(attributes), static_summary=summary)
    except WorkflowAlreadyStartedError:
        return client.get_workflow_handle(workflow_id, result_type=result_type)


def _payment_attributes(franchisee: Franchisee, proposal_id: str | None = None,
                        stage: str | None = None) -> list[SearchAttributePair[str]]:
    """The account and franchisor of every payment run, and the proposal and stage where there is one."""
    return [SearchAttributePair(sa.ACCOUNT_ID, franchisee.account_id),
            SearchAttributePair(sa.FRANCHISOR, franchisee.franchisor_id),
            *([SearchAttributePair(sa.PROPOSAL_ID, proposal_id)] if proposal_id else []),
            *([SearchAttributePair(sa.STAGE, stage)] if stage else [])]


async def start_collection(client: Client, settings: Settings, franchisee: Franchisee,
                           request: CollectPayment) -> WorkflowHandle[Any, CollectionResult]:
    """Collect a payment once per idempotency key: a double submit joins (or reads) the first collection."""
    request = request.model_copy(update={"ach_poll_interval_seconds": settings.ach_poll_interval.total_seconds()})
    return await _start_once(
        client, "PaymentCollectionWorkflow", request,
        collection_workflow_id(franchisee.account_id, request.collection_key), CollectionResult,
        settings.task_queue, _payment_attributes(franchisee, request.proposal_id, "reserved"),
        f"Collect {request.amount} (+{request.tip} tip) by {request.method} for proposal {request.proposal_id}")


async def start_refund(client: Client, settings: Settings, franchisee: Franchisee,
                       request: RefundPayment) -> WorkflowHandle[Any, CollectionResult]:
    """Give a collected payment back in full, once: a second request joins (or reads) the first refund."""
    return await _start_once(
        client, "PaymentRefundWorkflow", request, refund_workflow_id(franchisee.account_id, request.collection_key),
        CollectionResult, settings.task_queue, _payment_attributes(franchisee),
        f"Refund payment {request.collection_key}",
        reuse=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY)  # refused while not yet charged: ask again later


async def start_scheduled_payment(client: Client, settings: Settings, franchisee: Franchisee,
                                  request: SchedulePayment) -> WorkflowHandle[Any, ScheduledPaymentState]:
    request = request.model_copy(update={"ach_poll_interval_seconds": settings.ach_poll_interval.total_seconds()})
    return await _start_once(
        client, "ScheduledPaymentWorkflow", request,
        scheduled_workflow_id(franchisee.account_id, request.schedule_id), ScheduledPaymentState,
        settings.task_queue, _payment_attributes(franchisee, request.proposal_id, "scheduled"),
        f"Pay up to {request.amount} on {request.pay_on} for proposal {request.proposal_id}")


async def watch_debit_again(client: Client, settings: Settings, collected: CollectedPayment) -> str:
    """A gateway webhook about a bank debit nothing watches any more (a return after its window): one look,
    which reverses the books if the bank sent it back. A watch still running takes the nudge instead."""
    assert collected.transaction_id is not None and collected.crm_payment_id is not None
    workflow_id = ach_workflow_id(collected.account_id, collected.transaction_id)
    await client.start_workflow(
        "AchSettlementWorkflow",
        AchWatch(account_id=collected.account_id, collection_key=collected.collection_key,
                 transaction_id=collected.transaction_id, crm_payment_id=collected.crm_payment_id,
                 poll_interval_seconds=settings.ach_poll_interval.total_seconds(), return_window_seconds=0),
        id=workflow_id, task_queue=settings.task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.ACCOUNT_ID, collected.account_id),
                                                 SearchAttributePair(sa.PROPOSAL_ID, collected.proposal_id)]),
        static_summary=f"ACH debit {collected.transaction_id}: a late look")
    return workflow_id


async def start_autopay_cycle(client: Client, settings: Settings, franchisee: Franchisee,
                              cycle_date: date) -> WorkflowHandle[Any, AutopayCycleResult]:
    """Run the account's autopay for a date now; a cycle of that date already run answers with its result."""
    input = AutopayCycleInput(account_id=franchisee.account_id, cycle_date=cycle_date,
                              ach_poll_interval_seconds=settings.ach_poll_interval.total_seconds())
    return await _start_once(
        client, "AutopayCycleWorkflow", input, autopay_workflow_id(franchisee.account_id, cycle_date),
        AutopayCycleResult, settings.task_queue, _payment_attributes(franchisee),
        f"Autopay of {franchisee.name} for {cycle_date}")
