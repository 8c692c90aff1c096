"""A client for the CRM sandbox's admin surface: what the demo and the tests do as a franchisee's staff would."""

from datetime import date
from decimal import Decimal
from typing import Any

import httpx


class CrmSandboxAdmin:
    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/admin", timeout=10)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return dict(response.json())

    def _list(self, path: str) -> list[dict[str, Any]]:
        response = self._http.get(path)
        response.raise_for_status()
        return list(response.json())

    def create_account(self, account_id: str, name: str, parent_id: str | None = None,
                       webhook_url: str | None = None, webhook_secret: str | None = None,
                       royalty_rate: str = "0", marketing_rate: str = "0") -> dict[str, Any]:
        """The account with its keys: `access_token` (the enterprise's) and `web_key` (this account's)."""
        return self._post("/accounts", {"account_id": account_id, "name": name, "parent_id": parent_id,
                                        "webhook_url": webhook_url, "webhook_secret": webhook_secret,
                                        "royalty_rate": royalty_rate, "marketing_rate": marketing_rate})

    def set_faults(self, account_id: str, queued: list[str] | None = None, rates: dict[str, float] | None = None,
                   hold_seconds: float = 35.0, latency_seconds: float = 0.0, seed: int | None = None) -> None:
        """Replace the account's fault plan for its API calls: `queued` faults ("500", "429", "timeout", "drop")
        answer its next calls in order, then each call fails at `rates`; timeouts and drops hold `hold_seconds`."""
        response = self._http.put(f"/accounts/{account_id}/faults", json={
            "queued": queued or [], "rates": rates or {}, "hold_seconds": hold_seconds,
            "latency_seconds": latency_seconds, "seed": seed})
        response.raise_for_status()

    def faults(self, account_id: str) -> dict[str, Any]:
        """The account's fault plan, with the faults injected so far by kind (`injected`)."""
        response = self._http.get(f"/accounts/{account_id}/faults")
        response.raise_for_status()
        return dict(response.json())

    def create_contact(self, account_id: str, **fields: Any) -> dict[str, Any]:
        return self._post(f"/accounts/{account_id}/contacts", fields)

    def create_proposal(self, account_id: str, client_id: str, lines: list[dict[str, Any]],
                        number: str | None = None) -> dict[str, Any]:
        return self._post(f"/accounts/{account_id}/proposals",
                          {"client_id": client_id, "proposal_number": number, "line_items": lines})

    def edit_proposal(self, account_id: str, proposal_id: str, client_id: str, lines: list[dict[str, Any]],
                      number: str | None = None) -> dict[str, Any]:
        response = self._http.put(f"/accounts/{account_id}/proposals/{proposal_id}",
                                  json={"client_id": client_id, "proposal_number": number, "line_items": lines})
        response.raise_for_status()
        return dict(response.json())

    def move_step(self, account_id: str, client_id: str, step: str, proposal_id: str | None = None) -> dict[str, Any]:
        return self._post(f"/accounts/{account_id}/contacts/{client_id}/step",
                          {"sales_cycle": step, "proposal_id": proposal_id})

    def add_payment(self, account_id: str, proposal_id: str, amount: Decimal, received_on: date,
                    tip: Decimal = Decimal(0), method: str = "card",
                    convenience_fee: Decimal = Decimal(0), reference: str | None = None) -> dict[str, Any]:
        return self._post(f"/accounts/{account_id}/proposals/{proposal_id}/payments",
                          {"amount": str(amount), "tip": str(tip), "method": method,
                           "convenience_fee": str(convenience_fee), "payment_date": received_on.isoformat(),
                           "reference": reference})

    def void_payment(self, account_id: str, payment_id: str, kind: str = "void") -> dict[str, Any]:
        """Void a payment, refund it in full (kind "refund") or mark its ACH debit returned (kind "return")."""
        return self._post(f"/accounts/{account_id}/payments/{payment_id}/void", {"kind": kind})

    def contacts(self, account_id: str) -> list[dict[str, Any]]:
        """Every contact of the account, oldest first, as stored (no paging)."""
        return self._list(f"/accounts/{account_id}/contacts")

    def notes(self, account_id: str, client_id: str) -> list[dict[str, Any]]:
        """The contact's history notes, oldest first (`note_id`, `note`, `type`, `created`, `modified` once
        edited)."""
        return self._list(f"/accounts/{account_id}/contacts/{client_id}/notes")

    def lead_sources(self, account_id: str) -> list[dict[str, Any]]:
        return self._list(f"/accounts/{account_id}/lead-sources")

    def webhooks(self) -> list[dict[str, Any]]:
        return self._list("/webhooks")
