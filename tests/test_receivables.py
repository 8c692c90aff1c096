"""What customers owe and how collections hold money against it, on a real SQLite file per test.

Covers models/receivables.py (owed_on_proposal, open_invoices, customer_balance), the collection ledger
activities of activities/collections.py called as plain methods (reserve_collection, finish_collection,
including twelve reservations at once on one proposal), models/autopay_configs.py (replace_configs,
load_configs and who may change a locked configuration) and models/payment_settings.py (the convenience fee,
amount_within, the fee validator, charge_at). The rows are written here directly, the way the proposal
workflow's ledger activities write them; the example network (acme-austin: 3% convenience fee, America/Chicago;
acme-denver: surcharge) is installed in each test's database."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError

from activities.collections import CollectionActivities
from config.network import install_network, load_network
from config.settings import Settings
from models.autopay import AutopayConfig, Criterion
from models.autopay_configs import ConfigLocked, load_configs, replace_configs
from models.collection_ledger import CollectedPayment
from models.collections import CollectionStatus, CollectionUpdate, CollectPayment, Reservation
from models.db import create_tables, get_engine, session_scope
from models.ledger import LedgerInvoice, LedgerPayment, ProposalRecord
from models.money import CENT, cents
from models.payment_settings import PaymentSettings
from models.proposals import CrmContact, CrmPayment, PaymentState, Proposal, ProposalLine, ProposalState
from models.receivables import Owed, customer_balance, open_invoices, owed_on_proposal
from models.time_zones import local_today
from tests import factories

AUSTIN, DENVER = "acme-austin", "acme-denver"
CUSTOMER = "QC-1"
D = Decimal
T = TypeVar("T")


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Engine:
    """A fresh database holding the example network, as tests/conftest.py's `engine` makes it, without the
    sandboxes its `settings` starts (nothing here talks HTTP)."""
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    engine = get_engine(settings.database_url)
    create_tables(engine)
    install_network(engine, load_network(settings.network_file))
    return engine


# -- rows ---------------------------------------------------------------------------------------------------
def proposal(proposal_id: str, *prices: str, number: str | None = None) -> Proposal:
    """A proposal with one line per price (quantity 1)."""
    return Proposal(id=proposal_id, number=number or f"N-{proposal_id}", lines=[
        ProposalLine(description=f"Line {i}", quantity=D(1), unit_price=D(price)) for i, price in enumerate(prices)])


def save_proposal(engine: Engine, subject: Proposal | None, *, proposal_id: str | None = None,
                  account_id: str = AUSTIN, customer_id: str | None = CUSTOMER,
                  contact: CrmContact | None = None, payments: list[PaymentState] | None = None) -> ProposalRecord:
    """The ledger's record of a proposal as its workflow saves it: `state` is ProposalState JSON."""
    state = ProposalState(proposal=subject, contact=contact or factories.contact(), customer_id=customer_id,
                          payments=payments or [])
    record = ProposalRecord(account_id=account_id, proposal_id=proposal_id or (subject.id if subject else "?"),
                            realm_id="9130350000000001", contact_id=state.contact_id,
                            number=subject.number if subject else None, customer_id=customer_id,
                            unapplied_total=state.unapplied_total, state=state.model_dump_json())
    with session_scope(engine) as session:
        session.add(record)
    return record


def unapplied(payment_id: str, amount: str, applied: str | None = None) -> PaymentState:
    """A CRM payment QBO holds (partly) unapplied."""
    return PaymentState(payment=CrmPayment(id=payment_id, amount=D(amount), received_on=date(2026, 11, 20)),
                        applied=D(applied) if applied is not None else None)


def save_invoice(engine: Engine, proposal_id: str, total: str, *, account_id: str = AUSTIN,
                 customer_id: str = CUSTOMER, invoice_id: str | None = None, number: str | None = None,
                 issued_on: date = date(2026, 11, 1), due_on: date | None = None,
                 line_items: list[str] | None = None, excluded: bool = False) -> LedgerInvoice:
    invoice = LedgerInvoice(account_id=account_id, proposal_id=proposal_id, realm_id="9130350000000001",
                            invoice_id=invoice_id or f"INV-{proposal_id}", customer_id=customer_id,
                            number=number or f"N-{proposal_id}", total=D(total),
                            line_items=line_items or ["Line 0"], issued_on=issued_on,
                            due_on=due_on or date(2026, 12, 1), autopay_excluded=excluded)
    with session_scope(engine) as session:
        session.add(invoice)
    return invoice


