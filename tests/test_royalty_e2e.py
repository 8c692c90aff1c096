"""Royalty end to end through the real parts: payments taken in the CRM sandbox reach the ledger through the
front door and the proposal workflows, the royalty run on the dev server writes the check in the QBO sandbox
with python-quickbooks, under QBO faults; where the network debits by ACH, the gateway sandbox collects each
check once under gateway faults; and the nightly schedule, backfilled across both DST changes, runs each
business date once."""

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import ScheduleBackfill, ScheduleOverlapPolicy, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from dispatch import start_royalty_run
from models.accounts import Franchisor
from models.gateway_credentials import save_gateway_credentials
from models.ledger import LedgerPayment
from models.royalty import RoyaltyRunResult, franchisee_royalty_id, royalty_run_id
from models.royalty_ledger import RoyaltyCharge
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.gateway.admin import GatewaySandboxAdmin
from sandbox.qbo.admin import list_objects, set_faults
from schedules import install_royalty_schedule
from tests.conftest import install_franchisor, new_realm, point_account_at
from tests.e2e import worker
from tests.test_lifecycle_e2e import LINES
from tests.test_proposal_e2e import replay
from tests.test_royalty_workflow import pay

D = Decimal
NIGHT = date(2026, 11, 21)  # through 18 November, after the 3-day wait


def checks(settings: Settings, realm_id: str) -> list[dict[str, Any]]:
    return [p for p in list_objects(settings.qbo_api_url, realm_id, "Purchase") if p["PaymentType"] == "Check"]


def check_lines(check: dict[str, Any]) -> list[tuple[str, Decimal]]:
    return [(line["AccountBasedExpenseLineDetail"]["AccountRef"]["name"], D(str(line["Amount"])))
            for line in check["Line"]]


async def ledger_has(engine: Engine, account_id: str, count: int, voided: int = 0) -> None:
    """Wait until the proposal workflows have recorded the CRM's payments (and voids) in the ledger."""
    for _ in range(600):
        with Session(engine) as session:
            rows = session.exec(select(LedgerPayment).where(LedgerPayment.account_id == account_id)).all()
        if len(rows) == count and sum(1 for r in rows if r.voided) == voided:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the ledger never held {count} payments ({voided} voided) for {account_id}")


async def run_night(dev_env: WorkflowEnvironment, settings: Settings, franchisor_id: str,
                    business: date) -> dict[str, Any]:
    handle = await start_royalty_run(dev_env.client, settings, franchisor_id, business)
    result: RoyaltyRunResult = await handle.result()
    return {o.account_id: o for o in result.outcomes}


