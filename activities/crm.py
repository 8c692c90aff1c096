"""The only code that talks to the CRM: ClientTether's v2 API over httpx.

Both keys on every call (`X-Access-Token`, `X-Web-Key`), loaded per account from the database; the
`ResultCode` envelope unwrapped (CT_200 success, CT_515 not found, anything else a clear error); pages of at
most 100; a timeout on every call and retries of transient failures only (timeouts, refused connections,
5xx), never of a request the CRM answered. The proposal calls are not public yet: they are defined here in
ClientTether's style so that only this module changes when the real ones are known.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

import httpx
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.retry_after import retry_after
from activities.tls import TLS
from config.settings import Settings
from models.accounts import Franchisee
from models.collections import RecordCollectedPayment, VoidCollectedPayment
from models.crm_credentials import load_crm_credentials
from models.proposals import CrmContact, CrmPayment, Proposal, ProposalLine, ProposalSynced, stage_for_step
from models.reconcile import CrmChangesPage, ReadChangesInput

PAGE = 100
MAX_PAUSE_SECONDS = 5.0  # between the client's own tries; a longer wait is Temporal's retry to make
VoidKind = Literal["void", "refund", "return"]  # "return": an ACH debit the bank returned


class CrmError(Exception):
    """The CRM answered but refused: its ResultCode and message."""

    def __init__(self, code: str, message: str, call: str) -> None:
        super().__init__(f"CRM {call}: {code} {message}")
        self.code, self.message, self.call = code, message, call


class CrmNotFound(CrmError):
    """CT_515: the record does not exist (or is not this account's)."""


class CrmUnavailable(Exception):
    """The CRM did not answer usefully (timeouts, refused connections, 5xx) after every retry."""


class CrmClient:
    def __init__(self, base_url: str, access_token: str, web_key: str, timeout: float = 10.0, retries: int = 3,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/v2/api/", timeout=timeout, transport=transport,
                                  verify=TLS, headers={"X-Access-Token": access_token, "X-Web-Key": web_key})
        self.retries = retries

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CrmClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, call: str, params: dict[str, Any] | None = None, body: dict[str, Any] | None = None,
              blind: bool = True) -> tuple[list[dict[str, Any]], int]:
        """One API call: the envelope's rows and TotalRecord. A 429 says nothing was done, so it is always tried
        again (after its Retry-After); a lost answer or a 5xx may hide work that was done, so a create the CRM
        does not de-duplicate (`blind=False`) leaves those to its caller, who looks for the record first."""
        for attempt in range(self.retries + 1):
            wait = _backoff(attempt)
            try:
                response = self._http.request(method, call, params=params, json=body)
            except httpx.TransportError as error:
                if attempt == self.retries or not blind:
                    raise CrmUnavailable(f"CRM {call}: {error.__class__.__name__}: {error}") from error
            else:
                if response.status_code == 429:
                    wait = retry_after(response, wait)
                elif response.status_code < 500:
                    break
                elif not blind:
                    raise CrmUnavailable(f"CRM {call}: HTTP {response.status_code}")
                if attempt == self.retries:
                    raise CrmUnavailable(f"CRM {call}: HTTP {response.status_code}")
            time.sleep(min(wait, MAX_PAUSE_SECONDS))
        try:
            payload = response.json()
        except ValueError as error:
            raise CrmError("CT_BAD_RESPONSE", f"HTTP {response.status_code}, not JSON", call) from error
        code = str(payload.get("ResultCode", ""))
        if code == "CT_515":
            raise CrmNotFound(code, str(payload.get("Message", "")), call)
        if code != "CT_200" or response.status_code >= 400:
            raise CrmError(code or f"HTTP_{response.status_code}", str(payload.get("Message", "")), call)
        rows = payload.get("data") or []
        return rows, int(payload.get("TotalRecord", len(rows)))

    def _one(self, method: str, call: str, params: dict[str, Any] | None = None,
             body: dict[str, Any] | None = None, blind: bool = True) -> dict[str, Any]:
        rows, _ = self._call(method, call, params, body, blind=blind)
        if not rows:
            raise CrmNotFound("CT_515", "empty answer", call)
        return rows[0]

    # -- contacts --------------------------------------------------------------------------------------
    def contact(self, client_id: str) -> dict[str, Any]:
        return self._one("GET", f"read_client_by_id/{client_id}")

    def find_contact(self, email: str | None = None, phone: str | None = None) -> dict[str, Any] | None:
        """The first contact with this email or (10-digit) phone, or None."""
        params = {k: v for k, v in (("email", email), ("phone", phone)) if v}
        if not params:
            raise ValueError("find_contact needs an email or a phone")
        try:
            return self._one("GET", "read_client_exist", params=params)
        except CrmNotFound:
            return None

    def contacts(self) -> Iterator[dict[str, Any]]:
        """Every contact of the account, page by page."""
        offset = 0
        while True:
            rows, total = self._call("GET", "read_client_list", params={"limit": PAGE, "offset": offset})
            yield from rows
            offset += len(rows)
            if not rows or offset >= total:
                return

    def create_contact(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Not retried blind (see `_call`): a caller looks the contact up again before another attempt."""
        return self._one("POST", "create_client", body=fields, blind=False)

    def update_contact(self, client_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        return self._one("POST", "update_client_by_id", body={"client_id": client_id, **fields})

    # -- account lists ---------------------------------------------------------------------------------
    def sales_cycle(self) -> list[dict[str, Any]]:
        return self._call("GET", "read_sales_cycle_list")[0]

    def current_step(self, client_id: str) -> dict[str, Any] | None:
        """The contact's sales-cycle step (id, name, flags), or None when it has none."""
        step_id = self.contact(client_id).get("clients_sales_cycle")
        return next((step for step in self.sales_cycle() if step["sales_cycle_id"] == step_id), None)

    def lead_sources(self) -> list[dict[str, Any]]:
        return self._call("GET", "read_lead_source_list")[0]

    def action_plans(self) -> list[dict[str, Any]]:
        return self._call("GET", "read_action_plan_list")[0]

    def users(self) -> list[dict[str, Any]]:
        return self._call("GET", "read_user_list")[0]

    # -- history notes ---------------------------------------------------------------------------------
    def history_notes(self, client_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"read_client_history_notes/{client_id}")[0]

    def create_history_note(self, client_id: str, note: str, kind: str = "note") -> dict[str, Any]:
        """Not retried blind (see `_call`): a caller finds its note by a marker line before another attempt."""
        return self._one("POST", "create_history_note", body={"client_id": client_id, "note": note, "type": kind},
                         blind=False)

    def update_history_note(self, note_id: str, note: str) -> dict[str, Any]:
        """Replace a note's text (the note keeps its id and when it was written)."""
        return self._one("POST", "update_history_note", body={"note_id": note_id, "note": note})

    # -- proposals -------------------------------------------------------------------------------------
    def proposal(self, proposal_id: str) -> dict[str, Any]:
        return self._one("GET", f"read_proposal_by_id/{proposal_id}")

    def proposals(self, client_id: str | None = None, modified_since: str | None = None) -> Iterator[dict[str, Any]]:
        """The account's proposals (a contact's, or those changed since an ISO time), page by page."""
        offset = 0
        while True:
            rows, total = self.proposal_page(client_id, modified_since, offset)
            yield from rows
            offset += len(rows)
            if not rows or offset >= total:
                return

    def proposal_page(self, client_id: str | None = None, modified_since: str | None = None,
                      offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of the proposal list and the list's total."""
        params = {k: v for k, v in (("client_id", client_id), ("modified_since", modified_since)) if v}
        return self._call("GET", "read_proposal_list", params={**params, "limit": PAGE, "offset": offset})

    def proposal_payments(self, proposal_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"read_proposal_payments/{proposal_id}")[0]

    def record_payment(self, proposal_id: str, amount: Decimal, tip: Decimal, method: str, received_on: date, *,
                       reference: str | None = None, convenience_fee: Decimal = Decimal(0)) -> dict[str, Any]:
        """Record a payment on the proposal. With a `reference` (a gateway transaction id) it is safe to retry:
        the CRM does not de-duplicate, so the proposal's payments are read before every attempt and a payment
        already carrying the reference is answered instead (voided or not; check its `voided`)."""
        body = {"proposal_id": proposal_id, "amount": str(amount), "tip": str(tip),
                "convenience_fee": str(convenience_fee), "method": method, "payment_date": received_on.isoformat()}
        if reference is None:
            return self._one("POST", "create_proposal_payment", body=body, blind=False)
        attempt = 0
        while True:
            found = self.find_payment(proposal_id, reference)
            if found is not None:
                return found
            try:  # not retried blind: a create that timed out may have landed, and the next look finds it
                return self._one("POST", "create_proposal_payment", body={**body, "reference": reference},
                                 blind=False)
            except CrmUnavailable:
                if attempt == self.retries:
                    raise
            _pause(attempt)
            attempt += 1

    def find_payment(self, proposal_id: str, reference: str) -> dict[str, Any] | None:
        """The proposal's (first) payment recorded with this reference, voided or not; None when there is none."""
        if not reference:
            raise ValueError("find_payment needs a reference")
        return next((p for p in self.proposal_payments(proposal_id) if p.get("reference") == reference), None)

    def void_payment(self, payment_id: str, kind: VoidKind) -> dict[str, Any]:
        """Void a payment, refund it in full or mark its ACH debit returned: the payment, marked. Safe to retry:
        a payment already voided stays as it was (with its first kind)."""
        return self._one("POST", "void_proposal_payment", body={"payment_id": payment_id, "kind": kind})

    def move_step(self, client_id: str, sales_cycle_id: str, proposal_id: str | None = None) -> dict[str, Any]:
        """Not retried blind: each move sends the CRM's webhook; a caller reads the contact's step first."""
        return self._one("POST", "update_client_sales_cycle", blind=False, body={
            "client_id": client_id, "sales_cycle_id": sales_cycle_id, "proposal_id": proposal_id})


def _backoff(attempt: int) -> float:
    return 0.2 * 2**attempt


def _pause(attempt: int) -> None:
    time.sleep(min(_backoff(attempt), MAX_PAUSE_SECONDS))


def crm_client_for(settings: Settings, engine: Engine, account_id: str) -> CrmClient:
    """A client with the account's own keys, from the database."""
    credentials = load_crm_credentials(engine, account_id)
    if credentials is None:
        raise CrmError("CT501", f"no CRM keys stored for account {account_id}", "credentials")
    return CrmClient(settings.crm_api_url, credentials.access_token, credentials.web_key,
                     timeout=settings.crm_http_timeout_seconds, retries=settings.crm_retries)


# -- CRM records as Ledgerflow's models -------------------------------------------------------------------
def contact_from_row(row: dict[str, Any]) -> CrmContact:
    return CrmContact(id=str(row["client_id"]), first_name=row.get("firstName") or "",
                      last_name=row.get("lastName") or "", company_name=row.get("compName") or None,
                      email=row.get("email") or None, phone=row.get("phone") or None)


def proposal_from_row(row: dict[str, Any]) -> Proposal:
    return Proposal(id=str(row["proposal_id"]), number=str(row["proposal_number"]), lines=[
        ProposalLine(product=line.get("product"), description=line["description"],
                     quantity=str(line["quantity"]), unit_price=str(line["unit_price"]))
        for line in row.get("line_items") or []])


def payment_from_row(row: dict[str, Any]) -> CrmPayment:
    """The payment as the books need it; a row's `reference`, `voided` and `void_kind` are not part of it."""
    return CrmPayment(id=str(row["payment_id"]), amount=str(row["amount"]), tip=str(row.get("tip") or "0"),
                      convenience_fee=str(row.get("convenience_fee") or "0"),
                      received_on=date.fromisoformat(row["payment_date"]), method=row.get("method") or "card")


class CrmActivities:
    """Reads from the CRM for reconciliation."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    @activity.defn
    def read_crm_changes(self, input: ReadChangesInput) -> CrmChangesPage:
        """One page of the proposals changed since `since`, each with its contact, payments, and the
        contact's stage when the proposal is the contact's latest (a step belongs to the contact)."""
        with Session(self.engine) as session:
            franchisee = session.get(Franchisee, input.account_id)
        if franchisee is None:
            raise ApplicationError(f"unknown account {input.account_id}", type="UnknownAccount", non_retryable=True)
        try:
            with crm_client_for(self.settings, self.engine, input.account_id) as crm:
                since = input.since.isoformat() if input.since else None
                rows, total = crm.proposal_page(modified_since=since, offset=input.offset)
                steps = {step["sales_cycle_id"]: step["sales_cycle_name"] for step in crm.sales_cycle()}
                latest_of: dict[str, str] = {}
                proposals, newest = [], None
                for row in rows:
                    contact_row = crm.contact(str(row["client_id"]))
                    client_id = str(contact_row["client_id"])
                    if client_id not in latest_of:
                        latest_of[client_id] = _latest_proposal_id(crm.proposals(client_id=client_id))
                    proposals.append(_synced(input.account_id, franchisee, row, contact_row, steps,
                                             is_latest=latest_of[client_id] == str(row["proposal_id"]),
                                             payments=crm.proposal_payments(str(row["proposal_id"]))))
                    changed = datetime.fromisoformat(row["last_modified_date"])
                    newest = changed if newest is None or changed > newest else newest
        except CrmUnavailable as error:
            raise ApplicationError(str(error), type="CrmUnavailable") from error
        except CrmError as error:
            raise ApplicationError(str(error), type="CrmError", non_retryable=error.code == "CT501") from error
        return CrmChangesPage(proposals=proposals, read=len(rows), total=total, newest=newest)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.read_crm_changes]


@contextmanager
def crm_for_writes(settings: Settings, engine: Engine, account_id: str) -> Iterator[CrmClient]:
    """The account's CRM client; its answers as errors a workflow can act on: an outage is retried
    (CrmUnavailable), a refusal is final (CrmRefused: trying again gets the same answer)."""
    try:
        with crm_client_for(settings, engine, account_id) as crm:
            yield crm
    except CrmUnavailable as error:
        raise ApplicationError(str(error), type="CrmUnavailable") from error
    except CrmError as error:
        raise ApplicationError(str(error), type="CrmRefused", non_retryable=True) from error


class CrmPaymentActivities:
    """Payments Ledgerflow collected, on the CRM proposal: recorded once (found by their gateway transaction
    first), voided when the bank sends a debit back."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine

    @activity.defn
    def record_collected_payment(self, input: RecordCollectedPayment) -> str:
        """The CRM payment's id; a retry after a lost answer finds the payment instead of adding another."""
        with crm_for_writes(self.settings, self.engine, input.account_id) as crm:
            payment = crm.record_payment(input.proposal_id, input.amount, input.tip, input.method,
                                         input.received_on, reference=input.reference,
                                         convenience_fee=input.convenience_fee)
        return str(payment["payment_id"])

    @activity.defn
    def void_collected_payment(self, input: VoidCollectedPayment) -> None:
        """Voiding twice changes nothing: the CRM keeps the first void and tells Ledgerflow once."""
        with crm_for_writes(self.settings, self.engine, input.account_id) as crm:
            crm.void_payment(input.crm_payment_id, input.kind)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.record_collected_payment, self.void_collected_payment]


def _latest_proposal_id(rows: Iterator[dict[str, Any]]) -> str:
    """The contact's most recently created proposal: the one its sales-cycle step is about."""
    return max(rows, key=lambda r: (r["created"], int(str(r["proposal_id"])) if str(r["proposal_id"]).isdigit()
                                    else 0))["proposal_id"]


def _synced(account_id: str, franchisee: Franchisee, row: dict[str, Any], contact_row: dict[str, Any],
            steps: dict[str, str], is_latest: bool, payments: list[dict[str, Any]]) -> ProposalSynced:
    step_name = steps.get(str(contact_row.get("clients_sales_cycle")))
    stage = stage_for_step(franchisee.sales_cycle, step_name) if step_name and is_latest else None
    stage_at = datetime.fromisoformat(contact_row["last_modified_date"]) if stage else None
    modified = row["last_modified_date"]
    return ProposalSynced(
        event_id=f"sync:{row['proposal_id']}:{modified}:{stage_at.isoformat() if stage_at else '-'}",
        account_id=account_id, occurred_at=datetime.fromisoformat(modified), contact=contact_from_row(contact_row),
        proposal=proposal_from_row(row), stage=stage, stage_at=stage_at,
        payments=[payment_from_row(p) for p in payments],
        voided_payment_ids=[str(p["payment_id"]) for p in payments if p.get("voided")])
