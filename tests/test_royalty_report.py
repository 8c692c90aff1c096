"""The royalty report over a ledger the real royalty workflow wrote (time-skipping server, QBO checks stubbed):
totals to the cent per franchisee and per day, a failed franchisee and its error, date ranges, one account's
view, the drill-down from a charge to its payments, the CSV, and the CLI."""

import csv
import io
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

import starter
from config.settings import Settings
from models.accounts import Franchisee
from models.royalty_report import ChargeRow, charge_detail, royalty_report, write_charges_csv, write_items_csv
from tests.test_royalty_workflow import AUSTIN, DENVER, Network, pay, refund

D = Decimal
NIGHT = date(2026, 11, 21)  # payments received through 18 November
NEXT = NIGHT + timedelta(days=1)  # through the 19th
REFUSED = "Invalid Reference Id"


async def write_ledger(network: Network) -> None:
    """Two nights. The 21st: Austin 100.00 (+3.00 fee, its tip excluded) and 200.00: basis 303.00, 18.18 +
    6.06; Denver 200.00 (+20.00 tip, its fee excluded) and 80.00: basis 300.00, 16.50 + 4.50. The 22nd: Austin's
    200.00 refunded and 500.00 new: 300.00 net, 18.00 + 6.00; Denver 100.00: 5.50 + 1.50, but its QBO refuses
    the check, so Denver fails that night. Austin's payment of the 20th is inside the waiting period: never
    charged."""
    engine = network.engine
    pay(engine, AUSTIN, "a1", "100.00", date(2026, 11, 18), tip="10.00", fee="3.00")
    pay(engine, AUSTIN, "a2", "200.00", date(2026, 11, 15))
    pay(engine, AUSTIN, "a-late", "50.00", date(2026, 11, 20))
    pay(engine, DENVER, "d1", "200.00", date(2026, 11, 18), tip="20.00", fee="5.00")
    pay(engine, DENVER, "d2", "80.00", date(2026, 11, 2))
    await network.run(NIGHT)
    refund(engine, AUSTIN, "a2")
    pay(engine, AUSTIN, "a3", "500.00", date(2026, 11, 19))
    pay(engine, DENVER, "d3", "100.00", date(2026, 11, 19))
    network.checks.refusing.add(DENVER)
    await network.run(NEXT)


@pytest.fixture
async def ledger(time_skipping_env: WorkflowEnvironment, engine: Engine, franchisor_id: str) -> Network:
    network = Network(time_skipping_env, engine, franchisor_id)
    await write_ledger(network)
    return network


def charge_of(rows: list[ChargeRow], account_id: str, business: date) -> ChargeRow:
    [row] = [r for r in rows if r.account_id == account_id and r.business_date == business]
    return row


def test_the_franchisor_report_totals_each_franchisee_and_day_to_the_cent(ledger: Network) -> None:
    report = royalty_report(ledger.engine, ledger.franchisor_id)

    assert report.name == "Acme Home Services"
    totals = {f.account_id: (f.payments, f.credits, f.royalty_due, f.marketing_due, f.total_due, f.outstanding)
              for f in report.franchisees}
    assert totals == {AUSTIN: (3, 1, D("36.18"), D("12.06"), D("48.24"), D("0.00")),
                      DENVER: (3, 0, D("22.00"), D("6.00"), D("28.00"), D("7.00"))}
    assert [(d.business_date, d.royalty_due, d.marketing_due, d.total_due) for d in report.days] == [
        (NIGHT, D("34.68"), D("10.56"), D("45.24")), (NEXT, D("23.50"), D("7.50"), D("31.00"))]
    assert (report.total.royalty_due, report.total.marketing_due, report.total.total_due) == (
        D("58.18"), D("18.06"), D("76.24"))
    denver = charge_of(report.charges, DENVER, NEXT)
    assert denver.status == "check_due" and REFUSED in (denver.check_error or "")
    assert charge_of(report.charges, AUSTIN, NEXT).status == "check_written"
    assert [(r.business_date, [(o.account_id, o.status) for o in r.outcomes]) for r in report.runs] == [
        (NIGHT, [(AUSTIN, "check_written"), (DENVER, "check_written")]),
        (NEXT, [(AUSTIN, "check_written"), (DENVER, "failed")])]
    [failed] = report.runs[1].failed
    assert failed.name == "Acme Home Services of Denver" and REFUSED in (failed.error or "")


