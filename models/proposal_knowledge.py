"""How CRM events fold into what a proposal's workflow knows: the newest contact, lines and stage by the CRM's
own times (the lines as they stood when the job was complete, once it is), every payment and every void, each
event once. Pure functions of the state and the event, so a replay folds the same way; they live here, not in
the workflow class, because the workflow sandbox runs the workflow's module afresh for every workflow while
`models` is loaded once and passed through."""

from bisect import insort
from datetime import datetime

from models.proposals import (
    CrmContact,
    CrmEvent,
    LineReport,
    PaymentAdded,
    PaymentState,
    PaymentVoided,
    Proposal,
    ProposalChanged,
    ProposalEvent,
    ProposalState,
    ProposalSynced,
    Stage,
    StageReport,
)

# Event ids remembered to drop duplicates; older ones are covered by the activities' own idempotency.
EVENTS_REMEMBERED = 500
NOTICES_KEPT = 50
# Step changes and line reports kept (the newest by CRM time) to work the stage and the lines out from.
REPORTS_KEPT = 10


def event_id(event: CrmEvent) -> str:
    return event.change.event_id if isinstance(event, ProposalEvent) else event.event_id


def _remember(state: ProposalState, event: CrmEvent) -> bool:
    """Note the event as seen; False when it was seen already (a duplicate)."""
    seen = event_id(event)
    if seen in state.events_seen:
        return False
    state.events_seen = [*state.events_seen, seen][-EVENTS_REMEMBERED:]
    return True


def absorb(state: ProposalState, event: CrmEvent, bill_as_completed: bool = True,
           ties_to_completion: bool = True, from_reports: bool = True) -> Stage | None:
    """Take in one event, once; the stage the proposal moved to, if it moved (the workflow shows it).

    With `bill_as_completed`, lines the CRM changed after the job was complete are a notice, not a change, so
    the invoice bills what was completed whether the edit reaches us before or after the invoice is written.
    With `ties_to_completion`, the lines the job-complete event carries are what was completed even against an
    edit of the same CRM time (its times are whole seconds), again in either order. With `from_reports` (both
    rules at once), the stage, the completion and the lines are worked out afresh from every step change and
    line report kept, so a reopened job's reports in any order give the same books too. Runs recorded before a
    rule pass False for it and fold as they did."""
    if not _remember(state, event):
        return None
    if from_reports and not isinstance(event, PaymentAdded | PaymentVoided):
        return _absorb_reported(state, event)
    if isinstance(event, ProposalEvent):
        change = event.change
        _take_contact(state, change.contact, change.occurred_at)
        moved = _take_stage(state, event.stage, change.occurred_at, bill_as_completed)
        if change.proposal is not None:
            as_completed = (ties_to_completion and event.stage == Stage.JOB_COMPLETE
                            and state.completed_at == change.occurred_at)
            _take_proposal(state, change.proposal, change.occurred_at, bill_as_completed, as_completed)
        return moved
    if isinstance(event, ProposalChanged):
        _take_contact(state, event.contact, event.occurred_at)
        _take_proposal(state, event.proposal, event.occurred_at, bill_as_completed)
        return None
    if isinstance(event, PaymentAdded):
        _take_contact(state, event.contact, event.occurred_at)
        _take_payment(state, PaymentState(payment=event.payment))
        return None
    if isinstance(event, PaymentVoided):
        _take_contact(state, event.contact, event.occurred_at)
        _take_payment(state, PaymentState(payment=event.payment, voided=event.kind, voided_at=event.occurred_at))
        return None
    _take_contact(state, event.contact, event.occurred_at)
    moved = None
    if event.stage is not None:
        moved = _take_stage(state, event.stage, event.stage_at or event.occurred_at, bill_as_completed)
    _take_proposal(state, event.proposal, event.occurred_at, bill_as_completed)
    _take_synced_payments(state, event)
    return moved


