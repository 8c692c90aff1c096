"""The CRM sandbox's HTTP surface: ClientTether's v2 API (`/v2/api/<call>`, `X-Access-Token` and `X-Web-Key`,
the `ResultCode` envelope), an admin API to drive it as a franchisee's staff would, and signed webhooks to
Ledgerflow when a sales-cycle step changes. `PUT /admin/accounts/{account}/faults` makes the account's API calls
fail as a real service's do (sandbox/injected.py): 500s, 429s (`CT_429`, Retry-After), timeouts and
commit-then-drop."""

import json
import re
import uuid
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from sandbox.crm.store import Account, CrmStore, now_iso
from sandbox.delivery import WebhookDelivery
from sandbox.injected import FaultSettings, Injected, before_work, unless_dropped
from sandbox.qbo.chaos import FaultPlan

MAX_PAGE = 100
PHONE_DIGITS = 10  # callers look phones up by 10 digits; the CRM keeps them as they were typed


def phone_key(phone: str | None) -> str:
    """"(512) 555-0142" and "+1 512-555-0142" -> "5125550142": how a look-up compares phones."""
    return re.sub(r"\D", "", phone or "")[-PHONE_DIGITS:]


class CrmError(Exception):
    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def envelope(data: list[dict[str, Any]] | dict[str, Any], total: int | None = None) -> dict[str, Any]:
    rows = data if isinstance(data, list) else [data]
    return {"ResultCode": "CT_200", "Message": "Success", "data": rows,
            "TotalRecord": len(rows) if total is None else total}


class NewAccount(BaseModel):
    account_id: str
    name: str
    parent_id: str | None = None
    royalty_rate: Decimal = Decimal("0")
    marketing_rate: Decimal = Decimal("0")
    webhook_url: str | None = None  # events go to {webhook_url}/sales-cycle, /proposal and /payment
    webhook_secret: str | None = None


class NewProposal(BaseModel):
    client_id: str
    proposal_number: str | None = None
    line_items: list[dict[str, Any]] = Field(min_length=1)


class NewPayment(BaseModel):
    amount: Decimal = Field(gt=0)
    tip: Decimal = Decimal("0")
    convenience_fee: Decimal = Decimal("0")
    method: str = "card"
    payment_date: date
    reference: str | None = Field(default=None, min_length=1, max_length=64)  # e.g. a gateway transaction id


class PaymentVoid(BaseModel):
    kind: Literal["void", "refund", "return"] = "void"  # "return": an ACH debit the bank returned


class StepMove(BaseModel):
    sales_cycle: str  # a step's id or name
    proposal_id: str | None = None  # the proposal the move is about; the contact's latest when not given