def save_payment(engine: Engine, proposal_id: str, crm_payment_id: str, amount: str, *, tip: str = "0",
                 fee: str = "0", voided: str | None = None, account_id: str = AUSTIN) -> None:
    with session_scope(engine) as session:
        session.add(LedgerPayment(account_id=account_id, crm_payment_id=crm_payment_id, proposal_id=proposal_id,
                                  amount=D(amount), tip=D(tip), convenience_fee=D(fee),
                                  received_on=date(2026, 11, 20), method="card", voided=voided,
                                  voided_at=datetime(2026, 11, 21, tzinfo=UTC) if voided else None))


def save_collection(engine: Engine, proposal_id: str, key: str, amount: str, status: CollectionStatus, *,
                    tip: str = "0", fee: str = "0", surcharge: str = "0", crm_payment_id: str | None = None,
                    account_id: str = AUSTIN) -> None:
    with session_scope(engine) as session:
        session.add(CollectedPayment(account_id=account_id, collection_key=key, proposal_id=proposal_id,
                                     source="api", method="card", payment_method_id="pm-1", amount=D(amount),
                                     tip=D(tip), convenience_fee=D(fee), surcharge=D(surcharge),
                                     received_on=date(2026, 11, 20), status=status.value,
                                     crm_payment_id=crm_payment_id))


def owed(engine: Engine, proposal_id: str, account_id: str = AUSTIN, excluding_key: str | None = None) -> Owed:
    with Session(engine) as session:
        found = owed_on_proposal(session, account_id, proposal_id, excluding_key=excluding_key)
    assert found is not None
    return found


def collections(engine: Engine, account_id: str = AUSTIN) -> list[CollectedPayment]:
    with Session(engine) as session:
        return list(session.exec(select(CollectedPayment).where(CollectedPayment.account_id == account_id)
                                 .order_by(CollectedPayment.collection_key)))  # type: ignore[arg-type]


def collect(key: str, proposal_id: str, amount: str, *, tip: str = "0", up_to_due: bool = False,
            account_id: str = AUSTIN, payment_method_id: str = "pm-1", method: str = "card") -> CollectPayment:
    return CollectPayment(account_id=account_id, collection_key=key, proposal_id=proposal_id,
                          payment_method_id=payment_method_id, method=method,  # type: ignore[arg-type]
                          amount=D(amount), tip=D(tip), up_to_due=up_to_due)


def refusal(call: Callable[[], object]) -> ApplicationError:
    """The ApplicationError a refused activity raises; refusals are never retried."""
    with pytest.raises(ApplicationError) as caught:
        call()
    assert caught.value.non_retryable
    return caught.value


# -- owed_on_proposal ---------------------------------------------------------------------------------------
def test_before_the_invoice_the_proposal_total_is_owed(db: Engine) -> None:
    save_proposal(db, factories.proposal("P-1", "1001"))  # 289.00 + 3 x 16.665 (50.00)
    found = owed(db, "P-1")
    assert (found.total, found.paid, found.held, found.due) == (D("339.00"), D("0.00"), D("0.00"), D("339.00"))
    assert not found.invoiced
    assert (found.number, found.customer_id, found.customer_name) == ("1001", CUSTOMER, "Dana Whitfield")


def test_after_the_invoice_the_invoice_total_is_owed(db: Engine) -> None:
    save_proposal(db, factories.proposal("P-1", "1001"))
    save_invoice(db, "P-1", "350.00")  # changed after the proposal the ledger holds
    found = owed(db, "P-1")
    assert found.invoiced and found.total == D("350.00") and found.due == D("350.00")


def test_a_proposal_the_ledger_does_not_hold_owes_nothing_known(db: Engine) -> None:
    save_proposal(db, None, proposal_id="P-empty")  # a record whose state has no proposal yet
    save_proposal(db, proposal("P-1", "10.00"), account_id=DENVER)
    with Session(db) as session:
        assert owed_on_proposal(session, AUSTIN, "P-missing") is None
        assert owed_on_proposal(session, AUSTIN, "P-empty") is None
        assert owed_on_proposal(session, AUSTIN, "P-1") is None  # Denver's, not Austin's