def _absorb_reported(state: ProposalState, event: ProposalEvent | ProposalChanged | ProposalSynced) -> Stage | None:
    """Record what the event reports, then work the stage, the completion and the lines out from all of it."""
    before = state.stage
    _seed_reports(state)
    if isinstance(event, ProposalEvent):
        change = event.change
        _take_contact(state, change.contact, change.occurred_at)
        _report_stage(state, event.stage, change.occurred_at)
        report = None if change.proposal is None else LineReport(
            at=change.occurred_at, proposal=change.proposal, completing=event.stage == Stage.JOB_COMPLETE)
    elif isinstance(event, ProposalChanged):
        _take_contact(state, event.contact, event.occurred_at)
        report = LineReport(at=event.occurred_at, proposal=event.proposal)
    else:
        _take_contact(state, event.contact, event.occurred_at)
        if event.stage is not None:
            _report_stage(state, event.stage, event.stage_at or event.occurred_at)
        report = LineReport(at=event.occurred_at, proposal=event.proposal)
        _take_synced_payments(state, event)
    if report is not None:
        insort(state.line_reports, report, key=lambda r: r.at)  # after reports of the same time: arrival order
    _settle(state)
    return state.stage if state.stage != before else None


def _seed_reports(state: ProposalState) -> None:
    """A state carried from a run that kept no reports: what it held, as reports."""
    if not state.stage_reports and state.stage is not None and state.stage_at is not None:
        if state.completed_at is not None and state.completed_at < state.stage_at:
            state.stage_reports.append(StageReport(at=state.completed_at, stage=Stage.JOB_COMPLETE))
        state.stage_reports.append(StageReport(at=state.stage_at, stage=state.stage))
    if not state.line_reports and state.proposal is not None and state.proposal_at is not None:
        state.line_reports.append(LineReport(at=state.proposal_at, proposal=state.proposal,
                                             completing=state.lines_as_completed))


def _report_stage(state: ProposalState, stage: Stage, at: datetime) -> None:
    if state.invoice_id is not None and stage != Stage.JOB_COMPLETE:
        if state.stage_at is None or at >= state.stage_at:
            _notice_moved_after_invoice(state, stage)
        return
    reports = state.stage_reports
    insort(reports, StageReport(at=at, stage=stage), key=lambda r: r.at)
    # Within a run of one stage only its first report (when the job became complete) and its last (the stage's
    # time) count: a resync repeating the stage every few hours does not push the completion out.
    state.stage_reports = [r for i, r in enumerate(reports)
                           if i in (0, len(reports) - 1) or not reports[i - 1].stage == r.stage == reports[i + 1].stage
                           ][-REPORTS_KEPT:]


def _settle(state: ProposalState) -> None:
    """The stage is the newest step change; the job became complete at the first of the job-complete reports
    since the last other step; the lines are the newest reported by then, the completion's own winning a tie
    (or, with none by then, the first after it)."""
    if state.stage_reports:
        newest = state.stage_reports[-1]
        state.stage, state.stage_at = newest.stage, newest.at
        state.completed_at = None
        for report in reversed(state.stage_reports):
            if report.stage != Stage.JOB_COMPLETE:
                break
            state.completed_at = report.at
    held = _lines_to_bill(state.line_reports, state.completed_at)
    if held is None:
        return
    excess = len(state.line_reports) - REPORTS_KEPT
    if excess > 0:  # the oldest go, but never the lines held
        dropped = [r for r in state.line_reports if r is not held][:excess]
        state.line_reports = [r for r in state.line_reports if not any(r is d for d in dropped)]
    if held.proposal != state.proposal:
        if state.invoice_id is not None and state.proposal is not None:
            _notice_changed_after_invoice(state, held.proposal)
        state.proposal, state.proposal_version = held.proposal, state.proposal_version + 1
    state.proposal_at = held.at
    state.lines_as_completed = held.completing and held.at == state.completed_at
    completed_at = state.completed_at
    for report in state.line_reports if completed_at is not None else []:
        if report is not held and report.at >= completed_at and report.proposal != held.proposal:
            _notice_changed_after_completion(state, report.proposal)


