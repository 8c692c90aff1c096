"""Folding CRM events into what a proposal's workflow knows, alone: what each event changes, what it leaves,
and which stage moves the workflow shows on its search attribute."""

import itertools
from datetime import timedelta

import pytest

from models.proposal_knowledge import REPORTS_KEPT, absorb
from models.proposals import CrmEvent, ProposalState, Stage
from tests import factories


def test_each_stage_move_is_reported_once_and_a_repeat_is_not() -> None:
    state = ProposalState()
    assert absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0)) == Stage.PROPOSAL
    assert absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0)) is None  # the same event again
    assert absorb(state, factories.stage("evt-2", Stage.PROPOSAL, 5)) is None  # same stage, later
    assert absorb(state, factories.stage("evt-3", Stage.JOB_COMPLETE, 10)) == Stage.JOB_COMPLETE
    assert state.stage == Stage.JOB_COMPLETE and state.events_seen == ["evt-1", "evt-2", "evt-3"]


def test_an_older_step_change_arriving_late_changes_nothing() -> None:
    state = ProposalState()
    absorb(state, factories.stage("evt-2", Stage.JOB_COMPLETE, 10))
    assert absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0)) is None
    assert state.stage == Stage.JOB_COMPLETE


def test_a_stage_after_the_invoice_is_a_notice_not_a_move() -> None:
    state = ProposalState()
    absorb(state, factories.stage("evt-1", Stage.JOB_COMPLETE, 0))
    state.invoice_id = "130"  # the workflow wrote the invoice
    assert absorb(state, factories.stage("evt-2", Stage.LOST, 5)) is None
    assert state.stage == Stage.JOB_COMPLETE
    assert state.notices == ["moved to lost after invoice 130: the invoice stands; void it in QBO if the job is "
                             "cancelled"]


def test_edits_count_versions_and_a_late_one_is_ignored() -> None:
    state = ProposalState()
    absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0))
    absorb(state, factories.edited("evt-3", 20, "99.00"))
    absorb(state, factories.edited("evt-2", 10, "120.00"))  # older than the edit already taken
    assert state.proposal == factories.priced("99.00") and state.proposal_version == 2


def _complete_then_edit(order: list[int], bill_as_completed: bool = True, edit_minutes: int = 20,
                        ties_to_completion: bool = True, from_reports: bool = True) -> ProposalState:
    events = [factories.stage("evt-2", Stage.JOB_COMPLETE, 10, snapshot=factories.priced("410.00")),
              factories.edited("evt-3", edit_minutes, "999.00")]
    state = ProposalState()
    absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0, snapshot=factories.priced("410.00")))
    for i in order:
        absorb(state, events[i], bill_as_completed, ties_to_completion, from_reports)
    return state


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["completion first", "edit first"])
def test_lines_changed_after_the_job_was_complete_are_a_notice_in_either_order(order: list[int]) -> None:
    state = _complete_then_edit(order)
    assert state.proposal == factories.priced("410.00") and state.completed_at == factories.T0 + timedelta(minutes=10)
    assert state.notices == ["proposal 1001 changed after the job was complete: the invoice bills its lines as "
                             "completed"]


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["completion first", "edit first"])
def test_an_edit_of_the_same_second_as_the_completion_loses_to_the_completions_own_lines(order: list[int]) -> None:
    state = _complete_then_edit(order, edit_minutes=10)
    assert state.proposal == factories.priced("410.00") and state.lines_as_completed
    assert state.notices == ["proposal 1001 changed after the job was complete: the invoice bills its lines as "
                             "completed"]


def test_runs_recorded_before_the_tie_rule_take_an_edit_of_the_same_second_that_arrives_later() -> None:
    state = _complete_then_edit([0, 1], edit_minutes=10, ties_to_completion=False, from_reports=False)
    assert state.proposal == factories.priced("999.00") and not state.lines_as_completed


@pytest.mark.parametrize("order", [[0, 1], [1, 0]], ids=["completion first", "edit first"])
def test_a_completion_without_lines_bills_an_edit_of_its_same_second_in_either_order(order: list[int]) -> None:
    bare = factories.stage("evt-2", Stage.JOB_COMPLETE, 10)
    events = [bare.model_copy(update={"change": bare.change.model_copy(update={"proposal": None})}),
              factories.edited("evt-3", 10, "999.00")]
    state = ProposalState()
    absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0, snapshot=factories.priced("410.00")))
    for i in order:
        absorb(state, events[i])
    assert state.proposal == factories.priced("999.00") and state.notices == []


def test_runs_recorded_before_the_rule_keep_taking_the_newest_lines() -> None:
    state = _complete_then_edit([0, 1], bill_as_completed=False, from_reports=False)
    assert state.proposal == factories.priced("999.00") and state.completed_at is None and state.notices == []