def test_a_payment_counts_whole_and_a_voided_one_not_at_all(db: Engine) -> None:
    save_proposal(db, proposal("P-1", "319.00"))
    save_invoice(db, "P-1", "319.00")
    save_payment(db, "P-1", "crm-1", "100.00", tip="10.00", fee="3.00")
    save_payment(db, "P-1", "crm-2", "50.00", fee="1.50", voided="refund")
    save_payment(db, "P-1", "crm-3", "20.00", voided="void")
    save_payment(db, "P-1", "crm-4", "40.00", account_id=DENVER)  # another account's proposal of that id
    found = owed(db, "P-1")
    assert (found.paid, found.held, found.due) == (D("113.00"), D("0.00"), D("206.00"))


def test_what_is_due_never_goes_below_zero(db: Engine) -> None:
    save_proposal(db, proposal("P-1", "100.00"))
    save_payment(db, "P-1", "crm-1", "100.00", tip="25.00", fee="3.00")
    found = owed(db, "P-1")
    assert found.paid == D("128.00") and found.due == D("0.00")


def test_collections_under_way_are_held_and_released_ones_are_not(db: Engine) -> None:
    save_proposal(db, proposal("P-1", "500.00"))
    save_collection(db, "P-1", "k-reserved", "10.00", CollectionStatus.RESERVED, tip="1.00", fee="0.30")
    save_collection(db, "P-1", "k-charged", "20.00", CollectionStatus.CHARGED, fee="0.60", surcharge="0.55")
    save_collection(db, "P-1", "k-settled", "30.00", CollectionStatus.SETTLED)
    for status in (CollectionStatus.DECLINED, CollectionStatus.REFUSED, CollectionStatus.NOTHING_DUE,
                   CollectionStatus.RETURNED):
        save_collection(db, "P-1", f"k-{status.value}", "40.00", status)
    save_collection(db, "P-1", "k-denver", "40.00", CollectionStatus.RESERVED, account_id=DENVER)
    found = owed(db, "P-1")
    # 11.30 + 21.15 + 30.00: amount, tip, fee and surcharge all held
    assert (found.paid, found.held, found.due) == (D("0.00"), D("62.45"), D("437.55"))


def test_a_collection_the_ledger_already_holds_is_not_counted_twice(db: Engine) -> None:
    save_proposal(db, proposal("P-1", "319.00"))
    save_invoice(db, "P-1", "319.00")
    save_collection(db, "P-1", "k-1", "50.00", CollectionStatus.CHARGED, fee="1.50", crm_payment_id="crm-1")
    save_payment(db, "P-1", "crm-1", "50.00", fee="1.50")
    # charged, its CRM payment then refunded: neither paid nor held
    save_collection(db, "P-1", "k-2", "20.00", CollectionStatus.SETTLED, fee="0.60", crm_payment_id="crm-2")
    save_payment(db, "P-1", "crm-2", "20.00", fee="0.60", voided="refund")
    # charged, its CRM payment not in the ledger yet: held
    save_collection(db, "P-1", "k-3", "10.00", CollectionStatus.CHARGED, fee="0.30", crm_payment_id="crm-3")
    found = owed(db, "P-1")
    assert (found.paid, found.held, found.due) == (D("51.50"), D("10.30"), D("257.20"))


def test_excluding_key_leaves_that_collection_out(db: Engine) -> None:
    save_proposal(db, proposal("P-1", "100.00"))
    save_collection(db, "P-1", "k-1", "10.00", CollectionStatus.RESERVED, fee="0.30")
    save_collection(db, "P-1", "k-2", "20.00", CollectionStatus.RESERVED, fee="0.60")
    assert owed(db, "P-1").held == D("30.90")
    assert owed(db, "P-1", excluding_key="k-1").held == D("20.60")
    assert owed(db, "P-1", excluding_key="k-other").held == D("30.90")


# -- open_invoices and customer_balance ---------------------------------------------------------------------
def invoices_of_two_customers(engine: Engine) -> None:
    """QC-1: P-new (issued late), P-b and P-a (same day: by invoice id), P-paid (paid in full);
    QC-2: P-other."""
    for proposal_id in ("P-new", "P-b", "P-a", "P-paid", "P-other"):
        save_proposal(engine, proposal(proposal_id, "100.00"),
                      customer_id="QC-2" if proposal_id == "P-other" else CUSTOMER)
    save_invoice(engine, "P-new", "300.00", invoice_id="INV-1", issued_on=date(2026, 11, 10),
                 due_on=date(2026, 12, 10))
    save_invoice(engine, "P-b", "200.00", invoice_id="INV-3", issued_on=date(2026, 10, 1),
                 due_on=date(2026, 10, 31), line_items=["Gutter cleaning", "Downspout flush"], excluded=True)
    save_invoice(engine, "P-a", "100.00", invoice_id="INV-2", issued_on=date(2026, 10, 1),
                 due_on=date(2026, 11, 20))
    save_invoice(engine, "P-paid", "80.00", invoice_id="INV-0", issued_on=date(2026, 9, 1),
                 due_on=date(2026, 10, 1))
    save_invoice(engine, "P-other", "70.00", customer_id="QC-2", invoice_id="INV-9", issued_on=date(2026, 8, 1),
                 due_on=date(2026, 9, 1))
    save_payment(engine, "P-paid", "crm-1", "77.67", fee="2.33")  # 80.00 whole
    save_payment(engine, "P-b", "crm-2", "40.00", tip="5.00", fee="1.20")
    save_collection(engine, "P-a", "k-1", "30.00", CollectionStatus.RESERVED, fee="0.90")
    save_collection(engine, "P-new", "k-2", "300.00", CollectionStatus.DECLINED, fee="9.00")


