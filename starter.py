"""The Ledgerflow command line: install the network, connect QBO companies, send CRM events, inspect
proposals, and play the demo scenario against a running stack."""

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from sqlmodel import Session, func, select
from temporalio.client import Client

from config.network import install_network, load_network
from config.settings import Settings, get_settings
from config.temporal import connect
from dispatch import send_sales_cycle_change
from models.accounts import Franchisee
from models.audit import QboAuditLog
from models.crm_webhooks import SIGNATURE_HEADER, sign
from models.db import create_tables, get_engine
from models.money import cents
from models.proposals import (
    CrmContact,
    Proposal,
    ProposalLine,
    ProposalState,
    SalesCycleChange,
    proposal_workflow_id,
)
from models.qbo_connection import save_connection
from sandbox.qbo.admin import connect_company, list_objects
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


async def cmd_event(settings: Settings, args: argparse.Namespace) -> int:
    change = _change_from_args(args)
    client = await connect(settings)
    dispatched = await send_sales_cycle_change(client, settings, _franchisee(settings, change.account_id), change)
    print(json.dumps(dispatched.__dict__))
    return 0 if dispatched.status == "accepted" else 3


async def _proposal_state(client: Client, account_id: str, proposal_id: str) -> ProposalState:
    handle = client.get_workflow_handle(proposal_workflow_id(account_id, proposal_id))
    return await handle.query(ProposalWorkflow.state)


async def cmd_proposal_show(settings: Settings, args: argparse.Namespace) -> int:
    state = await _proposal_state(await connect(settings), args.account, args.proposal)
    print(state.model_dump_json(indent=2))
    return 0


# -- the demo scenario ---------------------------------------------------------------------------------
DEMO_ACCOUNT = "acme-austin"


def demo_change(event_id: str) -> SalesCycleChange:
    return SalesCycleChange(
        event_id=event_id,
        account_id=DEMO_ACCOUNT,
        sales_cycle_step="Proposal Sent",
        occurred_at=datetime(2026, 11, 20, 15, 30, tzinfo=UTC),
        contact=CrmContact(id="C-5001", first_name="Dana", last_name="Whitfield",
                           email="dana.whitfield@example.com", phone="5125550142"),
        proposal=Proposal(id="P-9001", number="P-9001", lines=[
            ProposalLine(description="Gutter cleaning, two-storey home", quantity=Decimal(1),
                         unit_price=Decimal("289.00")),
            ProposalLine(description="Downspout flush", quantity=Decimal(4), unit_price=Decimal("17.50")),
        ]),
    )


async def play_demo(settings: Settings) -> bool:
    """Send one proposal event through the HTTP front door, twice plus a re-delivery under a new event id,
    then check QuickBooks holds exactly one customer and one estimate for it. Returns whether it did."""
    engine = _engine(settings)
    network = load_network(settings.network_file)
    install_network(engine, network)
    for franchisee in network.franchisees:
        save_connection(engine, franchisee.qbo_realm_id,
                        connect_company(settings.qbo_api_url, franchisee.qbo_realm_id))
    franchisee = _franchisee(settings, DEMO_ACCOUNT)
    secret = settings.crm_webhook_secrets[DEMO_ACCOUNT].get_secret_value()

    print("\n== Demo: a contact reaches 'Proposal Sent' in the CRM ==")
    async with httpx.AsyncClient(base_url=settings.api_url, timeout=30) as api:
        for event_id in ("demo-evt-1", "demo-evt-1", "demo-evt-2"):
            body = demo_change(event_id).model_dump_json().encode()
            response = await api.post(f"/crm/{DEMO_ACCOUNT}/sales-cycle", content=body,
                                      headers={SIGNATURE_HEADER: sign(secret, body),
                                               "Content-Type": "application/json"})
            print(f"  POST /crm/{DEMO_ACCOUNT}/sales-cycle ({event_id}) -> {response.status_code} {response.text}")
            if response.status_code != 202:
                return False

    change = demo_change("demo")
    assert change.proposal is not None
    client = await connect(settings)
    state = ProposalState()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = await _proposal_state(client, DEMO_ACCOUNT, change.proposal.id)
        if state.estimate_id and {"demo-evt-1", "demo-evt-2"} <= set(state.events_seen):
            break
        await asyncio.sleep(0.5)

    realm = franchisee.qbo_realm_id
    customers = [c for c in list_objects(settings.qbo_api_url, realm, "Customer")
                 if c["DisplayName"].casefold() == change.contact.display_name.casefold()]
    estimates = [e for e in list_objects(settings.qbo_api_url, realm, "Estimate")
                 if e["DocNumber"] == change.proposal.number]
    with Session(engine) as session:
        audited = session.exec(select(func.count()).select_from(QboAuditLog)
                               .where(QboAuditLog.realm_id == realm)).one()

    workflow_id = proposal_workflow_id(DEMO_ACCOUNT, change.proposal.id)
    ui = f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{quote(workflow_id, safe='')}"
    ok = (len(customers) == 1 and len(estimates) == 1 and state.customer_id == customers[0]["Id"]
          and state.estimate_id == estimates[0]["Id"]
          and Decimal(str(estimates[0]["TotalAmt"])) == change.proposal.total)
    print("\n== What landed ==")
    print(f"  Temporal UI:        {settings.temporal_ui_url}")
    print(f"  Workflow:           {workflow_id}\n                      {ui}")
    print(f"  Search in the UI:   ProposalId = \"{change.proposal.id}\" (also AccountId, ContactId, Franchisor, Stage)")
    print(f"  QBO company {realm}:")
    for customer in customers:
        print(f"    Customer {customer['Id']}: {customer['DisplayName']}")
    for estimate in estimates:
        print(f"    Estimate {estimate['Id']}: #{estimate['DocNumber']} total {cents(str(estimate['TotalAmt']))} "
              f"status {estimate['TxnStatus']} for customer {estimate['CustomerRef']['value']}")
    print(f"  Audit log:          {audited} QBO write(s) recorded for this company")
    print(f"  Workflow state:     stage={state.stage} customer={state.customer_id} "
          f"estimate={state.estimate_id} events={state.events_seen}")
    print(f"\nDemo {'VERIFIED' if ok else 'FAILED'}: "
          f"{len(customers)} customer(s) and {len(estimates)} estimate(s) for 3 deliveries of the event "
          f"(expected exactly 1 and 1, total {change.proposal.total}).")
    return ok


async def cmd_demo(settings: Settings, _args: argparse.Namespace) -> int:
    return 0 if await play_demo(settings) else 1


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

    proposal = commands.add_parser("proposal", help="proposals").add_subparsers(dest="sub", required=True)
    show = proposal.add_parser("show", help="what the proposal's workflow has done")
    show.add_argument("--account", required=True)
    show.add_argument("--proposal", required=True)
    show.set_defaults(run=cmd_proposal_show)

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
