"""The royalty run on the time-skipping test server, with the real ledger activities on a SQLite file and QBO's
check writer stubbed: the waiting period, each franchisee's terms, rounding, re-runs and overlapping runs, a
missed night, refunds after charging, and one franchisee failing while the others are charged."""

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.royalty_ledger import RoyaltyLedgerActivities
from config.settings import Settings, get_settings
from models.ledger import LedgerPayment
from models.royalty import (
    FranchiseeOutcome,
    NightlyRoyaltyInput,
    RoyaltyRunInput,
    RoyaltyRunResult,
    RoyaltyTimeouts,
    royalty_run_id,
)
from models.royalty_ledger import RoyaltyCharge, RoyaltyItem, RoyaltyRun
from tests.conftest import install_franchisor, register_search_attributes
from tests.stubs import StubChecks, StubGateway
from workflows.franchisee_royalty import FranchiseeRoyaltyWorkflow
from workflows.nightly_royalty import NightlyRoyaltyWorkflow
from workflows.royalty_run import RoyaltyRunWorkflow

D = Decimal
NIGHT = date(2026, 11, 21)  # the business date; with the 3-day wait, payments received through 18 November
AUSTIN, DENVER = "acme-austin", "acme-denver"  # Austin: 6% + 2%, fees bear royalty; Denver: 5.5% + 1.5%, tips do


def pay(engine: Engine, account_id: str, payment_id: str, amount: str, received_on: date, tip: str = "0",
        fee: str = "0") -> None:
    """A payment as the proposal workflow records it in the ledger."""
    with Session(engine) as session:
        session.add(LedgerPayment(account_id=account_id, crm_payment_id=payment_id, proposal_id=f"P-{payment_id}",
                                  amount=D(amount), tip=D(tip), convenience_fee=D(fee), received_on=received_on,
                                  method="card"))
        session.commit()


def refund(engine: Engine, account_id: str, payment_id: str) -> None:
    with Session(engine) as session:
        payment = session.exec(select(LedgerPayment).where(LedgerPayment.account_id == account_id,
                                                           LedgerPayment.crm_payment_id == payment_id)).one()
        payment.voided = "refund"
        session.add(payment)
        session.commit()


class Network:
    """A worker for the royalty workflows over one test's ledger, and the stubbed QBO checks."""

    def __init__(self, env: WorkflowEnvironment, engine: Engine, franchisor_id: str) -> None:
        self.env, self.engine, self.franchisor_id = env, engine, franchisor_id
        self.checks = StubChecks()
        self.gateway = StubGateway()
        self.executor = ThreadPoolExecutor(max_workers=20)
        self.task_queue = f"tq-{uuid.uuid4()}"
        self.timeouts = RoyaltyTimeouts(qbo_call=timedelta(seconds=30), check_patience=timedelta(minutes=30))

    def worker(self, *more_workflows: type) -> Worker:
        return Worker(self.env.client, task_queue=self.task_queue, activity_executor=self.executor,
                      workflows=[RoyaltyRunWorkflow, FranchiseeRoyaltyWorkflow, *more_workflows],
                      activities=[*RoyaltyLedgerActivities(self.engine).activities(), *self.checks.activities(),
                                  *self.gateway.activities()])

    async def start(self, business: date) -> WorkflowHandle[RoyaltyRunWorkflow, RoyaltyRunResult]:
        return await self.env.client.start_workflow(
            RoyaltyRunWorkflow.run, RoyaltyRunInput(franchisor_id=self.franchisor_id, business_date=business,
                                                    timeouts=self.timeouts),
            id=royalty_run_id(self.franchisor_id, business), task_queue=self.task_queue)

    async def run(self, business: date) -> dict[str, FranchiseeOutcome]:
        """Run the date; each franchisee's outcome by account."""
        async with self.worker():
            result = await (await self.start(business)).result()
        return {o.account_id: o for o in result.outcomes}

    def charges(self, account_id: str) -> list[RoyaltyCharge]:
        with Session(self.engine) as session:
            return list(session.exec(select(RoyaltyCharge).where(RoyaltyCharge.account_id == account_id)
                                     .order_by(col(RoyaltyCharge.id))))

    def items(self, account_id: str, kind: str = "charge") -> list[str]:
        with Session(self.engine) as session:
            return sorted(session.exec(select(RoyaltyItem.crm_payment_id).where(
                RoyaltyItem.account_id == account_id, RoyaltyItem.kind == kind)))


@pytest.fixture
def network(time_skipping_env: WorkflowEnvironment, engine: Engine, franchisor_id: str) -> Network:
    return Network(time_skipping_env, engine, franchisor_id)


