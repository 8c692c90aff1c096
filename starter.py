"""The Ledgerflow command line: install the network, connect QBO companies, send CRM events, inspect
proposals, and play the demo scenario against a running stack."""

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel
from sqlmodel import Session, col, func, select
from temporalio.client import Client

from activities.crm import crm_client_for
from api.audit import audit_page
from config.network import install_network, load_network
from config.settings import Settings, get_settings
from config.temporal import connect
from dispatch import (
    PlanNotEnrollable,
    enroll_contact,
    send_payment_added,
    send_payment_voided,
    send_proposal_changed,
    send_sales_cycle_change,
    start_autopay_cycle,
    start_collection,
    start_reconcile,
    start_refund,
    start_royalty_run,
    start_scheduled_payment,
)
from models import royalty_dates
from models.accounts import Franchisee, Franchisor
from models.api_keys import create_api_key, list_api_keys, revoke_api_key
from models.audit import QboAuditLog
from models.autopay import AutopayConfig
from models.autopay_configs import ConfigLocked, replace_configs
from models.collections import CollectionStatus, CollectPayment, RefundPayment
from models.crm_credentials import save_crm_credentials
from models.crm_webhooks import SIGNATURE_HEADER, sign
from models.db import create_tables, get_engine
from models.enrollments import CancelEnrollment, EnrollmentState, PlanPreview, PreviewInput, plan_workflow_id
from models.gateway_credentials import save_gateway_credentials
from models.gateway_webhooks import webhook_path
from models.lead_keys import create_lead_key, list_lead_keys, revoke_lead_key
from models.lead_receipts import Outcome, receipts
from models.leads import LeadChannel
from models.ledger import LedgerInvoice, LedgerPayment
from models.money import cents
from models.outbox import OutboxMessage
from models.payment_settings import PaymentSettings
from models.plan_enrollments import PlanEnrollment, ever_enrolled
from models.proposals import (
    CrmContact,
    PaymentAdded,
    PaymentVoided,
    Proposal,
    ProposalChanged,
    ProposalLine,
    ProposalState,
    SalesCycleChange,
    proposal_workflow_id,
)
from models.qbo_connection import save_connection
from models.receivables import customer_balance, open_invoices, proposal_for_invoice
from models.royalty_ledger import RoyaltyCharge, RoyaltyItem
from models.scheduled_payments import Reschedule, SchedulePayment, scheduled_workflow_id
from models.time_zones import local_today
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.gateway.admin import GatewaySandboxAdmin
from sandbox.qbo.admin import connect_company, list_objects, sandbox_root
from schedules import install_autopay_schedule, install_reconcile_schedule, install_royalty_schedule
from workflows.proposal import ProposalWorkflow


def _engine(settings: Settings) -> Any:
    engine = get_engine(settings.database_url)
    create_tables(engine)
    return engine


def _franchisee(settings: Settings, account_id: str) -> Franchisee:
    with Session(_engine(settings)) as session:
        franchisee = session.get(Franchisee, account_id)
    if franchisee is None:
        sys.exit(f"unknown account {account_id!r}: run `starter.py network install` first")
    return franchisee


def cmd_network_install(settings: Settings, args: argparse.Namespace) -> int:
    network = load_network(args.file or settings.network_file)
    install_network(_engine(settings), network)
    print(f"installed {network.franchisor.name} with {len(network.franchisees)} franchisees")
    return 0


def cmd_qbo_connect(settings: Settings, args: argparse.Namespace) -> int:
    """Connect a company of the QBO sandbox (the OAuth consent step of a real company)."""
    save_connection(_engine(settings), args.realm, connect_company(settings.qbo_api_url, args.realm))
    print(f"connected QBO sandbox company {args.realm}")
    return 0


def _parse_line(text: str) -> ProposalLine:
    description, quantity, unit_price = text.rsplit("|", 2)
    return ProposalLine(description=description, quantity=Decimal(quantity), unit_price=Decimal(unit_price))


def _change_from_args(args: argparse.Namespace) -> SalesCycleChange:
    if args.json:
        return SalesCycleChange.model_validate_json(Path(args.json).read_text())
    missing = [flag for flag in ("account", "step", "contact_id", "proposal_id", "number") if not getattr(args, flag)]
    if missing or not args.line:
        sys.exit("event sales-cycle needs --json, or --account --step --contact-id --proposal-id --number and "
                 f"at least one --line (missing: {', '.join(missing + ([] if args.line else ['line']))})")
    return SalesCycleChange(
        event_id=args.event_id or f"cli-{time.time_ns()}",
        account_id=args.account,
        sales_cycle_step=args.step,
        occurred_at=datetime.now(UTC),
        contact=CrmContact(id=args.contact_id, first_name=args.first_name, last_name=args.last_name,
                           company_name=args.company, email=args.email),
        proposal=Proposal(id=args.proposal_id, number=args.number, lines=[_parse_line(x) for x in args.line]),
    )


# The JSON events `starter.py event KIND --json FILE` sends, in the webhook's shapes.
JSON_EVENTS: dict[str, tuple[str, type[BaseModel], Any]] = {
    "proposal": ("a proposal was edited (ProposalChanged JSON)", ProposalChanged, send_proposal_changed),
    "payment": ("a payment was added to a proposal (PaymentAdded JSON)", PaymentAdded, send_payment_added),
    "payment-voided": ("a payment was voided or refunded (PaymentVoided JSON)", PaymentVoided, send_payment_voided),
}


def _event_from_args(args: argparse.Namespace) -> tuple[BaseModel, Any]:
    """The event to send and the dispatch function for its kind."""
    if args.sub == "sales-cycle":
        return _change_from_args(args), send_sales_cycle_change
    _, model, send = JSON_EVENTS[args.sub]
    return model.model_validate_json(Path(args.json).read_text()), send


async def cmd_event(settings: Settings, args: argparse.Namespace) -> int:
    """Send a CRM event straight to Temporal, as the webhook front door would."""
    event, send = _event_from_args(args)
    client = await connect(settings)
    dispatched = await send(client, settings, _franchisee(settings, event.account_id), event)  # type: ignore[attr-defined]
    print(json.dumps(dispatched.__dict__))
    return 0 if dispatched.status == "accepted" else 3


async def _proposal_state(client: Client, account_id: str, proposal_id: str) -> ProposalState:
    handle = client.get_workflow_handle(proposal_workflow_id(account_id, proposal_id))
    return await handle.query(ProposalWorkflow.state)


async def cmd_proposal_show(settings: Settings, args: argparse.Namespace) -> int:
    state = await _proposal_state(await connect(settings), args.account, args.proposal)
    print(state.model_dump_json(indent=2))
    return 0


async def cmd_proposal_retry(settings: Settings, args: argparse.Namespace) -> int:
    """Try a stuck proposal's steps again now that the item or account QBO refused is fixed."""
    client = await connect(settings)
    await client.get_workflow_handle(proposal_workflow_id(args.account, args.proposal)).signal(ProposalWorkflow.retry)
    print(f"retry sent to {proposal_workflow_id(args.account, args.proposal)}")
    return 0


async def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    """Reconcile an account from the CRM now: the proposals changed since the last sync (all with --full)."""
    _franchisee(settings, args.account)
    handle = await start_reconcile(await connect(settings), settings, args.account, full=args.full)
    print(f"sync started: workflow {handle.id}")
    if args.wait:
        result = await handle.result()
        print(f"fed {result.proposals_fed} proposal(s) changed since {result.since or 'the start'}; "
              f"cursor now {result.cursor}")
    return 0