def test_a_date_range_and_one_account_narrow_the_report(ledger: Network) -> None:
    second_night = royalty_report(ledger.engine, ledger.franchisor_id, start=NEXT, end=NEXT)
    assert [(c.account_id, c.total_due) for c in second_night.charges] == [(AUSTIN, D("24.00")), (DENVER, D("7.00"))]
    assert [r.business_date for r in second_night.runs] == [NEXT]

    austin = royalty_report(ledger.engine, None, AUSTIN)  # as Austin's own key reads it
    assert {c.account_id for c in austin.charges} == {AUSTIN} and austin.total.total_due == D("48.24")
    assert [f.account_id for f in austin.franchisees] == [AUSTIN]
    assert all([o.account_id for o in run.outcomes] == [AUSTIN] for run in austin.runs) and len(austin.runs) == 2
    dumped = austin.model_dump_json()
    assert DENVER not in dumped and REFUSED not in dumped  # nothing of another franchisee, not even its failure

    assert royalty_report(ledger.engine, ledger.franchisor_id, AUSTIN).charges == austin.charges
    assert royalty_report(ledger.engine, "acme", AUSTIN).charges == []  # another franchisor's runs charged nothing


def test_the_drill_down_lists_exactly_the_payments_a_charge_covered(ledger: Network) -> None:
    report = royalty_report(ledger.engine, ledger.franchisor_id)
    first, second = charge_of(report.charges, AUSTIN, NIGHT), charge_of(report.charges, AUSTIN, NEXT)

    detail = charge_detail(ledger.engine, AUSTIN, first.charge_id)
    assert detail is not None
    assert [(i.kind, i.crm_payment_id, i.amount, i.tip, i.convenience_fee, i.basis) for i in detail.items] == [
        ("charge", "a2", D("200.00"), D("0.00"), D("0.00"), D("200.00")),
        ("charge", "a1", D("100.00"), D("10.00"), D("3.00"), D("103.00"))]
    assert sum(i.basis for i in detail.items) == detail.charge.basis == D("303.00")

    refunded = charge_detail(ledger.engine, AUSTIN, second.charge_id)
    assert refunded is not None
    assert [(i.kind, i.crm_payment_id, i.received_on, i.basis) for i in refunded.items] == [
        ("charge", "a3", date(2026, 11, 19), D("500.00")), ("credit", "a2", date(2026, 11, 15), D("200.00"))]
    assert refunded.charge.credited_basis == D("200.00") and refunded.items[0].royalty_rate == D("0.06")

    denver = charge_of(report.charges, DENVER, NEXT).charge_id
    assert charge_detail(ledger.engine, AUSTIN, denver) is None  # another account's charge is not there
    assert charge_detail(ledger.engine, AUSTIN, first.charge_id, franchisor_id="acme") is None
    assert charge_detail(ledger.engine, AUSTIN, 10**9) is None


