"""A client for the QBO sandbox's admin surface, used by the demo and the tests to set up and look inside."""

from typing import Any

import httpx

from sandbox.qbo.wire import loads


def sandbox_root(api_url: str) -> str:
    """The sandbox's root URL from the QBO API base URL (`.../v3`)."""
    return api_url.rstrip("/").removesuffix("/v3")


def connect_company(api_url: str, realm_id: str) -> str:
    """Create the company if needed and return a fresh refresh token for it."""
    response = httpx.post(f"{sandbox_root(api_url)}/admin/companies/{realm_id}", timeout=10)
    response.raise_for_status()
    return str(response.json()["refresh_token"])


def expire_access_tokens(api_url: str, realm_id: str) -> int:
    """End the company's access tokens in the sandbox, as an hour passing would; returns how many ended."""
    response = httpx.post(f"{sandbox_root(api_url)}/admin/companies/{realm_id}/expire-access-tokens", timeout=10)
    response.raise_for_status()
    return int(response.json()["expired"])


def forget_request_ids(api_url: str, realm_id: str) -> int:
    """Make the company forget the answers it keeps for requestids, as QBO does after a while; returns how many."""
    response = httpx.post(f"{sandbox_root(api_url)}/admin/companies/{realm_id}/forget-request-ids", timeout=10)
    response.raise_for_status()
    return int(response.json()["forgotten"])


def list_objects(api_url: str, realm_id: str, entity: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{sandbox_root(api_url)}/admin/companies/{realm_id}/{entity}", timeout=10)
    response.raise_for_status()
    return list(loads(response.text)[entity])


def set_faults(api_url: str, realm_id: str, queued: list[str] | None = None,
               rates: dict[str, float] | None = None, hold_seconds: float = 35.0, latency_seconds: float = 0.0,
               seed: int | None = None) -> None:
    """Replace the company's fault plan: `queued` faults answer the next calls in order (a "drop" waits for
    the next write), then each call fails at `rates` ("500", "429", "timeout", "drop"); timeouts and drops
    hold the client `hold_seconds`; every call takes `latency_seconds` more."""
    response = httpx.put(f"{sandbox_root(api_url)}/admin/companies/{realm_id}/faults", timeout=10,
                         json={"queued": queued or [], "rates": rates or {}, "hold_seconds": hold_seconds,
                               "latency_seconds": latency_seconds, "seed": seed})
    response.raise_for_status()


def inject_faults(api_url: str, realm_id: str, kind: str, count: int = 1) -> None:
    """Make the company's next `count` API calls answer with `kind`."""
    set_faults(api_url, realm_id, queued=[kind] * count)


def dump_company(api_url: str, realm_id: str) -> dict[str, Any]:
    """Every object of the company by entity, with the peak requests in flight, the calls throttled and the
    calls served."""
    response = httpx.get(f"{sandbox_root(api_url)}/admin/companies/{realm_id}", timeout=10)
    response.raise_for_status()
    return dict(loads(response.text))