async def cmd_schedules_install(settings: Settings, _args: argparse.Namespace) -> int:
    """Install or update the reconciliation and autopay schedules of every franchisee and the nightly royalty
    of every franchisor."""
    client = await connect(settings)
    with Session(_engine(settings)) as session:
        franchisees = session.exec(select(Franchisee)).all()
        franchisors = session.exec(select(Franchisor)).all()
    for franchisee in franchisees:
        installed = await install_reconcile_schedule(client, settings, franchisee.account_id)
        print(f"{'created' if installed.created else 'updated'} schedule {installed.schedule_id} "
              f"(every {settings.reconcile_every})")
        installed = await install_autopay_schedule(client, settings, franchisee)
        print(f"{'created' if installed.created else 'updated'} schedule {installed.schedule_id} "
              f"(daily at {PaymentSettings.model_validate(franchisee.payments).autopay_time} "
              f"{franchisee.time_zone})")
    for franchisor in franchisors:
        installed = await install_royalty_schedule(client, settings, franchisor)
        print(f"{'created' if installed.created else 'updated'} schedule {installed.schedule_id} "
              f"(nightly at {franchisor.royalty['run_time']} {franchisor.time_zone})")
    return 0


async def cmd_royalty_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run a franchisor's royalty for a business date now (yesterday in its time zone unless given)."""
    with Session(_engine(settings)) as session:
        franchisor = session.get(Franchisor, args.franchisor)
    if franchisor is None:
        print(f"unknown franchisor {args.franchisor!r}", file=sys.stderr)
        return 2
    business = args.date or royalty_dates.business_date(datetime.now(UTC), franchisor.time_zone)
    handle = await start_royalty_run(await connect(settings), settings, franchisor.id, business)
    print(f"royalty run started: workflow {handle.id}")
    if not args.wait:
        return 0
    result = await handle.result()
    print(f"{result.run_id}: payments received through {result.eligible_through}")
    for outcome in result.outcomes:
        charge = outcome.charge
        amounts = (f"royalty {charge.royalty_due}, marketing {charge.marketing_due} on {charge.payments} payment(s)"
                   if charge else "")
        debits = f", ACH debit {', '.join(outcome.debits)}" if outcome.debits else ""
        print(f"  {outcome.account_id:<24} {outcome.status:<17} {amounts}{debits}{outcome.error or ''}")
    return 1 if result.failed else 0


def cmd_royalty_report(settings: Settings, args: argparse.Namespace) -> int:
    """The royalty report in the terminal (charges, totals per franchisee and per day, failed franchisees), or
    its charges as CSV on stdout: the same rows, from the same queries, as the API's report."""
    from models.royalty_report import Totals, royalty_report, write_charges_csv  # this command's alone

    engine = _engine(settings)
    with Session(engine) as session:
        franchisor = session.get(Franchisor, args.franchisor)
        franchisee = session.get(Franchisee, args.account) if args.account else None
    if franchisor is None:
        print(f"unknown franchisor {args.franchisor!r}", file=sys.stderr)
        return 2
    if args.account and (franchisee is None or franchisee.franchisor_id != franchisor.id):
        print(f"{args.account!r} is not a franchisee of {franchisor.id!r}", file=sys.stderr)
        return 2
    if args.start and args.end and args.start > args.end:
        print("--from must be on or before --to", file=sys.stderr)
        return 2
    report = royalty_report(engine, franchisor.id, args.account, args.start, args.end)
    if args.csv:
        write_charges_csv(report.charges, sys.stdout)
        return 0

    def amounts(t: Totals) -> list[str]:
        return [str(t.charges), str(t.payments), str(t.credits), str(t.basis - t.credited_basis), str(t.royalty_due),
                str(t.marketing_due), str(t.total_due), str(t.outstanding)]

    heads = ["CHARGES", "PAYMENTS", "REFUNDS", "NET BASIS", "ROYALTY", "MARKETING", "TOTAL", "CHECK NOT WRITTEN"]
    print(f"Royalty of {report.name} ({args.account or franchisor.id}), business dates "
          f"{args.start or 'from the first run'} to {args.end or 'the latest run'}: {len(report.charges)} charge(s)")
    _print_table(["DATE", "ACCOUNT", "CHARGE", "PAYMENTS", "REFUNDS", "NET BASIS", "ROYALTY", "MARKETING", "TOTAL",
                  "CREDIT CARRIED", "STATUS", "CHECK"],
                 [[str(c.business_date), c.account_id, str(c.charge_id), str(c.payments), str(c.credits),
                   str(c.basis - c.credited_basis), str(c.royalty_due), str(c.marketing_due), str(c.total_due),
                   str(c.royalty_credit_out + c.marketing_credit_out), c.status, c.check_number or "-"]
                  for c in report.charges])
    print("\nTotals per franchisee")
    _print_table(["ACCOUNT", "NAME", *heads], [[f.account_id, f.name, *amounts(f)] for f in report.franchisees]
                 + [["TOTAL", "", *amounts(report.total)]])
    print("\nTotals per business date")
    _print_table(["DATE", *heads], [[str(d.business_date), *amounts(d)] for d in report.days])
    failures = [(run, outcome) for run in report.runs for outcome in run.failed]
    if failures:
        print("\nFailed franchisees")
        for run, outcome in failures:
            print(f"  {run.business_date} {outcome.account_id}: {outcome.error or 'no error recorded'}")
    return 0


# -- action plans ---------------------------------------------------------------------------------------
def _plan_files(settings: Settings, files: list[Path]) -> list[Path]:
    return files or sorted(settings.plans_dir.glob("*.yaml"))


