"""How CRM events fold into what a proposal's workflow knows: the newest contact, lines and stage by the CRM's
own times (the lines as they stood when the job was complete, once it is), every payment and every void, each
event once. Pure functions of the state and the event, so a replay folds the same way; they live here, not in
the workflow class, because the workflow sandbox runs the workflow's module afresh for every workflow while
`models` is loaded once and passed through."""

from datetime import datetime

from models.proposals import (
    CrmContact,
    CrmEvent,
    PaymentAdded,
    PaymentState,
    PaymentVoided,
    Proposal,
    ProposalChanged,
    ProposalEvent,
    ProposalState,
    Stage,
)

# Event ids remembered to drop duplicates; older ones are covered by the activities' own idempotency.
EVENTS_REMEMBERED = 500
NOTICES_KEPT = 50


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
           ties_to_completion: bool = True) -> Stage | None:
    """Take in one event, once; the stage the proposal moved to, if it moved (the workflow shows it).

    With `bill_as_completed`, lines the CRM changed after the job was complete are a notice, not a change, so
    the invoice bills what was completed whether the edit reaches us before or after the invoice is written.
    With `ties_to_completion`, the lines the job-complete event carries are what was completed even against an
    edit of the same CRM time (its times are whole seconds), again in either order. Runs recorded before a
    rule pass False for it and fold as they did."""
    if not _remember(state, event):
        return None
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
    for payment in event.payments:
        voided = payment.id in event.voided_payment_ids
        _take_payment(state, PaymentState(payment=payment, voided="void" if voided else None,
                                          voided_at=event.occurred_at if voided else None))
    return moved


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
            notice(state, f"proposal {proposal.number} changed after invoice {state.invoice_id}: the invoice "
                          f"keeps its lines")
        state.proposal, state.proposal_version = proposal, state.proposal_version + 1
    state.proposal_at, state.lines_as_completed = at, as_completed


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
        notice(state, f"moved to {stage.value} after invoice {state.invoice_id}: the invoice stands; void it in "
                      f"QBO if the job is cancelled")
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