async def test_payments_past_the_waiting_period_are_charged_once_on_each_franchisees_terms(network: Network) -> None:
    engine = network.engine
    pay(engine, AUSTIN, "a1", "100.00", date(2026, 11, 18), tip="10.00", fee="3.00")  # the last day eligible
    pay(engine, AUSTIN, "a2", "50.00", date(2026, 11, 19))  # a day inside the waiting period
    pay(engine, AUSTIN, "a3", "75.00", date(2026, 11, 10))
    refund(engine, AUSTIN, "a3")  # refunded before any run: never charged
    pay(engine, DENVER, "d1", "200.00", date(2026, 11, 18), tip="20.00", fee="5.00")
    pay(engine, DENVER, "d2", "80.00", date(2026, 11, 2))

    outcomes = await network.run(NIGHT)

    assert {a: o.status for a, o in outcomes.items()} == {AUSTIN: "check_written", DENVER: "check_written"}
    # Austin: 100.00 + the 3.00 fee (tips excluded) = 103.00: 6.18 royalty, 2.06 marketing.
    austin_check = network.checks.checks[(AUSTIN, royalty_run_id(network.franchisor_id, NIGHT))]
    assert [(line.expense_account, line.amount) for line in austin_check.lines] == [
        ("Royalty Expense", D("6.18")), ("Advertising & Marketing", D("2.06"))]
    assert austin_check.doc_number == "LF-ROY-20261121" and austin_check.vendor_id == "Vendor-Acme Franchising LLC"
    assert austin_check.bank_account == "Checking" and network.franchisor_id in austin_check.memo
    # Denver: 200.00 + the 20.00 tip (fees excluded) + 80.00 = 300.00: 16.50 royalty, 4.50 marketing.
    assert network.checks.amounts(DENVER) == [D("21.00")]
    assert network.items(AUSTIN) == ["a1"] and network.items(DENVER) == ["d1", "d2"]

    again = await network.run(NIGHT)  # the same date once more: the same charges, nothing taken twice
    assert again[AUSTIN].charge == outcomes[AUSTIN].charge
    assert len(network.charges(AUSTIN)) == 1 and len(network.checks.checks) == 2

    outcomes = await network.run(NIGHT + timedelta(days=1))  # a2's waiting period is over
    assert outcomes[AUSTIN].charge.payments == 1 and network.items(AUSTIN) == ["a1", "a2"]
    assert network.checks.amounts(AUSTIN) == [D("8.24"), D("4.00")]  # 50.00 x 8%
    assert outcomes[DENVER].status == "nothing_eligible"
    assert network.checks.amounts(DENVER) == [D("21.00")]  # no check when nothing is eligible
    with Session(network.engine) as session:
        run = session.get(RoyaltyRun, royalty_run_id(network.franchisor_id, NIGHT + timedelta(days=1)))
    assert run is not None and (run.franchisees, run.charged, run.failed) == (2, 1, 0)
    assert (run.royalty_total, run.marketing_total) == (D("3.00"), D("1.00"))


async def test_each_fee_is_rounded_once_per_run(network: Network) -> None:
    for n in range(3):  # 0.603 each at 6%: rounding per payment would give 1.80
        pay(network.engine, AUSTIN, f"r{n}", "10.05", date(2026, 11, 15))
    outcomes = await network.run(NIGHT)
    charge = outcomes[AUSTIN].charge
    assert (charge.basis, charge.royalty_due, charge.marketing_due) == (D("30.15"), D("1.81"), D("0.60"))


async def test_a_missed_night_is_caught_up_by_the_next_run(network: Network) -> None:
    for day in (15, 16, 17, 18):
        pay(network.engine, AUSTIN, f"m{day}", "100.00", date(2026, 11, day))
    await network.run(NIGHT - timedelta(days=2))  # through the 16th; the next night (through the 17th) is missed
    outcomes = await network.run(NIGHT)
    assert outcomes[AUSTIN].charge.payments == 2
    assert network.items(AUSTIN) == ["m15", "m16", "m17", "m18"]
    assert network.checks.amounts(AUSTIN) == [D("16.00"), D("16.00")]


async def test_overlapping_runs_never_charge_a_payment_twice(network: Network) -> None:
    for n in range(30):
        pay(network.engine, AUSTIN, f"o{n:02}", "100.00", date(2026, 11, 1) + timedelta(days=n % 17))
        pay(network.engine, DENVER, f"o{n:02}", "100.00", date(2026, 11, 1) + timedelta(days=n % 17))
    async with network.worker():
        handles = [await network.start(NIGHT + timedelta(days=shift)) for shift in (0, 1, 2, -1)]
        for handle in handles:  # the runs go on together; results awaited one at a time (see conftest)
            await handle.result()
    for account in (AUSTIN, DENVER):
        charges = network.charges(account)
        assert sum(c.payments for c in charges) == 30  # each payment in exactly one charge
        assert network.items(account) == sorted(f"o{n:02}" for n in range(30))
        assert sum(c.basis for c in charges) == D("3000.00")