def test_a_reopened_job_takes_edits_again_and_a_second_completion_bills_its_own_lines() -> None:
    state = ProposalState()
    absorb(state, factories.stage("evt-1", Stage.JOB_COMPLETE, 0, snapshot=factories.priced("410.00")))
    absorb(state, factories.stage("evt-2", Stage.PROPOSAL, 5))  # reopened before the invoice was written
    absorb(state, factories.edited("evt-3", 10, "450.00"))
    assert state.proposal == factories.priced("450.00") and state.completed_at is None
    absorb(state, factories.stage("evt-4", Stage.JOB_COMPLETE, 15, snapshot=factories.priced("450.00")))
    absorb(state, factories.edited("evt-5", 20, "999.00"))
    assert state.proposal == factories.priced("450.00")


def test_an_earlier_report_of_the_completion_moves_the_cut_back() -> None:
    state = ProposalState()
    absorb(state, factories.stage("evt-1", Stage.PROPOSAL, 0, snapshot=factories.priced("410.00")))
    absorb(state, factories.edited("evt-3", 20, "999.00"))
    absorb(state, factories.stage("evt-4", Stage.JOB_COMPLETE, 30, snapshot=factories.priced("999.00")))
    absorb(state, factories.stage("evt-2", Stage.JOB_COMPLETE, 10, snapshot=factories.priced("410.00")))
    assert state.completed_at == factories.T0 + timedelta(minutes=10)
    assert state.proposal == factories.priced("410.00")


def _reopened_job() -> list[CrmEvent]:
    """Completed at :10 with lines at 500, reopened at :11, edited to 700 and completed again at :12 with 600."""
    return [factories.stage("r2", Stage.JOB_COMPLETE, 10, snapshot=factories.priced("500.00")),
            factories.stage("r3", Stage.PROPOSAL, 11), factories.edited("r4", 12, "700.00"),
            factories.stage("r5", Stage.JOB_COMPLETE, 12, snapshot=factories.priced("600.00"))]


def _fold(events: list[CrmEvent], **rules: bool) -> ProposalState:
    state = ProposalState()
    absorb(state, factories.stage("r1", Stage.PROPOSAL, 0, snapshot=factories.priced("410.00")), **rules)
    for event in events:
        absorb(state, event, **rules)
    return state


@pytest.mark.parametrize("order", list(itertools.permutations(range(4))), ids=lambda o: "".join(map(str, o)))
def test_a_reopened_job_bills_its_second_completions_lines_in_any_order(order: tuple[int, ...]) -> None:
    events = _reopened_job()
    state = _fold([events[i] for i in order])
    assert state.stage == Stage.JOB_COMPLETE and state.completed_at == factories.T0 + timedelta(minutes=12)
    assert state.proposal == factories.priced("600.00") and state.lines_as_completed


def test_runs_recorded_before_the_reports_fold_a_reopened_job_as_they_did() -> None:
    """The step-by-step rules took the first completion's lines when its report came last; replays keep that."""
    events = _reopened_job()
    state = _fold([events[3], events[1], events[2], events[0]], from_reports=False)
    assert state.proposal == factories.priced("500.00") and state.completed_at == factories.T0 + timedelta(minutes=10)


def test_a_state_carried_from_a_run_without_reports_goes_on_from_what_it_held() -> None:
    """A run that kept no reports hands over its stage, completion and lines; the next run starts from them."""
    events = _reopened_job()
    state = _fold(events[:1], from_reports=False)  # completed at :10 with 500, no reports kept
    assert state.stage_reports == [] and state.line_reports == []
    absorb(state, factories.edited("r6", 20, "999.00"))
    assert state.proposal == factories.priced("500.00") and state.completed_at == factories.T0 + timedelta(minutes=10)
    assert [r.at for r in state.stage_reports] == [factories.T0 + timedelta(minutes=10)]


def test_many_resyncs_and_edits_after_the_completion_keep_its_time_and_its_lines() -> None:
    """More reports than are kept: the completion's time and the lines it carried are never the ones dropped."""
    state = _fold([factories.stage("c1", Stage.JOB_COMPLETE, 10, snapshot=factories.priced("500.00"))])
    for n in range(30):
        absorb(state, factories.edited(f"e{n}", 20 + n, f"{600 + n}.00"))
        absorb(state, factories.stage(f"s{n}", Stage.JOB_COMPLETE, 20 + n, snapshot=factories.priced(f"{600 + n}.00")))
    assert state.completed_at == factories.T0 + timedelta(minutes=10) and state.proposal == factories.priced("500.00")
    assert len(state.stage_reports) <= REPORTS_KEPT and len(state.line_reports) <= REPORTS_KEPT


def test_a_void_that_overtakes_its_payment_keeps_the_void() -> None:
    state = ProposalState()
    absorb(state, factories.voided("evt-2", "pay-1", "50.00", 10))
    absorb(state, factories.paid("evt-1", "pay-1", "50.00", 5))
    [held] = state.payments
    assert held.voided == "refund" and held.unapplied == 0