def test_the_csv_parses_back_to_the_same_amounts(ledger: Network) -> None:
    report = royalty_report(ledger.engine, ledger.franchisor_id)
    out = io.StringIO()
    write_charges_csv(report.charges, out)

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 4
    for account in (AUSTIN, DENVER):
        mine = [r for r in rows if r["account_id"] == account]
        [totals] = [f for f in report.franchisees if f.account_id == account]
        assert sum(D(r["royalty_due"]) for r in mine) == totals.royalty_due
        assert sum(D(r["marketing_due"]) for r in mine) == totals.marketing_due
        assert sum(D(r["total_due"]) for r in mine) == totals.total_due
    assert [(r["business_date"], r["account_id"], r["basis"], r["credited_basis"], r["status"]) for r in rows] == [
        ("2026-11-21", AUSTIN, "303.00", "0.00", "check_written"), ("2026-11-21", DENVER, "300.00", "0.00",
                                                                    "check_written"),
        ("2026-11-22", AUSTIN, "500.00", "200.00", "check_written"), ("2026-11-22", DENVER, "100.00", "0.00",
                                                                      "check_due")]
    assert REFUSED in rows[3]["check_error"] and rows[0]["check_number"] == "LF-ROY-20261121"

    detail = charge_detail(ledger.engine, AUSTIN, int(rows[2]["charge_id"]))
    assert detail is not None
    items = io.StringIO()
    write_items_csv(detail, items)
    assert [(r["kind"], r["crm_payment_id"], D(r["basis"]), r["business_date"])
            for r in csv.DictReader(io.StringIO(items.getvalue()))] == [
        ("charge", "a3", D("500.00"), "2026-11-22"), ("credit", "a2", D("200.00"), "2026-11-22")]


def test_text_a_spreadsheet_would_run_as_a_formula_is_quoted(ledger: Network) -> None:
    with Session(ledger.engine) as session:
        franchisee = session.get(Franchisee, AUSTIN)
        assert franchisee is not None
        franchisee.name = '=HYPERLINK("http://evil.example","Austin")'
        session.add(franchisee)
        session.commit()
    out = io.StringIO()
    write_charges_csv(royalty_report(ledger.engine, None, AUSTIN).charges, out)
    names = {r["name"] for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert names == {'\'=HYPERLINK("http://evil.example","Austin")'}


def run_cli(settings: Settings, *argv: str) -> int:
    args = starter.build_parser().parse_args(["royalty", "report", *argv])
    return int(args.run(settings, args))


def test_the_cli_prints_the_charges_totals_and_failures(ledger: Network, settings: Settings,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(settings, "--franchisor", ledger.franchisor_id) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("Royalty of Acme Home Services") and "4 charge(s)" in lines[0]
    per_franchisee = out.split("Totals per franchisee")[1].split("Totals per business date")[0]
    rows = {line.split()[0]: line.split() for line in per_franchisee.splitlines()[2:] if line.strip()}
    assert rows[AUSTIN][-4:] == ["36.18", "12.06", "48.24", "0.00"]
    assert rows[DENVER][-4:] == ["22.00", "6.00", "28.00", "7.00"]
    assert rows["TOTAL"][-4:] == ["58.18", "18.06", "76.24", "7.00"]
    per_day = out.split("Totals per business date")[1].split("Failed franchisees")[0]
    days = {line.split()[0]: line.split()[5:8] for line in per_day.splitlines()[2:] if line.strip()}
    assert days == {"2026-11-21": ["34.68", "10.56", "45.24"], "2026-11-22": ["23.50", "7.50", "31.00"]}
    assert f"2026-11-22 {DENVER}: " in out and REFUSED in out.split("Failed franchisees")[1]


def test_the_cli_narrows_to_one_account_and_writes_csv(ledger: Network, settings: Settings,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(settings, "--franchisor", ledger.franchisor_id, "--account", DENVER, "--from", "2026-11-22",
                   "--to", "2026-11-22", "--csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["account_id"], r["royalty_due"], r["marketing_due"], r["status"]) for r in rows] == [
        (DENVER, "5.50", "1.50", "check_due")]

    assert run_cli(settings, "--franchisor", "nobody") == 2
    assert run_cli(settings, "--franchisor", "acme", "--account", DENVER) == 2  # not acme's franchisee any more
    assert run_cli(settings, "--franchisor", ledger.franchisor_id, "--from", "2026-11-23", "--to", "2026-11-22") == 2
    assert "must be on or before" in capsys.readouterr().err