async def test_a_refund_after_charging_is_credited_and_a_net_credit_carried(network: Network) -> None:
    pay(network.engine, AUSTIN, "big", "1000.00", date(2026, 11, 10))
    await network.run(NIGHT)
    assert network.checks.amounts(AUSTIN) == [D("80.00")]

    refund(network.engine, AUSTIN, "big")
    pay(network.engine, AUSTIN, "small", "100.00", date(2026, 11, 18))
    outcomes = await network.run(NIGHT + timedelta(days=1))
    charge = outcomes[AUSTIN].charge
    assert outcomes[AUSTIN].status == "nothing_due" and charge.credits == 1
    assert (charge.royalty, charge.royalty_credit_out, charge.marketing_credit_out) == (D("-54.00"), D("54.00"),
                                                                                         D("18.00"))
    assert network.checks.amounts(AUSTIN) == [D("80.00")]  # no negative check
    assert network.items(AUSTIN, "credit") == ["big"]

    pay(network.engine, AUSTIN, "later", "1000.00", date(2026, 11, 19))
    outcomes = await network.run(NIGHT + timedelta(days=2))
    charge = outcomes[AUSTIN].charge
    assert (charge.royalty_due, charge.marketing_due) == (D("6.00"), D("2.00"))  # 60 - 54 and 20 - 18
    await network.run(NIGHT + timedelta(days=3))
    assert network.items(AUSTIN, "credit") == ["big"]  # credited once, not on every run after


async def test_one_franchisee_failing_never_blocks_the_others_and_its_check_is_written_later(
        network: Network) -> None:
    pay(network.engine, AUSTIN, "a1", "100.00", date(2026, 11, 12))
    pay(network.engine, DENVER, "d1", "100.00", date(2026, 11, 12))
    network.checks.refusing.add(DENVER)  # say, the bank account was renamed in Denver's QBO file
    outcomes = await network.run(NIGHT)

    assert outcomes[AUSTIN].status == "check_written"
    assert outcomes[DENVER].status == "failed" and "Invalid Reference Id" in outcomes[DENVER].error
    [denver] = network.charges(DENVER)
    assert denver.status == "check_due" and "Invalid Reference Id" in (denver.check_error or "")
    with Session(network.engine) as session:
        run = session.get(RoyaltyRun, royalty_run_id(network.franchisor_id, NIGHT))
    assert run is not None and (run.charged, run.failed) == (1, 1)

    network.checks.refusing.clear()  # fixed; the next night writes the overdue check and its own
    pay(network.engine, DENVER, "d2", "200.00", date(2026, 11, 19))
    outcomes = await network.run(NIGHT + timedelta(days=1))
    assert outcomes[DENVER].status == "check_written" and len(outcomes[DENVER].checks_written) == 2
    assert network.checks.amounts(DENVER) == [D("7.00"), D("14.00")]  # d1 once, d2 once
    assert [c.status for c in network.charges(DENVER)] == ["check_written", "check_written"]


async def test_a_qbo_outage_longer_than_the_patience_is_reported_and_the_check_written_later(
        network: Network) -> None:
    pay(network.engine, AUSTIN, "a1", "100.00", date(2026, 11, 12))
    network.checks.unreachable.add(AUSTIN)
    outcomes = await network.run(NIGHT)  # retried for the 30 minutes of patience, in skipped time
    assert outcomes[AUSTIN].status == "failed" and "unreachable" in outcomes[AUSTIN].error
    network.checks.unreachable.clear()
    outcomes = await network.run(NIGHT + timedelta(days=1))
    assert outcomes[AUSTIN].status == "nothing_eligible" and len(outcomes[AUSTIN].checks_written) == 1
    assert network.checks.amounts(AUSTIN) == [D("8.00")]


@pytest.fixture
def ach_network(time_skipping_env: WorkflowEnvironment, engine: Engine, settings: Settings) -> Network:
    """The example network collecting each check by ACH debit of the franchisee's bank payment method."""
    franchisor = install_franchisor(settings, engine, payment_methods={AUSTIN: "pm-austin", DENVER: "pm-denver"},
                                    ach_debit=True)
    return Network(time_skipping_env, engine, franchisor)


