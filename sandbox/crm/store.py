"""The CRM sandbox's data: an enterprise (franchisor) account with sub-accounts (franchisees), and per
account its users, contacts, sales cycle, lead sources, action plans, proposals, payments and notes."""

import json
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Step:
    sales_cycle_id: str
    sales_cycle_name: str
    sort_order: int
    sales_cycle_active_status: bool = True
    quoted: bool = False
    closed: bool = False


@dataclass
class Account:
    account_id: str
    name: str
    web_key: str
    parent_id: str | None = None  # an enterprise account has none
    royalty_rate: Decimal = Decimal("0")
    marketing_rate: Decimal = Decimal("0")
    webhook_url: str | None = None
    webhook_secret: str | None = None
    steps: list[Step] = field(default_factory=list)
    lead_sources: list[dict[str, Any]] = field(default_factory=list)
    action_plans: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)


DEFAULT_STEPS = [("New Lead", False, False), ("Contacted", False, False), ("Proposal Sent", True, False),
                 ("Job Scheduled", True, False), ("Job Complete", True, True), ("Lost", False, True)]
DEFAULT_LEAD_SOURCES = ("Website", "Angi", "Thumbtack", "Zapier")


class CrmStore:
    """In memory, or kept in a JSON file when given one, so a restarted sandbox neither loses records nor
    hands out their ids again."""

    def __init__(self, state_file: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.state_file = state_file
        self.access_token = "CT-" + secrets.token_urlsafe(18)  # the enterprise's X-Access-Token
        self.accounts: dict[str, Account] = {}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.proposals: dict[str, dict[str, Any]] = {}
        self.payments: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[dict[str, Any]]] = {}
        self._ids: dict[str, int] = {}
        if state_file is not None and state_file.exists():
            self._load(json.loads(state_file.read_text()))

    def _load(self, data: dict[str, Any]) -> None:
        self.access_token, self._ids = data["access_token"], data["ids"]
        self.contacts, self.proposals = data["contacts"], data["proposals"]
        self.payments, self.notes = data["payments"], data["notes"]
        for raw in data["accounts"]:
            steps = [Step(**step) for step in raw.pop("steps")]
            account = Account(**{**raw, "royalty_rate": Decimal(raw["royalty_rate"]),
                                 "marketing_rate": Decimal(raw["marketing_rate"])})
            account.steps = steps
            self.accounts[account.account_id] = account

    def save(self) -> None:
        """Write the whole state (small: it is a sandbox) after every change."""
        if self.state_file is None:
            return
        with self.lock:
            data = {"access_token": self.access_token, "ids": self._ids, "contacts": self.contacts,
                    "proposals": self.proposals, "payments": self.payments, "notes": self.notes,
                    "accounts": [self.describe_account(a) for a in self.accounts.values()]}
            temporary = self.state_file.with_suffix(".tmp")
            temporary.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data))
            temporary.replace(self.state_file)

    def next_id(self, kind: str) -> str:
        self._ids[kind] = self._ids.get(kind, 1000) + 1
        return str(self._ids[kind])

    def add_account(self, account_id: str, name: str, parent_id: str | None = None, **options: Any) -> Account:
        with self.lock:
            account = Account(account_id=account_id, name=name, web_key="WK-" + secrets.token_urlsafe(12),
                              parent_id=parent_id, **options)
            account.steps = [Step(self.next_id("step"), step, n, quoted=quoted, closed=closed)
                             for n, (step, quoted, closed) in enumerate(DEFAULT_STEPS, start=1)]
            account.lead_sources = [{"lead_source_id": self.next_id("source"), "lead_source_name": source}
                                    for source in DEFAULT_LEAD_SOURCES]
            account.action_plans = [{"action_plan_id": self.next_id("plan"), "action_plan_name": "New lead follow-up"}]
            account.users = [{"user_id": self.next_id("user"), "user_name": f"{name} Office",
                              "email": f"office@{account_id}.example.com"}]
            self.accounts[account_id] = account
            return account

    def account_by_web_key(self, web_key: str) -> Account | None:
        return next((a for a in self.accounts.values() if secrets.compare_digest(a.web_key, web_key)), None)

    def step(self, account: Account, name_or_id: str) -> Step | None:
        wanted = name_or_id.strip().casefold()
        return next((s for s in account.steps if s.sales_cycle_id == name_or_id
                     or s.sales_cycle_name.casefold() == wanted), None)

    # -- contacts --------------------------------------------------------------------------------------
    def create_contact(self, account: Account, fields: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            contact = {"client_id": self.next_id("client"), "account_id": account.account_id, "firstName": "",
                       "lastName": "", "email": "", "phone": "", "address": "", "city": "", "state": "", "zip": "",
                       "compName": "", "smsok": False, "clients_sales_cycle": None, "clients_lead_source": None,
                       "clients_action_plan": None, "assigned_user": account.users[0]["user_id"],
                       "created": now_iso(), "last_modified_date": now_iso(), **fields}
            self.contacts[contact["client_id"]] = contact
            return dict(contact)

    def contacts_of(self, account: Account) -> list[dict[str, Any]]:
        return [dict(c) for c in self.contacts.values() if c["account_id"] == account.account_id]

    # -- proposals and payments ------------------------------------------------------------------------
    def create_proposal(self, account: Account, contact_id: str, lines: list[dict[str, Any]],
                        number: str | None = None) -> dict[str, Any]:
        with self.lock:
            proposal_id = self.next_id("proposal")
            proposal = {"proposal_id": proposal_id, "account_id": account.account_id, "client_id": contact_id,
                        "proposal_number": number or f"P-{proposal_id}", "line_items": lines,
                        "created": now_iso(), "last_modified_date": now_iso()}
            self.proposals[proposal_id] = proposal
            return dict(proposal)

    def add_payment(self, proposal_id: str, amount: Decimal, tip: Decimal, method: str, received_on: date,
                    convenience_fee: Decimal = Decimal(0), reference: str | None = None) -> dict[str, Any]:
        """A payment as recorded; `reference` (a gateway transaction id, say) is kept, not de-duplicated on."""
        with self.lock:
            payment = {"payment_id": self.next_id("payment"), "proposal_id": proposal_id, "amount": str(amount),
                       "tip": str(tip), "convenience_fee": str(convenience_fee), "method": method,
                       "payment_date": received_on.isoformat(), "reference": reference, "voided": False,
                       "void_kind": None, "voided_at": None, "created": now_iso()}
            self.payments[payment["payment_id"]] = payment
            self.proposals[proposal_id]["last_modified_date"] = now_iso()
            return dict(payment)

    def void_payment(self, payment_id: str, kind: str) -> dict[str, Any]:
        """A void, a full refund or an ACH return: the payment stays on the proposal, marked. Voiding it again
        changes nothing (the first kind stays)."""
        with self.lock:
            payment = self.payments[payment_id]
            if not payment["voided"]:
                payment.update(voided=True, void_kind=kind, voided_at=now_iso())
                self.proposals[payment["proposal_id"]]["last_modified_date"] = now_iso()
            return dict(payment)

    def add_note(self, contact_id: str, note: str, kind: str = "note") -> dict[str, Any]:
        with self.lock:
            entry = {"note_id": self.next_id("note"), "client_id": contact_id, "note": note, "type": kind,
                     "created": now_iso()}
            self.notes.setdefault(contact_id, []).append(entry)
            return dict(entry)

    def note(self, note_id: str) -> dict[str, Any] | None:
        """The note itself (not a copy), whichever contact it is on: an update names only the note."""
        return next((n for notes in self.notes.values() for n in notes if n["note_id"] == note_id), None)

    def update_note(self, note_id: str, note: str) -> dict[str, Any]:
        """Replace a note's text; when it was written (`created`) stays, `modified` says when it changed."""
        with self.lock:
            entry = self.note(note_id)
            if entry is None:
                raise KeyError(note_id)
            entry.update(note=note, modified=now_iso())
            return dict(entry)

    def describe_account(self, account: Account) -> dict[str, Any]:
        data = asdict(account)
        data["royalty_rate"], data["marketing_rate"] = str(account.royalty_rate), str(account.marketing_rate)
        return data
