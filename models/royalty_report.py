"""The royalty report, read-only over the royalty ledger: every charge, totals per franchisee and per business
date, the runs (a failed franchisee shows with its error), and one charge's payments. The API and the CLI
both read it here, so the page, the CSV and the terminal always agree to the cent.

A report is scoped by franchisor, by account, or both: a franchisor's key reads only the charges its own
runs made, a franchisee's key only its own, and a franchisee never sees another franchisee's run outcome."""

import csv
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, computed_field
from sqlalchemy import Engine
from sqlmodel import Session, col, or_, select

from models.accounts import Franchisee, Franchisor
from models.money import Exact, Money
from models.royalty import ChargeStatus, ChargeSummary
from models.royalty_ledger import RoyaltyCharge, RoyaltyItem, RoyaltyRun

ZERO = Decimal("0.00")
FAILED = "failed"


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True)


class ChargeRow(ChargeSummary):
    """One franchisee's charge for one run, as the ledger holds it, with what only the report shows."""

    name: str
    check_error: str | None
    check_written_at: datetime | None
    debit_error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_due(self) -> Money:
        return self.royalty_due + self.marketing_due


class Totals(_Shape):
    charges: int = 0
    payments: int = 0
    credits: int = 0
    basis: Money = ZERO
    credited_basis: Money = ZERO
    royalty_due: Money = ZERO
    marketing_due: Money = ZERO
    outstanding: Money = ZERO  # due on charges whose check is not written yet

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_due(self) -> Money:
        return self.royalty_due + self.marketing_due


class FranchiseeTotals(Totals):
    account_id: str
    name: str
    royalty_credit: Money = ZERO  # carried after the franchisee's last charge in the report
    marketing_credit: Money = ZERO


class DayTotals(Totals):
    business_date: date


class RunOutcome(_Shape):
    account_id: str
    name: str
    status: str  # a ChargeStatus, or "failed"
    error: str | None = None
    checks_written: list[str] = []


class RunRow(_Shape):
    """A run as its workflow last recorded it. Its outcomes are what that run saw: a franchisee failed
    there may have had its check written by a later run (see the charge's status)."""

    run_id: str
    business_date: date
    eligible_through: date
    finished_at: datetime
    outcomes: list[RunOutcome]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status == FAILED]


class RoyaltyReport(_Shape):
    franchisor_id: str | None
    account_id: str | None
    name: str  # the franchisor's, or the account's when the report is one account's
    start: date | None
    end: date | None
    charges: list[ChargeRow]
    franchisees: list[FranchiseeTotals]
    days: list[DayTotals]
    total: Totals
    runs: list[RunRow]


class ItemRow(_Shape):
    """A payment a charge covered (`charge`) or a refund it credited back (`credit`, its basis taken off)."""

    item_id: int
    kind: str
    crm_payment_id: str
    proposal_id: str
    received_on: date
    amount: Money
    tip: Money
    convenience_fee: Money
    basis: Money
    royalty_rate: Exact
    marketing_rate: Exact


class ChargeDetail(_Shape):
    charge: ChargeRow
    items: list[ItemRow]


def _charge_row(charge: RoyaltyCharge, names: dict[str, str]) -> ChargeRow:
    fields = charge.model_dump(include=set(ChargeRow.model_fields) - {"charge_id", "name"})
    return ChargeRow(**fields, charge_id=charge.id, name=names.get(charge.account_id, charge.account_id))


def _totals(rows: Sequence[ChargeRow]) -> dict[str, Any]:
    def total(field: str) -> Decimal:
        return sum((getattr(r, field) for r in rows), ZERO)

    return {"charges": len(rows), "payments": sum(r.payments for r in rows),
            "credits": sum(r.credits for r in rows), "basis": total("basis"),
            "credited_basis": total("credited_basis"), "royalty_due": total("royalty_due"),
            "marketing_due": total("marketing_due"),
            "outstanding": sum((r.total_due for r in rows if r.status == ChargeStatus.CHECK_DUE.value), ZERO)}


def _franchisee_totals(rows: list[ChargeRow], names: dict[str, str]) -> list[FranchiseeTotals]:
    """Every franchisee in `names` (the franchisor's, with or without charges) and every account charged."""
    by_account: dict[str, list[ChargeRow]] = {account: [] for account in names}
    for row in rows:
        by_account.setdefault(row.account_id, []).append(row)
    result = []
    for account, mine in sorted(by_account.items()):
        last = mine[-1] if mine else None
        result.append(FranchiseeTotals(
            account_id=account, name=names.get(account, account), **_totals(mine),
            royalty_credit=last.royalty_credit_out if last else ZERO,
            marketing_credit=last.marketing_credit_out if last else ZERO))
    return result


def _day_totals(rows: list[ChargeRow]) -> list[DayTotals]:
    by_day: dict[date, list[ChargeRow]] = {}
    for row in rows:
        by_day.setdefault(row.business_date, []).append(row)
    return [DayTotals(business_date=day, **_totals(mine)) for day, mine in sorted(by_day.items())]


def _runs(session: Session, franchisor_ids: set[str], account_id: str | None, start: date | None,
          end: date | None) -> list[RunRow]:
    """The franchisors' runs; only the account's own outcome when the report is one account's."""
    if not franchisor_ids:
        return []
    query = select(RoyaltyRun).where(col(RoyaltyRun.franchisor_id).in_(franchisor_ids))
    query = _in_range(query, RoyaltyRun.business_date, start, end)
    runs = []
    for run in session.exec(query.order_by(col(RoyaltyRun.business_date), col(RoyaltyRun.run_id))):
        outcomes = [RunOutcome.model_validate(o) for o in _outcome_fields(run.outcomes)
                    if account_id is None or o.get("account_id") == account_id]
        if outcomes or account_id is None:
            runs.append(RunRow(run_id=run.run_id, business_date=run.business_date,
                               eligible_through=run.eligible_through, finished_at=run.finished_at,
                               outcomes=outcomes))
    return runs