async def test_ach_debits_each_written_check_once_for_its_exact_amount(ach_network: Network) -> None:
    network = ach_network
    pay(network.engine, AUSTIN, "a1", "100.00", date(2026, 11, 18), fee="3.00")  # 103.00 x 8% = 8.24
    pay(network.engine, DENVER, "d1", "300.00", date(2026, 11, 12))  # 300.00 x 7% = 21.00
    outcomes = await network.run(NIGHT)
    await network.run(NIGHT)  # the same night again: no second debit

    assert network.gateway.debited("pm-austin") == [D("8.24")] and network.gateway.debited("pm-denver") == [D("21.00")]
    assert network.checks.amounts(AUSTIN) == [D("8.24")]
    [austin] = network.charges(AUSTIN)
    assert (austin.status, austin.debit_status) == ("check_written", "debited")
    assert austin.debit_id == outcomes[AUSTIN].charge.debit_id == outcomes[AUSTIN].debits[0]
    assert network.franchisor_id in next(iter(network.gateway.charges.values())).account_id  # the franchisor is paid

    outcomes = await network.run(NIGHT + timedelta(days=1))  # nothing new: no check, no debit
    assert outcomes[AUSTIN].status == "nothing_eligible" and outcomes[AUSTIN].debits == []
    assert len(network.gateway.charges) == 2


async def test_a_declined_debit_is_reported_and_never_sent_again_while_the_check_stands(ach_network: Network) -> None:
    network = ach_network
    pay(network.engine, AUSTIN, "a1", "100.00", date(2026, 11, 12))
    pay(network.engine, DENVER, "d1", "100.00", date(2026, 11, 12))
    network.gateway.declining.add("pm-denver")
    outcomes = await network.run(NIGHT)

    assert outcomes[AUSTIN].status == "check_written" and network.gateway.debited("pm-austin") == [D("8.00")]
    assert outcomes[DENVER].status == "failed" and "declined" in (outcomes[DENVER].error or "")
    [denver] = network.charges(DENVER)
    assert (denver.status, denver.debit_status) == ("check_written", "declined")  # the books keep the check
    assert "insufficient funds" in (denver.debit_error or "")
    network.gateway.declining.clear()
    await network.run(NIGHT + timedelta(days=1))
    assert network.gateway.debited("pm-denver") == []  # a decline is the franchisor's to follow up


async def test_a_gateway_outage_leaves_the_debit_due_and_the_next_run_makes_it(ach_network: Network) -> None:
    network = ach_network
    pay(network.engine, AUSTIN, "a1", "100.00", date(2026, 11, 12))
    network.gateway.unreachable = True
    outcomes = await network.run(NIGHT)  # retried for the 30 minutes of patience, in skipped time
    assert outcomes[AUSTIN].status == "failed" and "unreachable" in (outcomes[AUSTIN].error or "")
    assert network.checks.amounts(AUSTIN) == [D("8.00")]  # the check is written; only the debit waits
    assert network.charges(AUSTIN)[0].debit_status == "due"

    network.gateway.unreachable = False
    outcomes = await network.run(NIGHT + timedelta(days=1))
    assert outcomes[AUSTIN].status == "nothing_eligible" and len(outcomes[AUSTIN].debits) == 1
    assert network.gateway.debited("pm-austin") == [D("8.00")] and network.checks.amounts(AUSTIN) == [D("8.00")]
    assert network.charges(AUSTIN)[0].debit_status == "debited"


@pytest.fixture
async def own_clock_env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of its own: this test moves the clock months ahead, which the shared one must not see."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(get_settings().temporal_test_server), data_converter=pydantic_data_converter)
    await register_search_attributes(env.client)
    yield env
    await env.shutdown()


@pytest.mark.parametrize("night", [date(2027, 3, 14), date(2027, 11, 7)])  # spring forward, fall back
async def test_the_nightly_run_on_a_dst_night_covers_the_day_before_for_every_time_zone(
        own_clock_env: WorkflowEnvironment, engine: Engine, franchisor_id: str, night: date) -> None:
    """The nightly workflow at 04:00 Chicago time on the DST change day charges, for Austin (Chicago) and
    Denver (Mountain) alike, the payments received by their local date three days before the day before."""
    network = Network(own_clock_env, engine, franchisor_id)
    business = night - timedelta(days=1)
    for account in (AUSTIN, DENVER):
        pay(engine, account, "last-day", "100.00", business - timedelta(days=3))
        pay(engine, account, "too-soon", "100.00", business - timedelta(days=2))
    run_at = datetime.combine(night, time(4, 0), tzinfo=ZoneInfo("America/Chicago"))
    await own_clock_env.sleep(run_at - await own_clock_env.get_current_time())

    async with network.worker(NightlyRoyaltyWorkflow):
        result = await own_clock_env.client.execute_workflow(
            NightlyRoyaltyWorkflow.run, NightlyRoyaltyInput(franchisor_id=franchisor_id, time_zone="America/Chicago",
                                                            timeouts=network.timeouts),
            id=f"royalty-nightly:{franchisor_id}", task_queue=network.task_queue)

    assert result is not None and result.business_date == business
    assert result.run_id == royalty_run_id(franchisor_id, business)
    assert network.items(AUSTIN) == ["last-day"] and network.items(DENVER) == ["last-day"]
