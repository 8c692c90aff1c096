"""The ledger's proposal records on a real SQLite file: what a proposal's workflow saves is what its next run
starts from, payment rows keep their identity across saves, and sync cursors only move forward."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from activities.ledger import LedgerActivities
from models.ledger import LedgerInvoice, LedgerPayment, ProposalRecord
from models.proposals import PaymentState, ProposalRef, ProposalState, SaveProposalInput, Stage
from models.reconcile import CursorInput
from tests import factories

REF = ProposalRef(account_id="acme-austin", proposal_id="P-1", realm_id="r-1")


def state_with_payments() -> ProposalState:
    return ProposalState(stage=Stage.JOB_COMPLETE, contact=factories.contact(), proposal=factories.proposal(),
                         customer_id="7", estimate_id="8", invoice_id="9", payments=[
                             PaymentState(payment=factories.crm_payment("pay-1", "100.00", tip="5.00"), qbo_id="10",
                                          applied=Decimal("105.00")),
                             PaymentState(payment=factories.crm_payment("pay-2", "40.00"), qbo_id="11")])


def test_a_saved_state_is_what_the_next_run_starts_from(engine: Engine) -> None:
    ledger, env = LedgerActivities(engine), ActivityEnvironment()
    state = state_with_payments()
    env.run(ledger.save_proposal_record, SaveProposalInput(ref=REF, state=state))

    assert env.run(ledger.load_proposal_record, REF) == state
    assert env.run(ledger.load_proposal_record, REF.model_copy(update={"realm_id": "other"})) is None
    assert env.run(ledger.load_proposal_record, REF.model_copy(update={"proposal_id": "P-2"})) is None
    with Session(engine) as session:
        record = session.get(ProposalRecord, ("acme-austin", "P-1"))
        assert record is not None
        assert (record.stage, record.invoice_id, record.unapplied_total) == ("job_complete", "9", Decimal("40.00"))


def test_payment_rows_keep_their_identity_and_record_a_refund(engine: Engine) -> None:
    ledger, env = LedgerActivities(engine), ActivityEnvironment()
    state = state_with_payments()
    env.run(ledger.save_proposal_record, SaveProposalInput(ref=REF, state=state))
    with Session(engine) as session:
        first_ids = session.exec(select(LedgerPayment.id).order_by(LedgerPayment.crm_payment_id)).all()
    refunded_at = datetime(2026, 11, 21, 9, tzinfo=UTC)
    state.payments[1].voided, state.payments[1].voided_at = "refund", refunded_at
    env.run(ledger.save_proposal_record, SaveProposalInput(ref=REF, state=state))

    with Session(engine) as session:
        rows = session.exec(select(LedgerPayment).order_by(LedgerPayment.crm_payment_id)).all()
    assert [r.id for r in rows] == first_ids
    assert [(r.amount, r.tip, r.voided) for r in rows] == [(Decimal("100.00"), Decimal("5.00"), None),
                                                           (Decimal("40.00"), Decimal("0.00"), "refund")]
    assert rows[1].voided_at is not None and rows[1].voided_at.replace(tzinfo=UTC) == refunded_at


def test_the_invoice_is_kept_as_issued_and_only_its_contact_follows(engine: Engine) -> None:
    ledger, env = LedgerActivities(engine), ActivityEnvironment()
    state = state_with_payments()
    env.run(ledger.save_proposal_record, SaveProposalInput(ref=REF, state=state))
    with Session(engine) as session:
        issued = session.get(LedgerInvoice, ("acme-austin", "P-1"))
        assert issued is not None
        assert (issued.invoice_id, issued.number, issued.total) == ("9", "1001", Decimal("339.00"))
        issued_on = issued.issued_on
        issued.autopay_excluded = True  # staff excluded it from autopay
        session.add(issued)
        session.commit()
    # The proposal edited after the invoice, the contact renamed: the invoice keeps its lines, the contact follows.
    state.proposal = factories.proposal(number="1001-B")
    state.contact = factories.contact("C-2", first="Robin")
    env.run(ledger.save_proposal_record, SaveProposalInput(ref=REF, state=state))
    with Session(engine) as session:
        kept = session.get(LedgerInvoice, ("acme-austin", "P-1"))
        assert kept is not None
        assert (kept.number, kept.total, kept.issued_on, kept.contact_id, kept.autopay_excluded) == (
            "1001", Decimal("339.00"), issued_on, "C-2", True)
    # Another invoice (the first voided in QBO and the job invoiced again) is issued with the proposal as it is.
    state.invoice_id = "12"
    env.run(ledger.save_proposal_record, SaveProposalInput(ref=REF, state=state))
    with Session(engine) as session:
        again = session.get(LedgerInvoice, ("acme-austin", "P-1"))
        assert again is not None
        assert (again.invoice_id, again.number, again.contact_id, again.autopay_excluded) == ("12", "1001-B", "C-2",
                                                                                              True)


def test_the_sync_cursor_only_moves_forward(engine: Engine) -> None:
    ledger, env = LedgerActivities(engine), ActivityEnvironment()
    later = datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert env.run(ledger.load_sync_cursor, "acme-austin") is None
    env.run(ledger.save_sync_cursor, CursorInput(account_id="acme-austin", cursor=later))
    env.run(ledger.save_sync_cursor, CursorInput(account_id="acme-austin", cursor=later - timedelta(hours=1)))
    assert env.run(ledger.load_sync_cursor, "acme-austin") == later