def create_app(store: CrmStore | None = None, delivery: WebhookDelivery | None = None) -> FastAPI:
    store = store or CrmStore()
    delivery = delivery or WebhookDelivery()
    app = FastAPI(title="CRM sandbox (ClientTether v2)", docs_url=None, redoc_url=None)
    app.state.store, app.state.delivery = store, delivery
    fault_plans: dict[str, FaultPlan] = {}

    def fault_answer(status: int) -> Response:
        return JSONResponse({"ResultCode": f"CT_{status}", "Message": f"HTTP {status} (injected by the sandbox)",
                             "data": []}, status_code=status)

    @app.middleware("http")
    async def injected_faults(request: Request, call_next: Any) -> Any:
        """The account's fault plan around its API calls (found by the web key, as the CRM finds the account)."""
        account = (store.account_by_web_key(request.headers.get("x-web-key", ""))
                   if fault_plans and request.url.path.startswith("/v2/api/") else None)
        plan = fault_plans.get(account.account_id) if account else None
        if plan is None:
            return await call_next(request)
        try:
            drop = await before_work(plan, request.method != "GET", fault_answer)
        except Injected as injected:
            return injected.response
        return await unless_dropped(plan, drop, await call_next(request), fault_answer)

    @app.middleware("http")
    async def keep_state(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        if request.method != "GET":
            store.save()
        return response

    @app.exception_handler(CrmError)
    async def _error(_request: Request, error: CrmError) -> JSONResponse:
        return JSONResponse({"ResultCode": error.code, "Message": error.message, "data": []}, status_code=error.status)

    def account_of(x_access_token: Annotated[str | None, Header()] = None,
                   x_web_key: Annotated[str | None, Header()] = None) -> Account:
        if not x_access_token or not x_web_key:
            raise CrmError("CT501", "Access token or web key is missing", 401)
        if x_access_token != store.access_token:
            raise CrmError("CT501", "Invalid access token", 401)
        account = store.account_by_web_key(x_web_key)
        if account is None:
            raise CrmError("CT501", "Invalid web key", 401)
        return account

    AccountDep = Annotated[Account, Depends(account_of)]

    def own_contact(account: Account, client_id: str, status: int = 200) -> dict[str, Any]:
        """The account's contact, or CT_515 (an admin read answers it with a 404, as for a missing account)."""
        contact = store.contacts.get(client_id)
        if contact is None or contact["account_id"] != account.account_id:
            raise CrmError("CT_515", "Record not found", status)
        return contact

    def own_proposal(account: Account, proposal_id: str) -> dict[str, Any]:
        proposal = store.proposals.get(proposal_id)
        if proposal is None or proposal["account_id"] != account.account_id:
            raise CrmError("CT_515", "Record not found")
        return proposal

    def own_payment(account: Account, payment_id: str) -> dict[str, Any]:
        payment = store.payments.get(payment_id)
        if payment is None:
            raise CrmError("CT_515", "Record not found")
        own_proposal(account, payment["proposal_id"])
        return payment

    async def fields(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError as error:
            raise CrmError("CT_400", "Body is not JSON", 400) from error
        if not isinstance(body, dict):
            raise CrmError("CT_400", "Body must be an object", 400)
        return body

    # -- contacts --------------------------------------------------------------------------------------
    @app.get("/v2/api/read_client_list")
    def read_client_list(account: AccountDep, limit: int = MAX_PAGE, offset: int = 0) -> dict[str, Any]:
        if not 1 <= limit <= MAX_PAGE:
            raise CrmError("CT_400", f"limit must be between 1 and {MAX_PAGE}")
        contacts = store.contacts_of(account)
        return envelope(contacts[offset:offset + limit], total=len(contacts))

    @app.get("/v2/api/read_client_by_id/{client_id}")
    def read_client_by_id(account: AccountDep, client_id: str) -> dict[str, Any]:
        return envelope(own_contact(account, client_id))

    @app.get("/v2/api/read_client_exist")
    def read_client_exist(account: AccountDep, email: str | None = None, phone: str | None = None) -> dict[str, Any]:
        wanted_email, wanted_phone = (email or "").casefold(), phone_key(phone)
        found = [c for c in store.contacts_of(account)
                 if (wanted_email and (c.get("email") or "").casefold() == wanted_email)
                 or (wanted_phone and phone_key(c.get("phone")) == wanted_phone)]
        if not found:
            raise CrmError("CT_515", "Record not found")
        return envelope(found)

    @app.post("/v2/api/create_client")
    async def create_client(account: AccountDep, request: Request) -> dict[str, Any]:
        body = await fields(request)
        if not (body.get("firstName") or body.get("lastName") or body.get("compName")):
            raise CrmError("CT_525", "Insert failed: a name is required")
        return envelope(store.create_contact(account, body))

    @app.post("/v2/api/update_client_by_id")
    async def update_client_by_id(account: AccountDep, request: Request) -> dict[str, Any]:
        body = await fields(request)
        contact = own_contact(account, str(body.pop("client_id", "")))
        with store.lock:
            contact.update({k: v for k, v in body.items() if k not in ("account_id", "created")},
                           last_modified_date=now_iso())
        return envelope(dict(contact))

    # -- lists -----------------------------------------------------------------------------------------
    @app.get("/v2/api/read_sales_cycle_list")
    def read_sales_cycle_list(account: AccountDep) -> dict[str, Any]:
        return envelope([vars(step) for step in account.steps])

    @app.get("/v2/api/read_lead_source_list")
    def read_lead_source_list(account: AccountDep) -> dict[str, Any]:
        return envelope(account.lead_sources)

    @app.get("/v2/api/read_action_plan_list")
    def read_action_plan_list(account: AccountDep) -> dict[str, Any]:
        return envelope(account.action_plans)

    @app.get("/v2/api/read_user_list")
    def read_user_list(account: AccountDep) -> dict[str, Any]:
        return envelope(account.users)

    # -- notes -----------------------------------------------------------------------------------------
    @app.get("/v2/api/read_client_history_notes/{client_id}")
    def read_client_history_notes(account: AccountDep, client_id: str) -> dict[str, Any]:
        own_contact(account, client_id)
        return envelope(store.notes.get(client_id, []))

    def note_text(body: dict[str, Any]) -> str:
        """A note's text, for its insert and its update alike: an empty one is refused."""
        if not body.get("note"):
            raise CrmError("CT_525", "Insert failed: note is required")
        return str(body["note"])

    @app.post("/v2/api/create_history_note")
    async def create_history_note(account: AccountDep, request: Request) -> dict[str, Any]:
        body = await fields(request)
        contact = own_contact(account, str(body.get("client_id", "")))
        return envelope(store.add_note(contact["client_id"], note_text(body), str(body.get("type", "note"))))

    @app.post("/v2/api/update_history_note")
    async def update_history_note(account: AccountDep, request: Request) -> dict[str, Any]:
        """Not published by the vendor; defined in its style. `{note_id, note}`: the note's text replaced."""
        body = await fields(request)
        note = store.note(str(body.get("note_id", "")))
        if note is None:
            raise CrmError("CT_515", "Record not found")
        own_contact(account, note["client_id"])
        return envelope(store.update_note(note["note_id"], note_text(body)))

    # -- proposals (calls the vendor has not published; defined in its style) --------------------------
    @app.get("/v2/api/read_proposal_by_id/{proposal_id}")
    def read_proposal_by_id(account: AccountDep, proposal_id: str) -> dict[str, Any]:
        return envelope(own_proposal(account, proposal_id))

    @app.get("/v2/api/read_proposal_list")
    def read_proposal_list(account: AccountDep, client_id: str | None = None, modified_since: str | None = None,
                           limit: int = MAX_PAGE, offset: int = 0) -> dict[str, Any]:
        """The account's proposals, a contact's when `client_id` is given, changed after `modified_since`."""
        if not 1 <= limit <= MAX_PAGE:
            raise CrmError("CT_400", f"limit must be between 1 and {MAX_PAGE}")
        rows = [p for p in store.proposals.values() if p["account_id"] == account.account_id
                and (client_id is None or p["client_id"] == client_id)
                and (modified_since is None or p["last_modified_date"] > modified_since)]
        return envelope(rows[offset:offset + limit], total=len(rows))

    @app.get("/v2/api/read_proposal_payments/{proposal_id}")
    def read_proposal_payments(account: AccountDep, proposal_id: str) -> dict[str, Any]:
        """The proposal's payments, oldest first, voided ones included (marked), each with its `reference`."""
        own_proposal(account, proposal_id)
        return envelope([{"reference": None, **p} for p in store.payments.values()
                         if p["proposal_id"] == proposal_id])

    @app.post("/v2/api/create_proposal_payment")
    async def create_proposal_payment(account: AccountDep, request: Request) -> dict[str, Any]:
        body = await fields(request)
        proposal = own_proposal(account, str(body.get("proposal_id", "")))
        try:
            payment = NewPayment.model_validate(body)
        except ValueError as error:
            raise CrmError("CT_525", f"Insert failed: {error}") from error
        return envelope(record_payment(account, proposal, payment))

    @app.post("/v2/api/void_proposal_payment")
    async def void_proposal_payment(account: AccountDep, request: Request) -> dict[str, Any]:
        body = await fields(request)
        payment = own_payment(account, str(body.get("payment_id", "")))
        try:
            void = PaymentVoid(kind=body.get("kind", "void"))
        except ValueError as error:
            raise CrmError("CT_525", f"Update failed: {error}") from error
        return envelope(void_payment(account, payment, void))

    @app.post("/v2/api/update_client_sales_cycle")
    async def update_client_sales_cycle(account: AccountDep, request: Request) -> dict[str, Any]:
        body = await fields(request)
        contact = own_contact(account, str(body.get("client_id", "")))
        moved = move_step(account, contact, StepMove(sales_cycle=str(body.get("sales_cycle_id", "")),
                                                      proposal_id=body.get("proposal_id")))
        return envelope(moved)

    def move_step(account: Account, contact: dict[str, Any], move: StepMove) -> dict[str, Any]:
        step = store.step(account, move.sales_cycle)
        if step is None or not step.sales_cycle_active_status:
            raise CrmError("CT_515", f"Sales cycle step {move.sales_cycle!r} not found")
        with store.lock:
            contact.update(clients_sales_cycle=step.sales_cycle_id, last_modified_date=now_iso())
        proposals = [p for p in store.proposals.values() if p["client_id"] == contact["client_id"]]
        proposal = store.proposals.get(move.proposal_id) if move.proposal_id else (proposals[-1] if proposals else None)
        if proposal is not None:  # the move is news about the proposal too: reconciliation finds it by this
            with store.lock:
                proposal["last_modified_date"] = now_iso()
        notify_step_change(account, contact, step.sales_cycle_name, proposal)
        return dict(contact)

    def contact_json(contact: dict[str, Any]) -> dict[str, Any]:
        return {"id": contact["client_id"], "first_name": contact["firstName"], "last_name": contact["lastName"],
                "company_name": contact["compName"] or None, "email": contact["email"] or None,
                "phone": contact["phone"] or None}

    def proposal_json(proposal: dict[str, Any]) -> dict[str, Any]:
        return {"id": proposal["proposal_id"], "number": proposal["proposal_number"],
                "lines": [{"product": line.get("product"), "description": line["description"],
                           "quantity": str(line["quantity"]), "unit_price": str(line["unit_price"])}
                          for line in proposal["line_items"]]}

    def notify(account: Account, event: str, payload: dict[str, Any]) -> None:
        """POST `{webhook_url}/{event}`, signed with the account's webhook secret, retried until answered."""
        if not account.webhook_url or not account.webhook_secret:
            return
        delivery.send_signed(f"{account.webhook_url.rstrip('/')}/{event}",
                             {"event_id": str(uuid.uuid4()), "account_id": account.account_id,
                              "occurred_at": now_iso(), **payload}, account.webhook_secret)

    def notify_step_change(account: Account, contact: dict[str, Any], step_name: str,
                           proposal: dict[str, Any] | None) -> None:
        notify(account, "sales-cycle", {"sales_cycle_step": step_name, "contact": contact_json(contact),
                                        "proposal": None if proposal is None else proposal_json(proposal)})

    def payment_json(payment: dict[str, Any]) -> dict[str, Any]:
        # No `reference` here: Ledgerflow's webhook models (CrmPayment) refuse fields they do not know.
        return {"id": payment["payment_id"], "amount": payment["amount"], "tip": payment["tip"],
                "convenience_fee": payment.get("convenience_fee", "0"), "received_on": payment["payment_date"],
                "method": payment["method"]}

    def about_payment(payment: dict[str, Any]) -> dict[str, Any]:
        proposal = store.proposals[payment["proposal_id"]]
        return {"contact": contact_json(store.contacts[proposal["client_id"]]),
                "proposal_id": proposal["proposal_id"], "proposal_number": proposal["proposal_number"],
                "payment": payment_json(payment)}

    def record_payment(account: Account, proposal: dict[str, Any], payment: NewPayment) -> dict[str, Any]:
        added = store.add_payment(proposal["proposal_id"], payment.amount, payment.tip, payment.method,
                                  payment.payment_date, payment.convenience_fee, payment.reference)
        notify(account, "payment", about_payment(added))
        return added

    def void_payment(account: Account, payment: dict[str, Any], void: PaymentVoid) -> dict[str, Any]:
        already = payment["voided"]
        voided = store.void_payment(payment["payment_id"], void.kind)
        if not already:
            notify(account, "payment-voided", {**about_payment(voided), "kind": voided["void_kind"]})
        return voided

    # -- admin (sandbox only): what staff do in the CRM's screens --------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/admin/accounts")
    def admin_create_account(new: NewAccount) -> dict[str, Any]:
        """Create the account, or update an existing one's settings (its keys and records stay)."""
        if new.parent_id is not None and new.parent_id not in store.accounts:
            raise CrmError("CT_515", f"parent account {new.parent_id} not found", 404)
        account = store.accounts.get(new.account_id)
        if account is None:
            account = store.add_account(**new.model_dump())
        else:
            with store.lock:
                for key, value in new.model_dump().items():
                    setattr(account, key, value)
        return {"access_token": store.access_token, **store.describe_account(account)}

    def admin_account(account_id: str) -> Account:
        account = store.accounts.get(account_id)
        if account is None:
            raise CrmError("CT_515", f"account {account_id} not found", 404)
        return account

    @app.post("/admin/accounts/{account_id}/contacts")
    def admin_create_contact(account_id: str, contact: dict[str, Any]) -> dict[str, Any]:
        return store.create_contact(admin_account(account_id), contact)

    @app.get("/admin/accounts/{account_id}/contacts")
    def admin_contacts(account_id: str) -> list[dict[str, Any]]:
        """Every contact of the account, without the API's paging: what tests check after an intake."""
        return store.contacts_of(admin_account(account_id))

    @app.get("/admin/accounts/{account_id}/contacts/{client_id}/notes")
    def admin_notes(account_id: str, client_id: str) -> list[dict[str, Any]]:
        own_contact(admin_account(account_id), client_id, status=404)
        return [dict(note) for note in store.notes.get(client_id, [])]

    @app.get("/admin/accounts/{account_id}/lead-sources")
    def admin_lead_sources(account_id: str) -> list[dict[str, Any]]:
        return admin_account(account_id).lead_sources

    @app.post("/admin/accounts/{account_id}/proposals")
    def admin_create_proposal(account_id: str, new: NewProposal) -> dict[str, Any]:
        account = admin_account(account_id)
        own_contact(account, new.client_id)
        return store.create_proposal(account, new.client_id, new.line_items, new.proposal_number)

    @app.post("/admin/accounts/{account_id}/contacts/{client_id}/step")
    def admin_move_step(account_id: str, client_id: str, move: StepMove) -> dict[str, Any]:
        account = admin_account(account_id)
        return move_step(account, own_contact(account, client_id), move)

    @app.post("/admin/accounts/{account_id}/proposals/{proposal_id}/payments")
    def admin_add_payment(account_id: str, proposal_id: str, payment: NewPayment) -> dict[str, Any]:
        account = admin_account(account_id)
        return record_payment(account, own_proposal(account, proposal_id), payment)

    @app.post("/admin/accounts/{account_id}/payments/{payment_id}/void")
    def admin_void_payment(account_id: str, payment_id: str, void: PaymentVoid) -> dict[str, Any]:
        """Staff void a payment, refund it in full or mark its ACH debit returned: the CRM tells Ledgerflow."""
        account = admin_account(account_id)
        return void_payment(account, own_payment(account, payment_id), void)

    @app.put("/admin/accounts/{account_id}/proposals/{proposal_id}")
    def admin_edit_proposal(account_id: str, proposal_id: str, edit: NewProposal) -> dict[str, Any]:
        """Staff edit a proposal's lines (and number): the CRM tells Ledgerflow."""
        account = admin_account(account_id)
        proposal = own_proposal(account, proposal_id)
        with store.lock:
            proposal.update(line_items=edit.line_items, last_modified_date=now_iso(),
                            proposal_number=edit.proposal_number or proposal["proposal_number"])
        notify(account, "proposal", {"contact": contact_json(store.contacts[proposal["client_id"]]),
                                     "proposal": proposal_json(proposal)})
        return dict(proposal)

    @app.put("/admin/accounts/{account_id}/faults")
    def admin_faults(account_id: str, settings: FaultSettings) -> dict[str, object]:
        """Replace the account's fault plan (an empty one turns faults off)."""
        admin_account(account_id)
        fault_plans[account_id] = FaultPlan(**settings.model_dump())
        return fault_plans[account_id].describe()

    @app.get("/admin/accounts/{account_id}/faults")
    def admin_fault_plan(account_id: str) -> dict[str, object]:
        """The account's fault plan and the faults it has injected so far."""
        admin_account(account_id)
        return fault_plans.get(account_id, FaultPlan()).describe()

    @app.get("/admin/webhooks")
    def admin_webhooks() -> list[dict[str, Any]]:
        """Every webhook delivered so far, with the receiver's final answer."""
        return delivery.delivered_json()

    return app
