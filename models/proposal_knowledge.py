"""How CRM events fold into what a proposal's workflow knows: the newest contact, lines and stage by the CRM's
own times, every payment and every void, each event once. Pure functions of the state and the event, so a
replay folds the same way; they live here, not in the workflow class, because the workflow sandbox runs the
workflow's module afresh for every workflow while `models` is loaded once and passed through."""

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


def absorb(state: ProposalState, event: CrmEvent) -> Stage | None:
    """Take in one event, once; the stage the proposal moved to, if it moved (the workflow shows it)."""
    if not _remember(state, event):
        return None
    if isinstance(event, ProposalEvent):
        change = event.change
        _take_contact(state, change.contact, change.occurred_at)
        if change.proposal is not None:
            _take_proposal(state, change.proposal, change.occurred_at)
        return _take_stage(state, event.stage, change.occurred_at)
    if isinstance(event, ProposalChanged):
        _take_contact(state, event.contact, event.occurred_at)
        _take_proposal(state, event.proposal, event.occurred_at)
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
    _take_proposal(state, event.proposal, event.occurred_at)
    moved = _take_stage(state, event.stage, event.stage_at or event.occurred_at) if event.stage is not None else None
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


def _take_proposal(state: ProposalState, proposal: Proposal, at: datetime) -> None:
    if state.proposal_at is not None and at < state.proposal_at:
        return  # an older edit arriving late
    if proposal != state.proposal:
        if state.invoice_id is not None:
            notice(state, f"proposal {proposal.number} changed after invoice {state.invoice_id}: the invoice "
                          f"keeps its lines")
        state.proposal, state.proposal_version = proposal, state.proposal_version + 1
    state.proposal_at = at


def _take_stage(state: ProposalState, stage: Stage, at: datetime) -> Stage | None:
    if state.stage_at is not None and at < state.stage_at:
        return None  # an older step change arriving late
    if state.invoice_id is not None and stage != Stage.JOB_COMPLETE:
        notice(state, f"moved to {stage.value} after invoice {state.invoice_id}: the invoice stands; void it in "
                      f"QBO if the job is cancelled")
        return None
    moved = stage if stage != state.stage else None
    state.stage, state.stage_at = stage, at
    return moved


def _take_payment(state: ProposalState, news: PaymentState) -> None:
    held = state.payment(news.payment.id)
    if held is None:
        state.payments.append(news)
    elif news.voided and not held.voided:
        held.voided, held.voided_at = news.voided, news.voided_at