def _outcome_fields(outcomes: Iterable[dict[str, object]]) -> list[dict[str, object]]:
    keep = set(RunOutcome.model_fields)
    return [{k: v for k, v in o.items() if k in keep} for o in outcomes]


def _in_range(query: Any, column: Any, start: date | None, end: date | None) -> Any:
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column <= end)
    return query


def royalty_report(engine: Engine, franchisor_id: str | None = None, account_id: str | None = None,
                   start: date | None = None, end: date | None = None) -> RoyaltyReport:
    """The charges a franchisor's runs made (`franchisor_id`), an account's (`account_id`), or both at once
    (a franchisor reading one franchisee), for business dates `start` to `end` inclusive."""
    if franchisor_id is None and account_id is None:
        raise ValueError("a royalty report needs a franchisor or an account")
    query = _in_range(select(RoyaltyCharge), RoyaltyCharge.business_date, start, end)
    if franchisor_id is not None:
        query = query.where(RoyaltyCharge.franchisor_id == franchisor_id)
    if account_id is not None:
        query = query.where(RoyaltyCharge.account_id == account_id)
    with Session(engine) as session:
        charges = list(session.exec(query.order_by(col(RoyaltyCharge.business_date),
                                                   col(RoyaltyCharge.account_id), col(RoyaltyCharge.id))))
        who = [Franchisee.account_id == account_id] if account_id is not None else [
            Franchisee.franchisor_id == franchisor_id]
        franchisees = list(session.exec(select(Franchisee).where(or_(
            *who, col(Franchisee.account_id).in_({c.account_id for c in charges})))))
        names = {f.account_id: f.name for f in franchisees}
        franchisor = session.get(Franchisor, franchisor_id) if franchisor_id is not None else None
        runs_of = {franchisor_id} if franchisor_id is not None else (
            {c.franchisor_id for c in charges} | {f.franchisor_id for f in franchisees})
        runs = _runs(session, runs_of, account_id, start, end)
    rows = [_charge_row(c, names) for c in charges]
    listed = {account_id: names.get(account_id, account_id)} if account_id is not None else {
        f.account_id: f.name for f in franchisees if f.franchisor_id == franchisor_id}
    name = names.get(account_id, account_id) if account_id is not None else (
        franchisor.name if franchisor else str(franchisor_id))
    return RoyaltyReport(franchisor_id=franchisor_id, account_id=account_id, name=name, start=start, end=end,
                         charges=rows, franchisees=_franchisee_totals(rows, listed), days=_day_totals(rows),
                         total=Totals(**_totals(rows)), runs=runs)


def charge_detail(engine: Engine, account_id: str, charge_id: int,
                  franchisor_id: str | None = None) -> ChargeDetail | None:
    """One charge of the account and every payment and refund it covered; None when the charge is not the
    account's (or not one of `franchisor_id`'s runs), so a caller can never tell it exists."""
    with Session(engine) as session:
        charge = session.get(RoyaltyCharge, charge_id)
        if charge is None or charge.account_id != account_id or (
                franchisor_id is not None and charge.franchisor_id != franchisor_id):
            return None
        items = session.exec(select(RoyaltyItem).where(RoyaltyItem.charge_id == charge_id).order_by(
            col(RoyaltyItem.kind), col(RoyaltyItem.received_on), col(RoyaltyItem.id))).all()
        franchisee = session.get(Franchisee, account_id)
    names = {account_id: franchisee.name} if franchisee else {}
    fields = set(ItemRow.model_fields) - {"item_id"}
    return ChargeDetail(charge=_charge_row(charge, names),
                        items=[ItemRow(**i.model_dump(include=fields), item_id=i.id) for i in items])


CHARGE_COLUMNS = ["business_date", "account_id", "name", "charge_id", "run_id", "eligible_through", "payments",
                  "credits", "basis", "credited_basis", "royalty_rate", "marketing_rate", "royalty", "marketing",
                  "royalty_credit_in", "marketing_credit_in", "royalty_due", "marketing_due", "total_due",
                  "royalty_credit_out", "marketing_credit_out", "status", "check_number", "check_id",
                  "check_error", "debit_status", "debit_id", "debit_error"]
ITEM_COLUMNS = ["charge_id", "account_id", "business_date", "kind", "crm_payment_id", "proposal_id", "received_on",
                "amount", "tip", "convenience_fee", "basis", "royalty_rate", "marketing_rate"]
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    """Numbers and dates as written (Decimals exact); text that a spreadsheet would run as a formula is
    quoted with a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_STARTS) else value
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def write_charges_csv(rows: Iterable[ChargeRow], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CHARGE_COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, column)) for column in CHARGE_COLUMNS])


def write_items_csv(detail: ChargeDetail, out: TextIO) -> None:
    """One line per payment covered or refund credited, each naming its charge so files can be joined."""
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(ITEM_COLUMNS)
    charge = detail.charge
    for item in detail.items:
        of_charge = {"charge_id": charge.charge_id, "account_id": charge.account_id,
                     "business_date": charge.business_date}
        writer.writerow([_cell(of_charge[c] if c in of_charge else getattr(item, c)) for c in ITEM_COLUMNS])