def _lines_to_bill(reports: list[LineReport], completed_at: datetime | None) -> LineReport | None:
    if not reports:
        return None
    if completed_at is None:
        return reports[-1]
    by_then = [r for r in reports if r.at <= completed_at]
    if not by_then:
        return reports[0]
    last = [r for r in by_then if r.at == by_then[-1].at]
    return next((r for r in reversed(last) if r.completing and r.at == completed_at), last[-1])


def _take_synced_payments(state: ProposalState, event: ProposalSynced) -> None:
    for payment in event.payments:
        voided = payment.id in event.voided_payment_ids
        _take_payment(state, PaymentState(payment=payment, voided="void" if voided else None,
                                          voided_at=event.occurred_at if voided else None))


def notice(state: ProposalState, text: str) -> None:
    """Something an operator should know (an ignored or late change), kept once among the latest."""
    if text not in state.notices:
        state.notices = [*state.notices, text][-NOTICES_KEPT:]


def _take_contact(state: ProposalState, contact: CrmContact, at: datetime) -> None:
    if state.contact_at is None or at >= state.contact_at:
        state.contact, state.contact_at = contact, at


def _take_proposal(state: ProposalState, proposal: Proposal, at: datetime, bill_as_completed: bool,
                   as_completed: bool = False) -> None:
    """`as_completed`: these are the lines the job-complete event itself carried, the ones the invoice bills."""
    completed_at = state.completed_at if bill_as_completed else None
    if completed_at is not None and state.proposal is not None and not as_completed and (
            at > completed_at or (at == completed_at and state.lines_as_completed)):
        if proposal != state.proposal:
            _notice_changed_after_completion(state, proposal)
        return
    held_at = state.proposal_at
    # Lines taken before the completion was known may postdate it (or share its time); then the completion's
    # own lines, or any of its time or earlier, are nearer to what was completed.
    held_after_completion = completed_at is not None and held_at is not None and (
        held_at > completed_at or (as_completed and held_at == completed_at))
    if held_at is not None and at < held_at and not held_after_completion:
        return  # an older edit arriving late
    if proposal != state.proposal:
        if held_after_completion:
            _notice_changed_after_completion(state, proposal)
        elif state.invoice_id is not None:
            _notice_changed_after_invoice(state, proposal)
        state.proposal, state.proposal_version = proposal, state.proposal_version + 1
    state.proposal_at, state.lines_as_completed = at, as_completed


def _notice_moved_after_invoice(state: ProposalState, stage: Stage) -> None:
    notice(state, f"moved to {stage.value} after invoice {state.invoice_id}: the invoice stands; void it in QBO if "
                  f"the job is cancelled")


def _notice_changed_after_invoice(state: ProposalState, proposal: Proposal) -> None:
    notice(state, f"proposal {proposal.number} changed after invoice {state.invoice_id}: the invoice keeps its "
                  f"lines")


def _notice_changed_after_completion(state: ProposalState, proposal: Proposal) -> None:
    notice(state, f"proposal {proposal.number} changed after the job was complete: the invoice bills its lines "
                  f"as completed")


def _take_stage(state: ProposalState, stage: Stage, at: datetime, bill_as_completed: bool) -> Stage | None:
    if (bill_as_completed and stage == state.stage == Stage.JOB_COMPLETE and state.completed_at is not None
            and at < state.completed_at):
        # an earlier report of the completion arriving late
        state.completed_at, state.lines_as_completed = at, False
    if state.stage_at is not None and at < state.stage_at:
        return None  # an older step change arriving late
    if state.invoice_id is not None and stage != Stage.JOB_COMPLETE:
        _notice_moved_after_invoice(state, stage)
        return None
    moved = stage if stage != state.stage else None
    if bill_as_completed and moved is not None:
        state.completed_at = at if stage == Stage.JOB_COMPLETE else None
        state.lines_as_completed = False
    state.stage, state.stage_at = stage, at
    return moved


def _take_payment(state: ProposalState, news: PaymentState) -> None:
    held = state.payment(news.payment.id)
    if held is None:
        state.payments.append(news)
    elif news.voided and not held.voided:
        held.voided, held.voided_at = news.voided, news.voided_at
