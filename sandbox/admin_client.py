"""The one HTTP client under each sandbox's admin surface (`{sandbox}/admin/...`): JSON in, JSON out, a
refusal raised. The gateway's reads its answers with Decimal-exact money."""

from collections.abc import Callable
from typing import Any

import httpx


class SandboxAdminClient:
    def __init__(self, base_url: str, decode: Callable[[str], Any] | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/admin", timeout=10)
        self._decode = decode

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None,
              params: dict[str, str] | None = None) -> Any:
        response = self._http.request(method, path, json=body, params=params)
        response.raise_for_status()
        return self._decode(response.text) if self._decode else response.json()