def test_open_invoices_skip_paid_ones_and_come_oldest_first(db: Engine) -> None:
    invoices_of_two_customers(db)
    with Session(db) as session:
        found = open_invoices(session, AUSTIN)
    assert [(i.invoice_id, i.amount_due) for i in found] == [
        ("INV-9", D("70.00")), ("INV-2", D("69.10")), ("INV-3", D("153.80")), ("INV-1", D("300.00"))]
    by_id = {i.invoice_id: i for i in found}
    assert by_id["INV-3"].excluded and not by_id["INV-2"].excluded
    assert by_id["INV-3"].line_items == ["Gutter cleaning", "Downspout flush"]
    assert (by_id["INV-3"].proposal_id, by_id["INV-3"].number, by_id["INV-3"].customer_id) == (
        "P-b", "N-P-b", CUSTOMER)
    assert (by_id["INV-3"].issued_on, by_id["INV-3"].due_on) == (date(2026, 10, 1), date(2026, 10, 31))


def test_open_invoices_of_one_customer(db: Engine) -> None:
    invoices_of_two_customers(db)
    with Session(db) as session:
        assert [i.invoice_id for i in open_invoices(session, AUSTIN, CUSTOMER)] == ["INV-2", "INV-3", "INV-1"]
        assert [i.invoice_id for i in open_invoices(session, AUSTIN, "QC-2")] == ["INV-9"]
        assert open_invoices(session, AUSTIN, "QC-none") == []
        assert open_invoices(session, DENVER) == []


def test_customer_balance(db: Engine) -> None:
    invoices_of_two_customers(db)
    # QBO holds unapplied: 25.00 and 10.00 of 30.00 on QC-1's proposals, 99.00 on QC-2's
    save_proposal(db, proposal("P-credit", "60.00"), payments=[unapplied("crm-8", "25.00")])
    save_proposal(db, proposal("P-credit-2", "60.00"), payments=[unapplied("crm-9", "30.00", applied="20.00")])
    save_proposal(db, proposal("P-credit-3", "60.00"), customer_id="QC-2", payments=[unapplied("crm-7", "99.00")])
    with Session(db) as session:
        # INV-3 (due 10-31) is past due on 11-20; INV-2 falls due that very day: not past due yet
        balance = customer_balance(session, AUSTIN, CUSTOMER, today=date(2026, 11, 20))
        next_day = customer_balance(session, AUSTIN, CUSTOMER, today=date(2026, 11, 21))
    assert (balance.account_id, balance.customer_id) == (AUSTIN, CUSTOMER)
    assert (balance.total_balance, balance.total_past_due, balance.open_invoices) == (D("522.90"), D("153.80"), 3)
    assert (balance.oldest_invoice, balance.oldest_invoice_issued_on) == ("N-P-a", date(2026, 10, 1))
    assert balance.unapplied_credit == D("35.00")
    assert next_day.total_past_due == D("222.90")


def test_customer_balance_with_nothing_open(db: Engine) -> None:
    save_proposal(db, proposal("P-1", "80.00"))
    save_invoice(db, "P-1", "80.00")
    save_payment(db, "P-1", "crm-1", "80.00")
    with Session(db) as session:
        balance = customer_balance(session, AUSTIN, CUSTOMER, today=date(2027, 1, 1))
    assert (balance.total_balance, balance.total_past_due, balance.open_invoices) == (D("0.00"), D("0.00"), 0)
    assert (balance.oldest_invoice, balance.oldest_invoice_issued_on, balance.unapplied_credit) == (
        None, None, D("0.00"))