async def test_payments_from_the_crm_are_charged_once_and_the_check_written_once_under_qbo_faults(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str, crm_account: str,
    franchisor_id: str
) -> None:
    settings = e2e_settings.model_copy(update={"qbo_http_timeout_seconds": 1.0})
    crm = CrmSandboxAdmin(settings.crm_api_url)
    contact = crm.create_contact(crm_account, firstName="Avery", lastName="Stone")
    proposal = crm.create_proposal(crm_account, contact["client_id"], LINES, number=f"R-{uuid.uuid4().hex[:6]}")
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor):
            # Austin's terms: 6% royalty and 2% marketing, on the amount and convenience fees, not on tips.
            deposit = crm.add_payment(crm_account, proposal["proposal_id"], D("300.00"), date(2026, 11, 10),
                                      tip=D("30.00"), convenience_fee=D("9.00"))
            crm.add_payment(crm_account, proposal["proposal_id"], D("120.00"), date(2026, 11, 18))
            crm.add_payment(crm_account, proposal["proposal_id"], D("1000.00"), date(2026, 11, 20))  # waits
            await ledger_has(engine, crm_account, 3)

            set_faults(settings.qbo_api_url, account_realm, rates={"500": 0.06, "429": 0.03, "timeout": 0.03,
                                                                    "drop": 0.06}, hold_seconds=1.5, seed=11)
            outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT)
            assert outcomes["acme-austin"].status == "check_written"
            assert outcomes["acme-denver"].status == "nothing_eligible"  # no payments: no check, and it says so
            outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT)  # the same night again
            assert outcomes["acme-austin"].charge.payments == 2

            [check] = checks(settings, account_realm)  # written once, whatever QBO's faults did
            assert check["DocNumber"] == "LF-ROY-20261121" and check["AccountRef"]["name"] == "Checking"
            assert check["EntityRef"]["name"] == "Acme Franchising LLC"
            assert check_lines(check) == [("Royalty Expense", D("25.74")),  # (300.00 + 9.00 + 120.00) x 6%
                                          ("Advertising & Marketing", D("8.58"))]
            assert D(str(check["TotalAmt"])) == D("34.32")
            assert len(list_objects(settings.qbo_api_url, account_realm, "Vendor")) == 1

            # The deposit is refunded after it was charged: the next run credits it.
            crm.void_payment(crm_account, deposit["payment_id"], kind="refund")
            await ledger_has(engine, crm_account, 3, voided=1)
            outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT + timedelta(days=1))
            charge = outcomes["acme-austin"].charge
            assert outcomes["acme-austin"].status == "nothing_due"
            assert (charge.royalty_credit_out, charge.marketing_credit_out) == (D("18.54"), D("6.18"))  # 309 x 6%, 2%
            outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT + timedelta(days=2))
            assert outcomes["acme-austin"].status == "check_written"
            set_faults(settings.qbo_api_url, account_realm)

            run_id = royalty_run_id(franchisor_id, NIGHT + timedelta(days=2))
            await replay(dev_env.client, run_id)
            await replay(dev_env.client, franchisee_royalty_id(run_id, "acme-austin"))

    first, second = sorted(checks(settings, account_realm), key=lambda c: str(c["DocNumber"]))
    assert second["DocNumber"] == "LF-ROY-20261123"
    assert check_lines(second) == [("Royalty Expense", D("41.46")),  # 1000.00 x 6% less the 18.54 credit
                                   ("Advertising & Marketing", D("13.82"))]  # 20.00 less 6.18
    assert first["Id"] != second["Id"]


async def test_ach_debits_collect_each_check_once_through_the_gateway_under_its_faults(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, account_realm: str
) -> None:
    settings = e2e_settings.model_copy(update={"gateway_http_timeout_seconds": 0.5, "gateway_retries": 0})
    denver_realm = point_account_at(engine, "acme-denver", new_realm(settings, engine))
    gateway = GatewaySandboxAdmin(settings.gateway_api_url)
    created = gateway.create_merchant("Acme Franchising LLC", f"acme-{uuid.uuid4().hex[:8]}")
    merchant = created["id"]
    austin_bank = gateway.add_payment_method(merchant, "bank", "Acme Home Services of Austin")["id"]
    denver_bank = gateway.add_payment_method(merchant, "bank", "Acme Home Services of Denver", "decline")["id"]
    franchisor_id = install_franchisor(settings, engine, payment_methods={"acme-austin": austin_bank,
                                                                          "acme-denver": denver_bank}, ach_debit=True)
    save_gateway_credentials(engine, franchisor_id, created["api_key"])  # the franchisor's account is paid
    pay(engine, "acme-austin", f"ach-{uuid.uuid4().hex[:6]}", "412.50", date(2026, 11, 14), fee="12.50")
    pay(engine, "acme-denver", f"ach-{uuid.uuid4().hex[:6]}", "200.00", date(2026, 11, 14))

    # The gateway drops the first answer (the charge made, the answer lost) and fails the next call.
    gateway.set_faults(merchant, queued=["drop", "500"], hold_seconds=1.0)
    with ThreadPoolExecutor(max_workers=settings.worker_activity_threads) as executor:
        async with worker(dev_env, settings, executor):
            outcomes = await run_night(dev_env, settings, franchisor_id, NIGHT)
            again = await run_night(dev_env, settings, franchisor_id, NIGHT)  # the same night: nothing twice
            await replay(dev_env.client, franchisee_royalty_id(royalty_run_id(franchisor_id, NIGHT), "acme-austin"))

    [check] = checks(settings, account_realm)
    assert D(str(check["TotalAmt"])) == D("34.00")  # (412.50 + the 12.50 fee) x 8%
    [debit] = [t for t in gateway.charges(merchant, austin_bank) if t["success"]]
    assert D(str(debit["total"])) == D("34.00") and debit["method"] == "bank"
    assert len(gateway.charges(merchant, austin_bank)) == 1  # the lost answer's retry found the same charge
    assert outcomes["acme-austin"].status == again["acme-austin"].status == "check_written"
    assert outcomes["acme-austin"].debits == [debit["id"]]

    # Denver's bank declines: its check stands in its books, the decline is reported and not sent again.
    assert outcomes["acme-denver"].status == "failed" and "declined" in (outcomes["acme-denver"].error or "")
    assert len(checks(settings, denver_realm)) == 1 and len(gateway.charges(merchant, denver_bank)) == 1
    with Session(engine) as session:
        charges = {c.account_id: c for c in session.exec(select(RoyaltyCharge).where(
            RoyaltyCharge.franchisor_id == franchisor_id))}
    assert (charges["acme-austin"].debit_status, charges["acme-austin"].debit_id) == ("debited", debit["id"])
    assert charges["acme-denver"].debit_status == "declined" and charges["acme-denver"].status == "check_written"


