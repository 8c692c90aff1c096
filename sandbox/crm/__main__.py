"""The CRM sandbox from the command line.

    python -m sandbox.crm serve --port 8720
    python -m sandbox.crm contact --account acme-austin --first Dana --last Whitfield --email dana@example.com
    python -m sandbox.crm proposal --account acme-austin --contact 1001 --number P-1 --line "Roof|Inspection|1|149.00"
    python -m sandbox.crm step --account acme-austin --contact 1001 --step "Proposal Sent"
    python -m sandbox.crm payment --account acme-austin --proposal 1002 --amount 100.00 --date 2026-11-20
    python -m sandbox.crm webhooks
"""

import argparse
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import uvicorn

from config.settings import get_settings
from sandbox.crm.admin import CrmSandboxAdmin
from sandbox.crm.app import create_app
from sandbox.crm.store import CrmStore


def _line(text: str) -> dict[str, str]:
    product, description, quantity, unit_price = text.split("|")
    return {"product": product, "description": description, "quantity": quantity, "unit_price": unit_price}


def main() -> None:
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m sandbox.crm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=settings.crm_api_url, help="the running sandbox (for the admin commands)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the sandbox")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=settings.crm_sandbox_port)
    serve.add_argument("--state-file", type=Path, default=None,
                       help="keep the CRM's records in this JSON file across restarts (default: in memory)")
    contact = commands.add_parser("contact", help="create a contact")
    contact.add_argument("--account", required=True)
    contact.add_argument("--first", default="")
    contact.add_argument("--last", default="")
    contact.add_argument("--email", default="")
    contact.add_argument("--phone", default="")
    proposal = commands.add_parser("proposal", help="create a proposal")
    proposal.add_argument("--account", required=True)
    proposal.add_argument("--contact", required=True)
    proposal.add_argument("--number")
    proposal.add_argument("--line", action="append", required=True, help="'product|description|quantity|price'")
    step = commands.add_parser("step", help="move a contact to a sales-cycle step (sends the webhook)")
    step.add_argument("--account", required=True)
    step.add_argument("--contact", required=True)
    step.add_argument("--step", required=True)
    step.add_argument("--proposal")
    payment = commands.add_parser("payment", help="add a payment to a proposal")
    payment.add_argument("--account", required=True)
    payment.add_argument("--proposal", required=True)
    payment.add_argument("--amount", type=Decimal, required=True)
    payment.add_argument("--tip", type=Decimal, default=Decimal(0))
    payment.add_argument("--method", default="card")
    payment.add_argument("--date", type=date.fromisoformat, default=datetime.now(UTC).date())
    commands.add_parser("webhooks", help="the webhooks sent so far and the answers they got")
    args = parser.parse_args()

    if args.command == "serve":
        uvicorn.run(create_app(CrmStore(args.state_file)), host=args.host, port=args.port, log_level="warning")
        return
    admin = CrmSandboxAdmin(args.url)
    if args.command == "contact":
        result: object = admin.create_contact(args.account, firstName=args.first, lastName=args.last,
                                              email=args.email, phone=args.phone)
    elif args.command == "proposal":
        result = admin.create_proposal(args.account, args.contact, [_line(x) for x in args.line], args.number)
    elif args.command == "step":
        result = admin.move_step(args.account, args.contact, args.step, args.proposal)
    elif args.command == "payment":
        result = admin.add_payment(args.account, args.proposal, args.amount, args.date, args.tip, args.method)
    else:
        result = admin.webhooks()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