# -- reserve_collection and finish_collection ---------------------------------------------------------------
def invoiced(engine: Engine, proposal_id: str, total: str, account_id: str = AUSTIN) -> None:
    save_proposal(engine, proposal(proposal_id, total, number="1001"), account_id=account_id)
    save_invoice(engine, proposal_id, total, account_id=account_id, number="1001")


def test_more_than_is_due_is_refused_and_nothing_written(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    error = refusal(lambda: CollectionActivities(db).reserve_collection(collect("k-1", "P-1", "319.01")))
    assert error.type == "PaymentRefused" and "still due" in error.message
    assert collections(db) == []


def test_an_unknown_proposal_is_refused(db: Engine) -> None:
    error = refusal(lambda: CollectionActivities(db).reserve_collection(collect("k-1", "P-nowhere", "10.00")))
    assert error.type == "ProposalUnknown"
    assert collections(db) == []


def test_the_same_key_again_returns_the_same_reservation(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    activities = CollectionActivities(db)
    first = activities.reserve_collection(collect("k-1", "P-1", "100.00", tip="10.00"))
    again = activities.reserve_collection(collect("k-1", "P-1", "100.00", tip="10.00"))
    other_amount = activities.reserve_collection(collect("k-1", "P-1", "50.00"))
    assert first == again == other_amount
    assert (first.amount, first.tip, first.convenience_fee, first.total) == (
        D("100.00"), D("10.00"), D("3.00"), D("113.00"))
    assert len(collections(db)) == 1
    assert owed(db, "P-1").held == D("113.00")  # held once


def test_the_same_key_for_another_payment_is_refused(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    invoiced(db, "P-2", "100.00")
    activities = CollectionActivities(db)
    activities.reserve_collection(collect("k-1", "P-1", "100.00"))
    for reused in (collect("k-1", "P-2", "100.00"), collect("k-1", "P-1", "100.00", payment_method_id="pm-2"),
                   collect("k-1", "P-1", "100.00", method="bank")):
        assert refusal(lambda reused=reused: activities.reserve_collection(reused)).type == "CollectionKeyReused"
    [row] = collections(db)
    assert (row.proposal_id, row.payment_method_id, row.method, row.amount) == ("P-1", "pm-1", "card", D("100.00"))


def test_up_to_due_keeps_the_amount_and_its_fee_within_what_is_due(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    save_payment(db, "P-1", "crm-1", "100.00", fee="3.00")  # 216.00 left
    reservation = CollectionActivities(db).reserve_collection(collect("k-1", "P-1", "319.00", up_to_due=True))
    assert reservation == Reservation(amount=D("209.71"), tip=D("0.00"), convenience_fee=D("6.29"),
                                      received_on=local_today("America/Chicago"), proposal_number="1001",
                                      customer_name="Dana Whitfield", ach_return_window_days=5)
    [row] = collections(db)
    assert (row.status, row.amount, row.convenience_fee, row.surcharge) == (
        "reserved", D("209.71"), D("6.29"), D("0.00"))
    assert owed(db, "P-1").due == D("0.00")


def test_up_to_due_keeps_a_smaller_amount(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    reservation = CollectionActivities(db).reserve_collection(collect("k-1", "P-1", "100.00", up_to_due=True))
    assert (reservation.amount, reservation.convenience_fee) == (D("100.00"), D("3.00"))


def test_up_to_due_with_nothing_due_charges_nothing(db: Engine) -> None:
    invoiced(db, "P-1", "216.00")
    save_payment(db, "P-1", "crm-1", "209.71", fee="6.29")
    reservation = CollectionActivities(db).reserve_collection(
        collect("k-1", "P-1", "50.00", tip="5.00", up_to_due=True))
    assert (reservation.amount, reservation.tip, reservation.convenience_fee, reservation.total) == (
        D("0.00"), D("0.00"), D("0.00"), D("0.00"))
    [row] = collections(db)
    assert row.status == "nothing_due"


def test_the_convenience_fee_is_on_the_amount_never_the_tip(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    invoiced(db, "P-1", "319.00", account_id=DENVER)
    austin = CollectionActivities(db).reserve_collection(collect("k-1", "P-1", "10.50", tip="20.00"))
    denver = CollectionActivities(db).reserve_collection(collect("k-1", "P-1", "10.50", tip="20.00",
                                                                 account_id=DENVER))
    assert (austin.amount, austin.tip, austin.convenience_fee, austin.total) == (
        D("10.50"), D("20.00"), D("0.32"), D("30.82"))  # 3% of 10.50 is 0.315: half-up
    assert (denver.amount, denver.tip, denver.convenience_fee, denver.total) == (
        D("10.50"), D("20.00"), D("0.00"), D("30.50"))  # surcharge: the gateway adds its own
    assert denver.received_on == local_today("America/Denver")


def retried(call: Callable[[], T], attempts: int = 20) -> T:
    """Run `call` as Temporal would retry an activity: again after a database conflict."""
    for attempt in range(attempts):
        try:
            return call()
        except (OperationalError, IntegrityError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def test_reservations_at_once_never_hold_more_than_is_due(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    activities = CollectionActivities(db)
    start = threading.Barrier(12)

    def reserve(i: int) -> Reservation | str:
        start.wait()
        try:
            return retried(lambda: activities.reserve_collection(collect(f"k-{i:02d}", "P-1", "50.00")))
        except ApplicationError as error:
            return str(error.type)

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(reserve, range(12)))
    reserved = [r for r in results if isinstance(r, Reservation)]
    assert len(reserved) == 6  # 6 x 51.50 = 309.00 of 319.00; a seventh would need 51.50 of the 10.00 left
    assert sorted(r for r in results if isinstance(r, str)) == ["PaymentRefused"] * 6
    assert all((r.amount, r.convenience_fee) == (D("50.00"), D("1.50")) for r in reserved)
    rows = collections(db)
    assert len(rows) == 6 and all(row.status == "reserved" for row in rows)
    held = sum((row.amount + row.tip + row.convenience_fee + row.surcharge for row in rows), D(0))
    assert held == D("309.00") <= D("319.00")
    assert owed(db, "P-1").due == D("10.00")


def test_a_fee_never_takes_the_hold_past_what_is_due(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    activities = CollectionActivities(db)
    for i in range(6):
        activities.reserve_collection(collect(f"k-{i}", "P-1", "50.00"))  # 309.00 held, 10.00 due
    error = refusal(lambda: activities.reserve_collection(collect("k-last", "P-1", "10.00")))
    assert error.type == "PaymentRefused"
    assert sum((r.amount + r.convenience_fee for r in collections(db)), D(0)) <= D("319.00")


def test_finish_collection_records_the_outcome_and_keeps_what_it_is_not_given(db: Engine) -> None:
    invoiced(db, "P-1", "319.00")
    activities = CollectionActivities(db)
    activities.reserve_collection(collect("k-1", "P-1", "100.00"))
    activities.finish_collection(CollectionUpdate(account_id=AUSTIN, collection_key="k-1",
                                                  status=CollectionStatus.CHARGED, transaction_id="tx-1",
                                                  surcharge=D("2.50"), message="approved"))
    [row] = collections(db)
    charged_at = row.updated_at
    assert (row.status, row.transaction_id, row.crm_payment_id, row.surcharge, row.message) == (
        "charged", "tx-1", None, D("2.50"), "approved")
    assert owed(db, "P-1").held == D("105.50")  # 100.00 + 3.00 + the surcharge
    activities.finish_collection(CollectionUpdate(account_id=AUSTIN, collection_key="k-1",
                                                  status=CollectionStatus.SETTLED, crm_payment_id="crm-1"))
    [row] = collections(db)
    assert (row.status, row.transaction_id, row.crm_payment_id, row.surcharge, row.message) == (
        "settled", "tx-1", "crm-1", D("2.50"), "approved")
    assert (row.amount, row.convenience_fee) == (D("100.00"), D("3.00"))
    assert row.updated_at >= charged_at
    activities.finish_collection(CollectionUpdate(account_id=AUSTIN, collection_key="k-1",
                                                  status=CollectionStatus.RETURNED, surcharge=D("0")))
    [row] = collections(db)
    assert (row.status, row.transaction_id, row.crm_payment_id, row.surcharge) == (
        "returned", "tx-1", "crm-1", D("0.00"))
    assert owed(db, "P-1").held == D("0.00")


def test_finishing_an_unknown_collection_is_refused(db: Engine) -> None:
    error = refusal(lambda: CollectionActivities(db).finish_collection(CollectionUpdate(
        account_id=AUSTIN, collection_key="k-none", status=CollectionStatus.CHARGED)))
    assert error.type == "CollectionUnknown"


# -- autopay configurations ---------------------------------------------------------------------------------
def config(config_id: str, position: int, *, locked: bool = False, name: str | None = None,
           payment_method_id: str = "pm-1") -> AutopayConfig:
    return AutopayConfig(id=config_id, position=position, name=name or f"Rule {config_id}",
                         payment_method_id=payment_method_id, method="card", locked=locked,
                         criteria=[Criterion(field="amount", operator="le", value="500")])  # type: ignore[arg-type]


def loaded(engine: Engine, customer_id: str = CUSTOMER) -> list[AutopayConfig]:
    with Session(engine) as session:
        return load_configs(session, AUSTIN, customer_id)


def test_load_returns_the_configs_by_position(db: Engine) -> None:
    configs = [config("c", 30), config("a", 10), config("b", 20)]
    assert [c.id for c in replace_configs(db, AUSTIN, CUSTOMER, configs, "customer")] == ["a", "b", "c"]
    assert loaded(db) == [config("a", 10), config("b", 20), config("c", 30)]
    assert loaded(db, "QC-2") == []


def test_staff_may_change_anything(db: Engine) -> None:
    replace_configs(db, AUSTIN, CUSTOMER, [config("agreed", 1, locked=True), config("own", 2)], "staff")
    changed = [config("agreed", 1, locked=True, payment_method_id="pm-2"), config("new-locked", 3, locked=True)]
    replace_configs(db, AUSTIN, CUSTOMER, changed, "staff")
    assert loaded(db) == changed
    replace_configs(db, AUSTIN, CUSTOMER, [], "staff")
    assert loaded(db) == []


@pytest.mark.parametrize("wanted", [
    pytest.param([config("agreed", 1, locked=True, payment_method_id="pm-2"), config("own", 2)], id="change"),
    pytest.param([config("agreed", 1, locked=False), config("own", 2)], id="unlock"),
    pytest.param([config("agreed", 3, locked=True), config("own", 2)], id="move"),
    pytest.param([config("own", 2)], id="remove"),
    pytest.param([config("agreed", 1, locked=True), config("own", 2), config("extra", 3, locked=True)], id="add"),
    pytest.param([config("agreed", 1, locked=True), config("own", 2, locked=True)], id="lock-own"),
])
def test_a_customer_may_not_touch_a_locked_config(db: Engine, wanted: list[AutopayConfig]) -> None:
    before = [config("agreed", 1, locked=True), config("own", 2)]
    replace_configs(db, AUSTIN, CUSTOMER, before, "staff")
    with pytest.raises(ConfigLocked):
        replace_configs(db, AUSTIN, CUSTOMER, wanted, "customer")
    assert loaded(db) == before


def test_a_customer_may_change_unlocked_configs(db: Engine) -> None:
    replace_configs(db, AUSTIN, CUSTOMER, [config("agreed", 1, locked=True), config("own", 2),
                                           config("gone", 3)], "staff")
    wanted = [config("agreed", 1, locked=True), config("own", 5, name="Renamed", payment_method_id="pm-9"),
              config("added", 4)]
    replace_configs(db, AUSTIN, CUSTOMER, wanted, "customer")
    assert [(c.id, c.position, c.payment_method_id) for c in loaded(db)] == [
        ("agreed", 1, "pm-1"), ("added", 4, "pm-1"), ("own", 5, "pm-9")]


@pytest.mark.parametrize("editor", ["staff", "customer"])
@pytest.mark.parametrize("configs", [
    pytest.param([config("a", 1), config("a", 2)], id="same-id"),
    pytest.param([config("a", 1), config("b", 1)], id="same-position"),
])
def test_an_ambiguous_order_is_refused(db: Engine, editor: str, configs: list[AutopayConfig]) -> None:
    replace_configs(db, AUSTIN, CUSTOMER, [config("kept", 1)], "staff")
    with pytest.raises(ValueError, match=r"duplicate|share position"):
        replace_configs(db, AUSTIN, CUSTOMER, configs, editor)  # type: ignore[arg-type]
    assert loaded(db) == [config("kept", 1)]


# -- payment settings ---------------------------------------------------------------------------------------
CONVENIENCE = PaymentSettings(fee="convenience", convenience_fee_percent=D("3.0"))
FLAT_AND_PERCENT = PaymentSettings(fee="convenience", convenience_fee_flat=D("0.30"), convenience_fee_percent=D("2.9"))
FLAT_ONLY = PaymentSettings(fee="convenience", convenience_fee_flat=D("2.00"))


@pytest.mark.parametrize(("settings", "amount", "fee"), [
    (CONVENIENCE, "100.00", "3.00"),
    (CONVENIENCE, "10.50", "0.32"),  # 0.315, half-up
    (CONVENIENCE, "0.50", "0.02"),  # 0.015, half-up
    (CONVENIENCE, "0.16", "0.00"),  # 0.0048
    (CONVENIENCE, "0.17", "0.01"),  # 0.0051
    (CONVENIENCE, "0.00", "0.00"),
    (CONVENIENCE, "-5.00", "0.00"),
    (FLAT_AND_PERCENT, "100.00", "3.20"),
    (FLAT_AND_PERCENT, "0.01", "0.30"),
    (FLAT_AND_PERCENT, "0.00", "0.00"),  # no amount, no flat fee either
    (FLAT_ONLY, "50.00", "2.00"),
    (PaymentSettings(fee="none"), "100.00", "0.00"),
    (PaymentSettings(fee="surcharge"), "100.00", "0.00"),
])
def test_convenience_fee(settings: PaymentSettings, amount: str, fee: str) -> None:
    assert settings.convenience_fee(D(amount)) == D(fee)


@pytest.mark.parametrize(("settings", "limit", "amount"), [
    (CONVENIENCE, "216.00", "209.71"),
    (CONVENIENCE, "319.00", "309.71"),
    (CONVENIENCE, "1.03", "1.00"),
    (CONVENIENCE, "0.01", "0.01"),  # 3% of a cent rounds to nothing
    (CONVENIENCE, "0.00", "0.00"),
    (CONVENIENCE, "-1.00", "0.00"),
    (FLAT_AND_PERCENT, "100.00", "96.89"),
    (FLAT_AND_PERCENT, "0.31", "0.01"),
    (FLAT_AND_PERCENT, "0.30", "0.00"),
    (FLAT_ONLY, "1.50", "0.00"),  # the flat fee alone is more than the limit
    (FLAT_ONLY, "2.00", "0.00"),
    (FLAT_ONLY, "10.00", "8.00"),
    (PaymentSettings(fee="none"), "123.45", "123.45"),
    (PaymentSettings(fee="surcharge"), "0.01", "0.01"),
])
def test_amount_within(settings: PaymentSettings, limit: str, amount: str) -> None:
    assert settings.amount_within(D(limit)) == D(amount)


@pytest.mark.parametrize("settings", [CONVENIENCE, FLAT_AND_PERCENT, FLAT_ONLY])
def test_amount_within_is_the_largest_amount_that_fits(settings: PaymentSettings) -> None:
    for limit in [cents(D(n) / 100) for n in range(0, 1200, 7)] + [D("999.99"), D("12345.67")]:
        amount = settings.amount_within(limit)
        assert amount >= 0 and amount + settings.convenience_fee(amount) <= limit, limit
        bigger = amount + CENT  # the fee only grows with the amount, so one cent more is enough to look at
        assert bigger + settings.convenience_fee(bigger) > limit, limit


@pytest.mark.parametrize("fee", ["none", "surcharge"])
@pytest.mark.parametrize("parts", [{"convenience_fee_flat": "0.30"}, {"convenience_fee_percent": "2.9"}])
def test_fee_parts_are_refused_unless_the_fee_is_convenience(fee: str, parts: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="apply only when fee is 'convenience'"):
        PaymentSettings.model_validate({"fee": fee, **parts})
    assert PaymentSettings.model_validate({"fee": "convenience", **parts}).fee == "convenience"
    assert PaymentSettings.model_validate({"fee": fee, "convenience_fee_flat": "0"}).fee == fee


@pytest.mark.parametrize(("settings", "pay_on", "zone", "utc"), [
    (PaymentSettings(), date(2026, 7, 1), "America/Chicago", datetime(2026, 7, 1, 13, 0, tzinfo=UTC)),
    (PaymentSettings(), date(2026, 1, 15), "America/Chicago", datetime(2026, 1, 15, 14, 0, tzinfo=UTC)),
    (PaymentSettings(scheduled_payment_time=time(6, 30)), date(2026, 7, 1), "America/Denver",
     datetime(2026, 7, 1, 12, 30, tzinfo=UTC)),
    (PaymentSettings(scheduled_payment_time=time(23, 0)), date(2026, 12, 31), "America/Chicago",
     datetime(2027, 1, 1, 5, 0, tzinfo=UTC)),
])
def test_charge_at_is_local_time_in_the_zone(settings: PaymentSettings, pay_on: date, zone: str,
                                             utc: datetime) -> None:
    moment = settings.charge_at(pay_on, zone)
    assert moment == utc and moment.utcoffset() is not None
    assert (moment.date(), moment.time()) == (pay_on, settings.scheduled_payment_time)