def cmd_plans_validate(settings: Settings, args: argparse.Namespace) -> int:
    """Every fault of every plan, with its file, step and field; the network's step -> plan mapping too."""
    from config.plans import load_plans

    files = _plan_files(settings, args.files)
    plans, faults = load_plans(files)
    for fault in faults:
        print(fault)
    mapped = load_network(settings.network_file)
    missing = [f"{settings.network_file}: franchisees.{n}.action_plans.{step}: no plan with id {plan_id}"
               for n, franchisee in enumerate(mapped.franchisees) for step, plan_id in franchisee.action_plans.items()
               if plan_id not in plans and not args.files]
    for line in missing:
        print(line)
    if faults or missing:
        print(f"{len(faults) + len(missing)} fault(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    print(f"{len(plans)} plan(s) valid: {', '.join(f'{p.id} v{p.version}' for p in plans.values())}")
    return 0


def cmd_plans_schema(_settings: Settings, _args: argparse.Namespace) -> int:
    from config.plans import plan_json_schema

    print(json.dumps(plan_json_schema(), indent=2))
    return 0


def _load_plan(settings: Settings, plan_id: str) -> Any:
    from config.plans import PlanError, load_plan

    try:
        return load_plan(plan_id, _plan_files(settings, []))
    except PlanError as error:
        sys.exit(str(error))


async def cmd_plans_preview(settings: Settings, args: argparse.Namespace) -> int:
    """Every step rendered for the contact as the CRM has it now, through the worker; nothing is sent."""
    plan = _load_plan(settings, args.plan)
    client = await connect(settings)
    preview: PlanPreview = await client.execute_workflow(
        "PlanPreviewWorkflow", PreviewInput(account_id=args.account, contact_id=args.contact, plan=plan),
        id=f"plan-preview:{args.account}:{args.contact}:{plan.id}:{uuid.uuid4().hex[:8]}",
        task_queue=settings.task_queue, result_type=PlanPreview)
    contact = preview.contact.contact
    print(f"{plan.name} v{plan.version} for contact {contact.id} ({contact.first_name} {contact.last_name}, "
          f"email {contact.email or '-'}, phone {contact.phone or '-'}, smsok {contact.smsok})")
    faults = 0
    for number, step in enumerate(preview.steps, start=1):
        print(f"\n{number}. {step.step_id} ({step.type})")
        if step.fault:
            faults += 1
            print(f"   DOES NOT RENDER: {step.fault}")
        for path, text in step.rendered.items():
            print(f"   {path}: " + text.replace("\n", "\n   " + " " * (len(path) + 2)))
    return 1 if faults else 0


async def cmd_plans_enroll(settings: Settings, args: argparse.Namespace) -> int:
    try:
        dispatched = await enroll_contact(await connect(settings), settings, _engine(settings), args.account,
                                          args.contact, args.plan, "cli")
    except PlanNotEnrollable as error:
        print(error, file=sys.stderr)
        return 2
    print(f"{dispatched.status}: {dispatched.workflow_id}" + (f" ({dispatched.reason})" if dispatched.reason else ""))
    return 0


async def cmd_plans_show(settings: Settings, args: argparse.Namespace) -> int:
    handle = (await connect(settings)).get_workflow_handle(plan_workflow_id(args.account, args.contact, args.plan))
    state = await handle.query("state", result_type=EnrollmentState)
    print(state.model_dump_json(indent=2))
    return 0


async def cmd_plans_cancel(settings: Settings, args: argparse.Namespace) -> int:
    handle = (await connect(settings)).get_workflow_handle(plan_workflow_id(args.account, args.contact, args.plan))
    await handle.signal("cancel", CancelEnrollment(reason=args.reason))
    print(f"cancelling {handle.id}")
    return 0


def _add_plan_commands(commands: Any) -> None:
    plans = commands.add_parser("plans", help="action plans").add_subparsers(dest="sub", required=True)
    validate = plans.add_parser("validate", help="check plan files; every fault with its file, step and field")
    validate.add_argument("files", nargs="*", type=Path, help="plan files (default: every plan in config/plans)")
    validate.set_defaults(run=cmd_plans_validate)
    plans.add_parser("schema", help="print the JSON Schema of a plan file").set_defaults(run=cmd_plans_schema)
    for name, what, run in (("preview", "render every step for a contact, sending nothing", cmd_plans_preview),
                            ("enroll", "enroll a contact in a plan", cmd_plans_enroll),
                            ("show", "where a contact is in a plan", cmd_plans_show),
                            ("cancel", "end a contact's enrollment", cmd_plans_cancel)):
        command = plans.add_parser(name, help=what)
        command.add_argument("plan", help="the plan's id")
        command.add_argument("--account", required=True)
        command.add_argument("--contact", required=True, help="the CRM contact id")
        if name == "cancel":
            command.add_argument("--reason", default="cancelled from the command line")
        command.set_defaults(run=run)


# -- the demo scenario ---------------------------------------------------------------------------------
DEMO_ACCOUNT = "acme-austin"
DEMO_NUMBER = "P-9001"
DEMO_PLAN = "estimate-follow-up"
DEMO_PAY_NUMBER = "P-9002"
DEMO_DEPOSIT_AGE = 5  # days: past the royalty's 3-day wait by last night's run
DEMO_LINES = [
    {"product": "Gutter Cleaning", "description": "Two-storey home, front and back", "quantity": "1",
     "unit_price": "289.00"},
    {"product": "Downspout Flush", "description": "Per downspout", "quantity": "4", "unit_price": "17.50"},
]


def _connect_demo_network(settings: Settings, engine: Any, crm: CrmSandboxAdmin) -> None:
    """What onboarding does: the network installed, each franchisee's QBO company connected (OAuth) and its
    CRM account's keys stored, the CRM's webhooks pointed at our API with the account's secret."""
    network = load_network(settings.network_file)
    install_network(engine, network)
    for franchisee in network.franchisees:
        save_connection(engine, franchisee.qbo_realm_id,
                        connect_company(settings.qbo_api_url, franchisee.qbo_realm_id))
        account = crm.create_account(
            franchisee.account_id, franchisee.name,
            webhook_url=f"{settings.api_url}/crm/{franchisee.account_id}",
            webhook_secret=settings.crm_webhook_secrets[franchisee.account_id].get_secret_value(),
            royalty_rate=str(franchisee.royalty_rate), marketing_rate=str(franchisee.marketing_rate))
        save_crm_credentials(engine, franchisee.account_id, account["access_token"], account["web_key"])
        gateway = GatewaySandboxAdmin(settings.gateway_api_url)
        merchant = gateway.create_merchant(franchisee.name, franchisee.account_id)  # an existing one keeps its key
        gateway.set_settings(merchant["id"], surcharge_rate="3.0" if franchisee.payments.fee == "surcharge" else "0",
                             webhook_url=settings.api_url + webhook_path(settings, franchisee.account_id))
        save_gateway_credentials(engine, franchisee.account_id, merchant["api_key"])


async def play_demo(settings: Settings) -> bool:
    """Staff create a contact and a proposal in the CRM and move the contact to "Proposal Sent", twice; the
    CRM's webhook is also delivered again, as a retrying sender would. Then check that QuickBooks holds
    exactly one customer and one estimate for it, with the proposal's total. Returns whether it does."""
    engine = _engine(settings)
    crm = CrmSandboxAdmin(settings.crm_api_url)
    _connect_demo_network(settings, engine, crm)
    franchisee = _franchisee(settings, DEMO_ACCOUNT)
    await cmd_schedules_install(settings, argparse.Namespace())

    print("\n== Demo: in the CRM, Dana Whitfield gets proposal P-9001 and reaches 'Proposal Sent' ==")
    with crm_client_for(settings, engine, DEMO_ACCOUNT) as api:  # what an earlier run left is reused
        contact = api.find_contact(email="dana.whitfield@example.com") or crm.create_contact(
            DEMO_ACCOUNT, firstName="Dana", lastName="Whitfield", email="dana.whitfield@example.com",
            phone="5125550142")
        proposal = next((p for p in api.proposals(client_id=contact["client_id"])
                         if p["proposal_number"] == DEMO_NUMBER), None) or crm.create_proposal(
            DEMO_ACCOUNT, contact["client_id"], DEMO_LINES, DEMO_NUMBER)
    for _ in range(2):
        crm.move_step(DEMO_ACCOUNT, contact["client_id"], "Proposal Sent", proposal["proposal_id"])
        print(f"  CRM: contact {contact['client_id']} moved to 'Proposal Sent' (proposal {proposal['proposal_id']})")
    webhooks: list[dict[str, Any]] = []
    for _ in range(100):
        webhooks = [w for w in crm.webhooks() if w["body"]["contact"]["id"] == contact["client_id"]]
        if len(webhooks) == 2:
            break
        await asyncio.sleep(0.1)
    for webhook in webhooks:
        print(f"  CRM -> POST {webhook['url']} ({webhook['body']['event_id'][:8]}...) -> {webhook['status']}")
    if len(webhooks) != 2 or any(w["status"] != 202 for w in webhooks):
        print("Demo FAILED: the CRM's webhooks were not accepted")
        return False
    body = json.dumps(webhooks[0]["body"]).encode()
    secret = settings.crm_webhook_secrets[DEMO_ACCOUNT].get_secret_value()
    async with httpx.AsyncClient(timeout=30) as http:
        again = await http.post(webhooks[0]["url"], content=body,
                                headers={SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"})
    print(f"  CRM -> the first webhook delivered again -> {again.status_code}")

    client = await connect(settings)
    state = ProposalState()
    sent = {w["body"]["event_id"] for w in webhooks}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = await _proposal_state(client, DEMO_ACCOUNT, proposal["proposal_id"])
        if state.estimate_id and sent <= set(state.events_seen):
            break
        await asyncio.sleep(0.5)

    realm = franchisee.qbo_realm_id
    customers = [c for c in list_objects(settings.qbo_api_url, realm, "Customer")
                 if c["DisplayName"].casefold() == "dana whitfield"]
    estimates = [e for e in list_objects(settings.qbo_api_url, realm, "Estimate") if e["DocNumber"] == DEMO_NUMBER]
    with Session(engine) as session:
        audited = session.exec(select(func.count()).select_from(QboAuditLog)
                               .where(QboAuditLog.realm_id == realm)).one()
    expected = cents(sum((Decimal(line["quantity"]) * Decimal(line["unit_price"]) for line in DEMO_LINES),
                         start=Decimal(0)))
    workflow_id = proposal_workflow_id(DEMO_ACCOUNT, proposal["proposal_id"])
    ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{quote(workflow_id, safe='')}"
    ok = (sent <= set(state.events_seen) and len(customers) == 1 and len(estimates) == 1
          and state.customer_id == customers[0]["Id"]
          and state.estimate_id == estimates[0]["Id"] and Decimal(str(estimates[0]["TotalAmt"])) == expected)
    print("\n== What landed ==")
    print(f"  Temporal UI:        {settings.temporal_ui_url}")
    print(f"  Workflow:           {workflow_id}\n                      {ui}")
    print(f"  Search in the UI:   ProposalId = \"{proposal['proposal_id']}\" "
          "(also AccountId, ContactId, Franchisor, Stage)")
    print(f"  QBO company {realm} (inspect: {sandbox_root(settings.qbo_api_url)}/admin/companies/{realm}):")
    for customer in customers:
        print(f"    Customer {customer['Id']}: {customer['DisplayName']}")
    for estimate in estimates:
        print(f"    Estimate {estimate['Id']}: #{estimate['DocNumber']} total {cents(str(estimate['TotalAmt']))} "
              f"status {estimate['TxnStatus']} for customer {estimate['CustomerRef']['value']}")
    print(f"  Audit log:          {audited} QBO write(s) recorded for this company")
    print(f"  Workflow state:     stage={state.stage} customer={state.customer_id} "
          f"estimate={state.estimate_id} events={len(state.events_seen)}")
    print(f"\nEstimate {'VERIFIED' if ok else 'FAILED'}: "
          f"{len(customers)} customer(s) and {len(estimates)} estimate(s) for 3 deliveries of the event "
          f"(expected exactly 1 and 1, total {expected}).")
    return (ok and await _play_follow_up(settings, engine, client, contact)
            and await _play_job_complete(settings, engine, client, contact["client_id"], proposal["proposal_id"],
                                         expected, estimates[0]["Id"])
            and await _play_follow_up_goal(engine, contact["client_id"]))


async def _demo_wait(check: Any, seconds: float = 60) -> Any:
    """`check()` once it is truthy, or its last answer after `seconds`."""
    found = check()
    for _ in range(int(seconds * 2)):
        if found:
            break
        await asyncio.sleep(0.5)
        found = check()
    return found


async def _play_follow_up(settings: Settings, engine: Any, client: Client, contact: dict[str, Any]) -> bool:
    """The estimate out, Dana enters the estimate follow-up plan (once, however often the demo runs): its
    first email, rendered with her data, is sent exactly once."""
    print("\n== Demo: Dana enters the estimate follow-up action plan ==")
    contact_id, plan_id = str(contact["client_id"]), DEMO_PLAN
    workflow_id = plan_workflow_id(DEMO_ACCOUNT, contact_id, plan_id)
    if not ever_enrolled(engine, DEMO_ACCOUNT, contact_id, plan_id):
        dispatched = await enroll_contact(client, settings, engine, DEMO_ACCOUNT, contact_id, plan_id, "demo",
                                          trigger=f"demo:{DEMO_NUMBER}")
        print(f"  enrolled: {dispatched.status} {dispatched.workflow_id}")

    def sent() -> list[OutboxMessage]:
        with Session(engine) as session:
            return list(session.exec(select(OutboxMessage).where(
                col(OutboxMessage.idempotency_key).startswith(f"{workflow_id}/"), OutboxMessage.kind == "email",
                OutboxMessage.status == "sent")))

    emails = await _demo_wait(sent)
    for email in emails:
        print(f"    Email to {email.recipient} ({email.provider_id}), step {email.idempotency_key.split('/')[2]}")
    print(f"  The SMTP sink holds what was sent: {settings.sms_api_url}/admin/emails; "
          f"`starter.py plans show {plan_id} --account {DEMO_ACCOUNT} --contact {contact_id}`")
    ok = len(emails) == 1 and emails[0].recipient == contact["email"]
    print(f"\nAction plan {'VERIFIED' if ok else 'FAILED'}: {len(emails)} follow-up email(s) sent to Dana "
          f"(expected exactly 1).")
    return ok


async def _play_follow_up_goal(engine: Any, contact_id: str) -> bool:
    """Job Complete is one of the follow-up's goals: the CRM's webhook ends it from its wait."""
    def ended() -> str | None:
        with Session(engine) as session:
            row = session.exec(select(PlanEnrollment).where(
                PlanEnrollment.contact_id == contact_id, PlanEnrollment.plan_id == DEMO_PLAN)).first()
        return row.ended if row else None

    reason = await _demo_wait(ended)
    ok = reason == "goal"
    print(f"\nAction plan goal {'VERIFIED' if ok else 'FAILED'}: the follow-up ended {reason or 'not at all'} "
          "when Dana reached Job Complete (expected goal).")
    return ok


async def _play_job_complete(settings: Settings, engine: Any, client: Client, contact_id: str, proposal_id: str,
                             total: Decimal, estimate_id: str) -> bool:
    """A deposit, the job completed, the balance paid: one invoice from the estimate, both payments applied,
    nothing owed. A later run of the demo finds the payments made and only checks again."""
    crm = CrmSandboxAdmin(settings.crm_api_url)
    realm = _franchisee(settings, DEMO_ACCOUNT).qbo_realm_id
    print("\n== Demo: a $100 deposit, the job completed, the balance paid ==")
    with crm_client_for(settings, engine, DEMO_ACCOUNT) as api:
        made = api.proposal_payments(proposal_id)
    if not made:
        today = datetime.now(UTC).date()
        crm.add_payment(DEMO_ACCOUNT, proposal_id, Decimal("100.00"), today - timedelta(days=DEMO_DEPOSIT_AGE),
                        method="card")
        print(f"  CRM: $100.00 deposit recorded on the proposal, received {DEMO_DEPOSIT_AGE} days ago")
        crm.move_step(DEMO_ACCOUNT, contact_id, "Job Complete", proposal_id)
        print("  CRM: contact moved to 'Job Complete'")
        crm.add_payment(DEMO_ACCOUNT, proposal_id, total - Decimal("100.00"), today, method="check")
        print(f"  CRM: the balance, ${total - Decimal('100.00')}, paid by check")
    state = ProposalState()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = await _proposal_state(client, DEMO_ACCOUNT, proposal_id)
        if state.invoice_id and len(state.payments) >= 2 and all(p.applied is not None for p in state.payments):
            break
        await asyncio.sleep(0.5)
    invoices = [i for i in list_objects(settings.qbo_api_url, realm, "Invoice") if i["DocNumber"] == DEMO_NUMBER]
    payments = [p for p in list_objects(settings.qbo_api_url, realm, "Payment")
                if p["Id"] in {held.qbo_id for held in state.payments}]
    for invoice in invoices:
        print(f"    Invoice {invoice['Id']}: #{invoice['DocNumber']} total {cents(str(invoice['TotalAmt']))} "
              f"balance {cents(str(invoice['Balance']))}, from estimate {invoice['LinkedTxn'][0]['TxnId']}")
    for payment in payments:
        print(f"    Payment {payment['Id']}: {cents(str(payment['TotalAmt']))} (CRM payment "
              f"{payment['PaymentRefNum']}), unapplied {cents(str(payment['UnappliedAmt']))}")
    ok = (len(invoices) == 1 and invoices[0]["LinkedTxn"][0]["TxnId"] == estimate_id
          and cents(str(invoices[0]["TotalAmt"])) == total and cents(str(invoices[0]["Balance"])) == 0
          and len(payments) == 2 and all(cents(str(p["UnappliedAmt"])) == 0 for p in payments))
    print(f"\nDemo {'VERIFIED' if ok else 'FAILED'}: {len(invoices)} invoice(s) linked to the estimate, "
          f"{len(payments)} payment(s) applied, balance {cents(str(invoices[0]['Balance'])) if invoices else '-'} "
          f"(expected 1, 2 and 0.00).")
    return (ok and await _play_royalty(settings, engine, client, proposal_id) and await _play_lead(settings, engine)
            and await _play_collection(settings, engine, client))


async def _play_collection(settings: Settings, engine: Any, client: Client) -> bool:
    """Riley Park's job, invoiced, then $150.00 with a $20.00 tip taken by card through the gateway and
    submitted twice (a double click): one charge, one CRM payment, one QBO payment applied; Austin adds its
    3% convenience fee on the amount. A demo run again finds the payment made under the same idempotency key."""
    print(f"\n== Demo: Riley Park's proposal {DEMO_PAY_NUMBER} invoiced, then paid by card, clicked twice ==")
    crm = CrmSandboxAdmin(settings.crm_api_url)
    with crm_client_for(settings, engine, DEMO_ACCOUNT) as api:
        contact = api.find_contact(email="riley.park@example.com") or crm.create_contact(
            DEMO_ACCOUNT, firstName="Riley", lastName="Park", email="riley.park@example.com", phone="5125550177")
        contact_id = str(contact["client_id"])
        proposal = next((p for p in api.proposals(client_id=contact_id) if p["proposal_number"] == DEMO_PAY_NUMBER),
                        None) or crm.create_proposal(DEMO_ACCOUNT, contact_id, DEMO_LINES, DEMO_PAY_NUMBER)
    proposal_id = str(proposal["proposal_id"])
    for step in ("Proposal Sent", "Job Complete"):
        crm.move_step(DEMO_ACCOUNT, contact_id, step, proposal_id)
    invoiced = await _demo_wait(lambda: _saved_invoice(engine, proposal_id), seconds=90)
    if invoiced is None:
        print(f"Payment FAILED: proposal {DEMO_PAY_NUMBER} was never invoiced")
        return False
    print(f"  QBO invoice {invoiced.invoice_id}: #{invoiced.number} for {invoiced.total}, customer "
          f"{invoiced.customer_id}")

    gateway = GatewaySandboxAdmin(settings.gateway_api_url)
    card = next((m for m in gateway.merchant(DEMO_ACCOUNT)["payment_methods"]
                 if m["person_name"] == "Riley Park" and m["method"] == "card"), None) or gateway.add_payment_method(
        DEMO_ACCOUNT, "card", "Riley Park")
    body = {"proposal_id": proposal_id, "payment_method_id": card["id"], "method": "card", "amount": "150.00",
            "tip": "20.00"}
    key = f"demo-{DEMO_PAY_NUMBER}-card"
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=60,
                                 headers={"X-API-Key": create_api_key(engine, DEMO_ACCOUNT, "demo")}) as http:
        answers = await asyncio.gather(*[http.post(f"/accounts/{DEMO_ACCOUNT}/payments", json=body,
                                                   headers={"Idempotency-Key": key}) for _ in range(2)])
        for answer in answers:
            print(f"  POST /accounts/{DEMO_ACCOUNT}/payments (Idempotency-Key: {key}) -> {answer.status_code} "
                  f"{answer.json().get('status')} {answer.json().get('transaction_id')}")
        await _demo_wait(lambda: _all_applied(engine, proposal_id), seconds=90)
        balance = (await http.get(f"/accounts/{DEMO_ACCOUNT}/customers/{invoiced.customer_id}/balance")).json()
    charges = [c for c in gateway.charges(DEMO_ACCOUNT, card["id"]) if c["idempotency_id"].endswith(f":{key}")]
    payments = [p for p in list_objects(settings.qbo_api_url, invoiced.realm_id, "Payment")
                if p["CustomerRef"]["value"] == invoiced.customer_id and cents(str(p["TotalAmt"])) > 0]
    for charge in charges:
        print(f"    Gateway charge {charge['id']}: {charge['total']} (card), idempotency id {charge['idempotency_id']}")
    for payment in payments:
        print(f"    QBO payment {payment['Id']}: {cents(str(payment['TotalAmt']))}, unapplied "
              f"{cents(str(payment['UnappliedAmt']))}")
    print(f"    Balance of customer {invoiced.customer_id}: {balance['total_balance']} "
          f"({balance['open_invoices']} open invoice(s))")
    paid = Decimal("174.50")  # 150.00 + 20.00 tip + 4.50 (3% of 150.00)
    ok = (all(a.status_code == 200 for a in answers) and len({a.json()["transaction_id"] for a in answers}) == 1
          and len(charges) == 1 and cents(str(charges[0]["total"])) == paid and len(payments) == 1
          and cents(balance["total_balance"]) == invoiced.total - paid)
    print(f"\nPayment {'VERIFIED' if ok else 'FAILED'}: {len(charges)} charge(s) of {paid} and {len(payments)} QBO "
          f"payment(s) for 2 submits; balance {balance['total_balance']} (expected 1, 1 and "
          f"{invoiced.total - paid}).")
    return ok


def _saved_invoice(engine: Any, proposal_id: str) -> LedgerInvoice | None:
    with Session(engine) as session:
        return session.get(LedgerInvoice, (DEMO_ACCOUNT, proposal_id))


def _all_applied(engine: Any, proposal_id: str) -> bool:
    with Session(engine) as session:
        rows = session.exec(select(LedgerPayment).where(LedgerPayment.account_id == DEMO_ACCOUNT,
                                                        LedgerPayment.proposal_id == proposal_id)).all()
    return bool(rows) and all(r.applied_to_invoice is not None for r in rows)


async def _play_royalty(settings: Settings, engine: Any, client: Client, proposal_id: str) -> bool:
    """Last night's royalty run, as the schedule starts it: the deposit, past the waiting period, is charged
    exactly once (by this run or an earlier demo's) and its check stands once in Austin's QBO file."""
    franchisee = _franchisee(settings, DEMO_ACCOUNT)
    with Session(engine) as session:
        franchisor = session.get(Franchisor, franchisee.franchisor_id)
    assert franchisor is not None
    business = royalty_dates.business_date(datetime.now(UTC), franchisor.time_zone)
    print(f"\n== Demo: the nightly royalty of {franchisor.name} for {business} ==")
    result = await (await start_royalty_run(client, settings, franchisor.id, business)).result()
    for outcome in result.outcomes:
        print(f"  {outcome.account_id:<14} {outcome.status:<17} {outcome.error or ''}")
    with Session(engine) as session:
        covering = session.exec(select(RoyaltyCharge).join(RoyaltyItem, col(RoyaltyItem.charge_id) == RoyaltyCharge.id)
                                .where(RoyaltyItem.account_id == DEMO_ACCOUNT, RoyaltyItem.proposal_id == proposal_id,
                                       RoyaltyItem.kind == "charge")).all()
    checks = [p for p in list_objects(settings.qbo_api_url, franchisee.qbo_realm_id, "Purchase")
              if covering and p["DocNumber"] == covering[0].check_number]
    expected = cents(Decimal("100.00") * (franchisee.royalty_rate + franchisee.marketing_rate))
    for check in checks:
        print(f"    Check {check['Id']}: #{check['DocNumber']} {cents(str(check['TotalAmt']))} to "
              f"{check['EntityRef']['name']} from {check['AccountRef']['name']}")
    ok = (len(covering) == 1 and len(checks) == 1 and cents(str(checks[0]["TotalAmt"])) == expected
          and not result.failed)
    print(f"  Report: {settings.api_url}/franchisors/{franchisor.id}/royalty with a franchisor key "
          f"(`starter.py keys create --account {franchisor.id}`), or `starter.py royalty report --franchisor "
          f"{franchisor.id}`")
    print(f"\nRoyalty {'VERIFIED' if ok else 'FAILED'}: the deposit charged by {len(covering)} run(s), "
          f"{len(checks)} check(s) of {cents(str(checks[0]['TotalAmt'])) if checks else '-'} in "
          f"{franchisee.name}'s books "
          f"(expected 1, 1 and {expected}: the deposit's royalty and marketing fee).")
    return ok


DEMO_LEAD = {"name": "Sam Ortiz", "firstName": "Sam", "lastName": "Ortiz", "email": "sam.ortiz@example.com",
             "primaryPhone": "(512) 555-0177", "city": "Austin", "stateProvince": "TX", "postalCode": "78704",
             "leadOid": "DEMO-ANGI-1", "taskName": "Gutter Cleaning", "comments": "Two-story, back gate",
             "interview": [{"question": "How many stories?", "answer": "2"}]}


async def _play_lead(settings: Settings, engine: Any) -> bool:
    """An Angi lead arrives twice at once (its email parser resends it): one CRM contact with Angi as its lead
    source and the interview in its history, both posts in the API monitor (a demo run again finds both
    duplicates of the contact it made before)."""
    print("\n== Demo: an Angi lead, Sam Ortiz, posted twice at once ==")
    key = create_lead_key(engine, DEMO_ACCOUNT, LeadChannel.ANGI)
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=30) as http:
        answers = await asyncio.gather(*[http.post(f"/leads/angi/{key}", json=DEMO_LEAD) for _ in range(2)])
    for answer in answers:
        print(f"  Angi -> POST /leads/angi/{key[:8]}... -> {answer.status_code} {answer.text[:110]}")
    ids = {a.json().get("receipt") for a in answers if a.status_code == 200}

    def settled() -> list[Any]:
        rows = [r for r in receipts(engine, DEMO_ACCOUNT, limit=200) if r.id in ids]
        return rows if len(rows) == 2 and all(r.outcome != Outcome.RECEIVED for r in rows) else []

    rows = await _demo_wait(settled)
    for row in rows:
        print(f"    Monitor #{row.id}: {row.outcome} contact {row.contact_id} ({row.reason})")
    with crm_client_for(settings, engine, DEMO_ACCOUNT) as crm:
        contacts = [c for c in crm.contacts() if c["email"] == DEMO_LEAD["email"]]
        sources = {str(s["lead_source_id"]): s["lead_source_name"] for s in crm.lead_sources()}
        notes = [n for c in contacts for n in crm.history_notes(str(c["client_id"]))
                 if "[ledgerflow lead-source:angi]" in n["note"]]
    for contact in contacts:
        print(f"    CRM contact {contact['client_id']}: {contact['firstName']} {contact['lastName']}, phone "
              f"{contact['phone']}, lead source {sources.get(str(contact.get('lead_source_id')), '-')}")
    print(f"  Monitor: GET {settings.api_url}/accounts/{DEMO_ACCOUNT}/leads, or `starter.py leads monitor "
          f"--account {DEMO_ACCOUNT}`")
    ok = (len(ids) == 2 and len(rows) == 2 and len(contacts) == 1 and len(notes) == 1
          and {r.contact_id for r in rows} == {str(contacts[0]["client_id"])}
          and sources.get(str(contacts[0].get("lead_source_id"))) == "Angi")
    print(f"\nLead {'VERIFIED' if ok else 'FAILED'}: {len(contacts)} contact(s) and {len(notes)} Angi note(s) "
          f"for 2 posts of the lead (expected exactly 1 and 1).")
    return ok


async def cmd_demo(settings: Settings, _args: argparse.Namespace) -> int:
    return 0 if await play_demo(settings) else 1


# -- API keys and the QBO audit log ---------------------------------------------------------------------
def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Plain aligned columns: readable in a terminal, easy to grep."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    """The key goes alone to stdout (for scripts), the warning to stderr: only its hash is kept."""
    try:
        key = create_api_key(_engine(settings), args.account, args.label)
    except ValueError as error:
        sys.exit(str(error))
    print(key)
    print(f"API key {key[:8]}... for {args.account}: store it now, it will not be shown again.", file=sys.stderr)
    return 0


def cmd_keys_list(settings: Settings, args: argparse.Namespace) -> int:
    keys = list_api_keys(_engine(settings), args.account)
    _print_table(["PREFIX", "ACCOUNT", "SCOPE", "LABEL", "CREATED", "REVOKED"],
                 [[k.prefix, k.account_id, k.scope, k.label or "-", _when(k.created_at), _when(k.revoked_at)]
                  for k in keys])
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    key = revoke_api_key(_engine(settings), args.prefix)
    if key is None:
        sys.exit(f"no API key has the prefix {args.prefix!r} (see `starter.py keys list`)")
    print(f"revoked {key.prefix} ({key.scope} {key.account_id}) at {_when(key.revoked_at)}")
    return 0


def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    """The account's QBO writes, newest first, as the API's audit endpoint gives them."""
    if not 1 <= args.limit <= 500:
        sys.exit("--limit must be between 1 and 500")
    realm = _franchisee(settings, args.account).qbo_realm_id
    rows = audit_page(_engine(settings), realm, limit=args.limit)
    print(f"QBO audit log of {args.account} (company {realm}): {len(rows)} row(s), newest first")
    _print_table(["ID", "SENT", "ENTITY", "OP", "STATUS", "QBO ID", "ATTEMPT", "WORKFLOW", "REQUEST ID", "ERROR"],
                 [[str(r.id), _when(r.sent_at), r.entity, r.operation, r.status, r.qbo_id or "-",
                   str(r.activity_attempt or "-"), r.workflow_id or "-", r.request_id,
                   (r.error or "-").replace("\n", " ")[:60]] for r in rows])
    return 0


def _add_key_and_audit_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys for the read side of the HTTP API").add_subparsers(
        dest="sub", required=True)
    create = keys.add_parser("create", help="make a key for a franchisee account or a franchisor; shown once")
    create.add_argument("--account", required=True, help="a franchisee account id or a franchisor id")
    create.add_argument("--label", default="", help="what the key is for, shown in `keys list`")
    create.set_defaults(run=cmd_keys_create)
    listing = keys.add_parser("list", help="every key: prefix, account, scope, label, created, revoked")
    listing.add_argument("--account")
    listing.set_defaults(run=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by its prefix")
    revoke.add_argument("prefix")
    revoke.set_defaults(run=cmd_keys_revoke)

    audit = commands.add_parser("audit", help="an account's QBO audit log: every body sent, newest first")
    audit.add_argument("--account", required=True)
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(run=cmd_audit)


def cmd_leads_key(settings: Settings, args: argparse.Namespace) -> int:
    """The key alone to stdout, and where the source posts with it to stderr: only its hash is kept."""
    channel = LeadChannel(args.channel)
    try:
        key = create_lead_key(_engine(settings), args.account, channel, args.lead_source, args.api_key)
    except ValueError as error:
        sys.exit(str(error))
    print(key)
    where = ("POST /leads/web-form with the field web_key=<key>" if channel is LeadChannel.WEB_FORM
             else f"POST /leads/{channel.value}/<key>")
    print(f"{channel.value} key {key[:8]}... for {args.account} ({args.lead_source or 'its default lead source'}): "
          f"{where}. Store it now, it will not be shown again.", file=sys.stderr)
    return 0


def cmd_leads_monitor(settings: Settings, args: argparse.Namespace) -> int:
    """The API monitor: every lead and captured email the account received, newest first."""
    _franchisee(settings, args.account)
    rows = receipts(_engine(settings), args.account, limit=args.limit, outcome=args.outcome)
    _print_table(["ID", "RECEIVED", "SOURCE", "LEAD ID", "WHO", "OUTCOME", "CONTACT", "WORKFLOW", "WHY"],
                 [[str(r.id), _when(r.received_at), r.channel, (r.lead_id or "-")[:24], r.who[:30] or "-",
                   r.outcome, r.contact_id or "-", r.workflow_id or "-", (r.reason or "-").replace("\n", " ")[:70]]
                  for r in rows])
    return 0


def cmd_leads_keys(settings: Settings, args: argparse.Namespace) -> int:
    _print_table(["PREFIX", "ACCOUNT", "CHANNEL", "LEAD SOURCE", "X-API-KEY", "CREATED", "REVOKED"],
                 [[k.prefix, k.account_id, k.channel, k.lead_source or "-", "yes" if k.api_key_hash else "-",
                   _when(k.created_at), _when(k.revoked_at)] for k in list_lead_keys(_engine(settings), args.account)])
    return 0


def cmd_leads_revoke(settings: Settings, args: argparse.Namespace) -> int:
    key = revoke_lead_key(_engine(settings), args.prefix)
    if key is None:
        sys.exit(f"no lead key has the prefix {args.prefix!r} (see `starter.py leads keys --account A`)")
    print(f"revoked {key.prefix} ({key.channel} of {key.account_id}) at {_when(key.revoked_at)}")
    return 0


def _add_lead_commands(commands: Any) -> None:
    leads = commands.add_parser("leads", help="lead intake").add_subparsers(dest="sub", required=True)
    key = leads.add_parser("key", help="make a key a lead source posts with; shown once")
    key.add_argument("--account", required=True, help="a franchisee account (a franchisor for a shared Thumbtack key)")
    key.add_argument("--channel", required=True, choices=[c.value for c in LeadChannel])
    key.add_argument("--lead-source", help="the CRM lead source its leads get (and whose plan they start)")
    key.add_argument("--api-key", help="Angi's x-api-key, required on every post when set")
    key.set_defaults(run=cmd_leads_key)
    keys = leads.add_parser("keys", help="an account's lead keys: prefix, channel, lead source, revoked")
    keys.add_argument("--account", required=True)
    keys.set_defaults(run=cmd_leads_keys)
    revoke = leads.add_parser("revoke", help="revoke a lead key by its prefix: its posts get 404/401 from now on")
    revoke.add_argument("prefix")
    revoke.set_defaults(run=cmd_leads_revoke)
    monitor = leads.add_parser("monitor", help="every lead received: source, outcome and why, its workflow")
    monitor.add_argument("--account", required=True)
    monitor.add_argument("--outcome", choices=[o.value for o in Outcome])
    monitor.add_argument("--limit", type=int, default=50)
    monitor.set_defaults(run=cmd_leads_monitor)


# -- payments ---------------------------------------------------------------------------------------------
def _payment_proposal(settings: Settings, args: argparse.Namespace) -> str:
    """--proposal, or the proposal --invoice was made from."""
    if args.proposal:
        return str(args.proposal)
    with Session(_engine(settings)) as session:
        proposal_id = proposal_for_invoice(session, args.account, args.invoice)
    if proposal_id is None:
        sys.exit(f"no invoice {args.invoice!r} in account {args.account!r} (has its proposal been invoiced?)")
    return proposal_id


async def cmd_pay(settings: Settings, args: argparse.Namespace) -> int:
    """Collect a payment now, once per --key: the same key again prints the first payment's outcome."""
    franchisee = _franchisee(settings, args.account)
    request = CollectPayment(account_id=args.account, collection_key=args.key,
                             proposal_id=_payment_proposal(settings, args), payment_method_id=args.payment_method,
                             method=args.method, amount=args.amount, tip=args.tip, note=args.note)
    handle = await start_collection(await connect(settings), settings, franchisee, request)
    result = await handle.result()
    print(result.model_dump_json(indent=2))
    return 0 if result.status == CollectionStatus.CHARGED else 4


async def cmd_payments_refund(settings: Settings, args: argparse.Namespace) -> int:
    """Give a collected payment back in full (voided before it settles, refunded after), once."""
    handle = await start_refund(await connect(settings), settings, _franchisee(settings, args.account),
                                RefundPayment(account_id=args.account, collection_key=args.key, reason=args.reason))
    print((await handle.result()).model_dump_json(indent=2))
    return 0


async def cmd_payments_schedule(settings: Settings, args: argparse.Namespace) -> int:
    franchisee = _franchisee(settings, args.account)
    payments = PaymentSettings.model_validate(franchisee.payments)
    request = SchedulePayment(account_id=args.account, schedule_id=args.id,
                              proposal_id=_payment_proposal(settings, args), payment_method_id=args.payment_method,
                              method=args.method, amount=args.amount, pay_on=args.on,
                              charge_at=payments.charge_at(args.on, franchisee.time_zone))
    handle = await start_scheduled_payment(await connect(settings), settings, franchisee, request)
    print(f"scheduled {handle.id}: up to {args.amount} on {args.on} at {payments.scheduled_payment_time} "
          f"{franchisee.time_zone}")
    return 0


async def cmd_payments_reschedule(settings: Settings, args: argparse.Namespace) -> int:
    franchisee = _franchisee(settings, args.account)
    payments = PaymentSettings.model_validate(franchisee.payments)
    handle = (await connect(settings)).get_workflow_handle(scheduled_workflow_id(args.account, args.id))
    await handle.signal("reschedule", Reschedule(pay_on=args.on, charge_at=payments.charge_at(
        args.on, franchisee.time_zone), amount=args.amount))
    print(f"rescheduled {handle.id} to {args.on}")
    return 0


async def cmd_payments_cancel(settings: Settings, args: argparse.Namespace) -> int:
    handle = (await connect(settings)).get_workflow_handle(scheduled_workflow_id(args.account, args.id))
    await handle.signal("cancel")
    print(f"cancelled {handle.id}")
    return 0


def cmd_balance(settings: Settings, args: argparse.Namespace) -> int:
    """A QBO customer's balance and open invoices, from the ledger."""
    franchisee = _franchisee(settings, args.account)
    today = local_today(franchisee.time_zone)
    with Session(_engine(settings)) as session:
        balance = customer_balance(session, args.account, args.customer, today)
        invoices = open_invoices(session, args.account, args.customer)
    print(f"customer {args.customer}: balance {balance.total_balance}, past due {balance.total_past_due}, "
          f"{balance.open_invoices} open (oldest {balance.oldest_invoice or '-'}), "
          f"unapplied credit {balance.unapplied_credit}")
    _print_table(["invoice", "number", "issued", "due", "amount due", "autopay"],
                 [[i.invoice_id, i.number, str(i.issued_on), str(i.due_on), str(i.amount_due),
                   "excluded" if i.excluded else "yes"] for i in invoices])
    return 0


async def cmd_autopay_run(settings: Settings, args: argparse.Namespace) -> int:
    """Run an account's autopay cycle for a day now (today, local, unless --date)."""
    franchisee = _franchisee(settings, args.account)
    day = args.date or local_today(franchisee.time_zone)
    result = await (await start_autopay_cycle(await connect(settings), settings, franchisee, day)).result()
    _print_table(["invoice", "configuration", "status", "charged"],
                 [[o.invoice_number, o.config_id, o.result.status.value, str(o.result.charged)]
                  for o in result.outcomes])
    return 0


def cmd_autopay_set(settings: Settings, args: argparse.Namespace) -> int:
    """Replace a customer's autopay configurations with those in a JSON file (a list)."""
    configs = [AutopayConfig.model_validate(c) for c in json.loads(Path(args.file).read_text())]
    try:
        saved = replace_configs(_engine(settings), args.account, args.customer, configs,
                                "customer" if args.as_customer else "staff")
    except (ValueError, ConfigLocked) as refused:
        sys.exit(f"refused: {refused}")
    print(f"{len(saved)} autopay configuration(s) for customer {args.customer}: "
          f"{', '.join(c.id for c in saved) or 'none'}")
    return 0


def _secret_from_stdin(what: str) -> str:
    """A secret read from stdin (one line), so it stays out of the process list and the shell's history."""
    if sys.stdin.isatty():
        print(f"{what}: ", end="", file=sys.stderr, flush=True)
    secret = sys.stdin.readline().strip()
    if not secret:
        sys.exit(f"no {what} on stdin")
    return secret


def cmd_gateway_connect(settings: Settings, args: argparse.Namespace) -> int:
    """Store an account's gateway API key (encrypted) and print the webhook URL to give the gateway."""
    _franchisee(settings, args.account)
    save_gateway_credentials(_engine(settings), args.account, args.api_key or _secret_from_stdin("gateway API key"))
    api = f"http://{settings.api_host}:{settings.api_port}"
    print(f"gateway key stored for {args.account}; webhook URL: {api}{webhook_path(settings, args.account)}")
    return 0


def _add_payment_commands(commands: Any) -> None:
    def target(command: Any) -> None:
        command.add_argument("--account", required=True)
        which = command.add_mutually_exclusive_group(required=True)
        which.add_argument("--proposal")
        which.add_argument("--invoice", help="a QBO invoice id: the payment is for its proposal")
        command.add_argument("--method", choices=["card", "bank"], required=True)
        command.add_argument("--payment-method", required=True, help="the gateway's payment method id")
        command.add_argument("--amount", type=Decimal, required=True)

    pay = commands.add_parser("pay", help="collect a payment through the gateway now")
    target(pay)
    pay.add_argument("--key", required=True, help="the idempotency key: the same key never charges twice")
    pay.add_argument("--tip", type=Decimal, default=Decimal("0"))
    pay.add_argument("--note")
    pay.set_defaults(run=cmd_pay)
    payments = commands.add_parser("payments", help="refunds and scheduled payments").add_subparsers(
        dest="sub", required=True)
    refund = payments.add_parser("refund", help="give a collected payment back in full")
    refund.add_argument("--account", required=True)
    refund.add_argument("--key", required=True, help="the payment's idempotency key")
    refund.add_argument("--reason")
    refund.set_defaults(run=cmd_payments_refund)
    schedule = payments.add_parser("schedule", help="pay up to --amount on a date (less when less is due)")
    target(schedule)
    schedule.add_argument("--id", required=True)
    schedule.add_argument("--on", type=date.fromisoformat, required=True)
    schedule.set_defaults(run=cmd_payments_schedule)
    reschedule = payments.add_parser("reschedule", help="move a scheduled payment (and its amount)")
    reschedule.add_argument("--account", required=True)
    reschedule.add_argument("--id", required=True)
    reschedule.add_argument("--on", type=date.fromisoformat, required=True)
    reschedule.add_argument("--amount", type=Decimal)
    reschedule.set_defaults(run=cmd_payments_reschedule)
    cancel = payments.add_parser("cancel", help="cancel a scheduled payment")
    cancel.add_argument("--account", required=True)
    cancel.add_argument("--id", required=True)
    cancel.set_defaults(run=cmd_payments_cancel)

    balance = commands.add_parser("balance", help="a customer's balance and open invoices")
    balance.add_argument("--account", required=True)
    balance.add_argument("--customer", required=True, help="the QBO customer id")
    balance.set_defaults(run=cmd_balance)
    autopay = commands.add_parser("autopay", help="autopay").add_subparsers(dest="sub", required=True)
    run = autopay.add_parser("run", help="run an account's autopay cycle now")
    run.add_argument("--account", required=True)
    run.add_argument("--date", type=date.fromisoformat)
    run.set_defaults(run=cmd_autopay_run)
    configure = autopay.add_parser("set", help="replace a customer's autopay configurations from a JSON file")
    configure.add_argument("--account", required=True)
    configure.add_argument("--customer", required=True)
    configure.add_argument("--file", required=True)
    configure.add_argument("--as-customer", action="store_true", help="as the customer: locked ones stay")
    configure.set_defaults(run=cmd_autopay_set)
    gateway = commands.add_parser("gateway", help="the payment gateway").add_subparsers(dest="sub", required=True)
    connect_gateway = gateway.add_parser("connect", help="store an account's gateway API key")
    connect_gateway.add_argument("--account", required=True)
    connect_gateway.add_argument("--api-key", help="the key; without it, read from stdin (kept out of `ps`)")
    connect_gateway.set_defaults(run=cmd_gateway_connect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starter.py", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    network = commands.add_parser("network", help="the franchise network").add_subparsers(dest="sub", required=True)
    install = network.add_parser("install", help="load config/network.yaml into the database")
    install.add_argument("--file", type=Path)
    install.set_defaults(run=cmd_network_install)

    qbo = commands.add_parser("qbo", help="QuickBooks companies").add_subparsers(dest="sub", required=True)
    qbo_connect = qbo.add_parser("connect", help="connect a company of the QBO sandbox")
    qbo_connect.add_argument("--realm", required=True)
    qbo_connect.set_defaults(run=cmd_qbo_connect)

    event = commands.add_parser("event", help="send a CRM event").add_subparsers(dest="sub", required=True)
    sales = event.add_parser("sales-cycle", help="a contact's sales-cycle step changed")
    sales.add_argument("--json", help="a SalesCycleChange JSON file (instead of the flags below)")
    sales.add_argument("--account")
    sales.add_argument("--step")
    sales.add_argument("--event-id")
    sales.add_argument("--contact-id")
    sales.add_argument("--first-name", default="")
    sales.add_argument("--last-name", default="")
    sales.add_argument("--company")
    sales.add_argument("--email")
    sales.add_argument("--proposal-id")
    sales.add_argument("--number")
    sales.add_argument("--line", action="append", default=[], help="'description|quantity|unit price'")
    sales.set_defaults(run=cmd_event)
    for kind, (what, _model, _send) in JSON_EVENTS.items():
        other = event.add_parser(kind, help=what)
        other.add_argument("--json", required=True, help="the event as JSON, in the webhook's shape")
        other.set_defaults(run=cmd_event)

    proposal = commands.add_parser("proposal", help="proposals").add_subparsers(dest="sub", required=True)
    show = proposal.add_parser("show", help="what the proposal's workflow has done")
    show.add_argument("--account", required=True)
    show.add_argument("--proposal", required=True)
    show.set_defaults(run=cmd_proposal_show)
    retry = proposal.add_parser("retry", help="try a stuck proposal's steps again now")
    retry.add_argument("--account", required=True)
    retry.add_argument("--proposal", required=True)
    retry.set_defaults(run=cmd_proposal_retry)

    sync = commands.add_parser("sync", help="reconcile an account from the CRM now")
    sync.add_argument("--account", required=True)
    sync.add_argument("--full", action="store_true", help="every proposal, not only those changed since last time")
    sync.add_argument("--wait", action="store_true", help="wait for the sync to finish and report it")
    sync.set_defaults(run=cmd_sync)

    schedules = commands.add_parser("schedules", help="Temporal schedules").add_subparsers(dest="sub", required=True)
    schedules_install = schedules.add_parser(
        "install", help="install or update every account's reconciliation and autopay, every franchisor's royalty")
    schedules_install.set_defaults(run=cmd_schedules_install)

    royalty = commands.add_parser("royalty", help="royalty runs").add_subparsers(dest="sub", required=True)
    royalty_run = royalty.add_parser("run", help="charge a franchisor's royalty for a business date now")
    royalty_run.add_argument("--franchisor", required=True)
    royalty_run.add_argument("--date", type=date.fromisoformat, help="the business date (default: yesterday, local)")
    royalty_run.add_argument("--wait", action="store_true", help="wait for the run and print each franchisee")
    royalty_run.set_defaults(run=cmd_royalty_run)
    royalty_report = royalty.add_parser("report", help="charges and totals per franchisee and day, or CSV")
    royalty_report.add_argument("--franchisor", required=True)
    royalty_report.add_argument("--account", help="one franchisee of the franchisor")
    royalty_report.add_argument("--from", dest="start", type=date.fromisoformat, metavar="DATE",
                                help="the first business date (YYYY-MM-DD)")
    royalty_report.add_argument("--to", dest="end", type=date.fromisoformat, metavar="DATE",
                                help="the last business date")
    royalty_report.add_argument("--csv", action="store_true", help="the charges as CSV on stdout")
    royalty_report.set_defaults(run=cmd_royalty_report)

    _add_key_and_audit_commands(commands)
    _add_plan_commands(commands)
    _add_lead_commands(commands)
    _add_payment_commands(commands)

    demo = commands.add_parser("demo", help="play the demo scenario against a running stack")
    demo.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = get_settings()
    result = args.run(settings, args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown: the SDK's runtime thread can abort it (sdk-python#300)
