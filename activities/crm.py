"""The only code that talks to the CRM: ClientTether's v2 API over httpx.

Both keys on every call (`X-Access-Token`, `X-Web-Key`), loaded per account from the database; the
`ResultCode` envelope unwrapped (CT_200 success, CT_515 not found, anything else a clear error); pages of at
most 100; a timeout on every call and retries of transient failures only (timeouts, refused connections,
5xx), never of a request the CRM answered. The proposal calls are not public yet: they are defined here in
ClientTether's style so that only this module changes when the real ones are known.
"""

import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import Engine

from config.settings import Settings
from models.crm_credentials import load_crm_credentials

PAGE = 100


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
                                  headers={"X-Access-Token": access_token, "X-Web-Key": web_key})
        self.retries = retries

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "CrmClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, call: str, params: dict[str, Any] | None = None,
              body: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], int]:
        """One API call: the envelope's rows and TotalRecord."""
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, call, params=params, json=body)
            except httpx.TransportError as error:
                if attempt == self.retries:
                    raise CrmUnavailable(f"CRM {call}: {error.__class__.__name__}: {error}") from error
            else:
                if response.status_code < 500:
                    break
                if attempt == self.retries:
                    raise CrmUnavailable(f"CRM {call}: HTTP {response.status_code}")
            time.sleep(min(0.2 * 2**attempt, 5))
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
             body: dict[str, Any] | None = None) -> dict[str, Any]:
        rows, _ = self._call(method, call, params, body)
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
        return self._one("POST", "create_client", body=fields)

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

    def create_history_note(self, client_id: str, note: str) -> dict[str, Any]:
        return self._one("POST", "create_history_note", body={"client_id": client_id, "note": note})

    # -- proposals -------------------------------------------------------------------------------------
    def proposal(self, proposal_id: str) -> dict[str, Any]:
        return self._one("GET", f"read_proposal_by_id/{proposal_id}")

    def proposals(self, client_id: str | None = None, modified_since: str | None = None) -> Iterator[dict[str, Any]]:
        """The account's proposals (a contact's, or those changed since an ISO time), page by page."""
        params = {k: v for k, v in (("client_id", client_id), ("modified_since", modified_since)) if v}
        offset = 0
        while True:
            rows, total = self._call("GET", "read_proposal_list", params={**params, "limit": PAGE, "offset": offset})
            yield from rows
            offset += len(rows)
            if not rows or offset >= total:
                return

    def proposal_payments(self, proposal_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"read_proposal_payments/{proposal_id}")[0]

    def record_payment(self, proposal_id: str, amount: Decimal, tip: Decimal, method: str,
                       received_on: date) -> dict[str, Any]:
        return self._one("POST", "create_proposal_payment", body={
            "proposal_id": proposal_id, "amount": str(amount), "tip": str(tip), "method": method,
            "payment_date": received_on.isoformat()})

    def move_step(self, client_id: str, sales_cycle_id: str, proposal_id: str | None = None) -> dict[str, Any]:
        return self._one("POST", "update_client_sales_cycle", body={
            "client_id": client_id, "sales_cycle_id": sales_cycle_id, "proposal_id": proposal_id})


def crm_client_for(settings: Settings, engine: Engine, account_id: str) -> CrmClient:
    """A client with the account's own keys, from the database."""
    credentials = load_crm_credentials(engine, account_id)
    if credentials is None:
        raise CrmError("CT501", f"no CRM keys stored for account {account_id}", "credentials")
    return CrmClient(settings.crm_api_url, credentials.access_token, credentials.web_key,
                     timeout=settings.crm_http_timeout_seconds, retries=settings.crm_retries)