async def test_the_nightly_schedule_backfilled_across_both_dst_changes_runs_each_date_once(
    dev_env: WorkflowEnvironment, e2e_settings: Settings, engine: Engine, franchisor_id: str
) -> None:
    client = dev_env.client
    with Session(engine) as session:
        franchisor = session.get(Franchisor, franchisor_id)
    assert franchisor is not None
    installed = await install_royalty_schedule(client, e2e_settings, franchisor)
    handle = client.get_schedule_handle(installed.schedule_id)
    try:
        assert not (await install_royalty_schedule(client, e2e_settings, franchisor)).created  # updated, not doubled
        spec = (await handle.describe()).schedule.spec
        assert spec.time_zone_name == "America/Chicago"
        next_runs = (await handle.describe()).info.next_action_times
        assert next_runs and all(t.astimezone(ZoneInfo(spec.time_zone_name)).time() == time(4, 0) for t in next_runs)

        with ThreadPoolExecutor(max_workers=e2e_settings.worker_activity_threads) as executor:
            async with worker(dev_env, e2e_settings, executor):
                await handle.backfill(*(ScheduleBackfill(start_at=start, end_at=start + timedelta(days=3, hours=23),
                                                         overlap=ScheduleOverlapPolicy.ALLOW_ALL)
                                        for start in (datetime(2026, 3, 7, 6, tzinfo=UTC),  # spring forward: 8 March
                                                      datetime(2026, 10, 30, 5, tzinfo=UTC))))  # fall back: 1 Nov
                runs = await finished_runs(dev_env, franchisor_id, expected=8)
    finally:
        await handle.delete()

    # Runs at 04:00 on 7-10 March and 30 October-2 November: the DST days (8 March, 1 November) once each.
    assert sorted(runs) == [royalty_run_id(franchisor_id, date(2026, 3, 6) + timedelta(days=n)) for n in range(4)] + [
        royalty_run_id(franchisor_id, date(2026, 10, 29) + timedelta(days=n)) for n in range(4)]


async def finished_runs(dev_env: WorkflowEnvironment, franchisor_id: str, expected: int) -> list[str]:
    """The ids of the franchisor's royalty runs once `expected` of them have completed (and no more started)."""
    query = f"WorkflowType = 'RoyaltyRunWorkflow' AND Franchisor = '{franchisor_id}'"
    ids: list[str] = []
    for _ in range(600):
        executions = [e async for e in dev_env.client.list_workflows(query)]
        ids = [e.id for e in executions]
        if len(executions) >= expected and all(e.status == WorkflowExecutionStatus.COMPLETED for e in executions):
            await asyncio.sleep(1)  # nothing else coming
            return [e.id async for e in dev_env.client.list_workflows(query)]
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {expected} finished royalty runs, saw {ids}")
