"""A client for the QBO sandbox's admin surface, used by the demo and the tests to set up and look inside."""

import json
from decimal import Decimal
from typing import Any

import httpx


def sandbox_root(api_url: str) -> str:
    """The sandbox's root URL from the QBO API base URL (`.../v3`)."""
    return api_url.rstrip("/").removesuffix("/v3")


def connect_company(api_url: str, realm_id: str) -> str:
    """Create the company if needed and return a fresh refresh token for it."""
    response = httpx.post(f"{sandbox_root(api_url)}/admin/companies/{realm_id}", timeout=10)
    response.raise_for_status()
    return str(response.json()["refresh_token"])


def list_objects(api_url: str, realm_id: str, entity: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{sandbox_root(api_url)}/admin/companies/{realm_id}/{entity}", timeout=10)
    response.raise_for_status()
    return list(json.loads(response.text, parse_float=Decimal)[entity])


def inject_faults(api_url: str, realm_id: str, kind: str, count: int = 1) -> None:
    """Make the company's next `count` API calls answer with `kind`: "500" or "429"."""
    response = httpx.post(f"{sandbox_root(api_url)}/admin/companies/{realm_id}/faults",
                          params={"kind": kind, "count": count}, timeout=10)
    response.raise_for_status()
