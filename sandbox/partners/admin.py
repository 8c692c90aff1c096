"""A client for the partners sandbox's admin surface: what each partner received, and failures on demand."""

from typing import Any
from urllib.parse import quote

from sandbox.admin_client import SandboxAdminClient


class PartnersSandboxAdmin(SandboxAdminClient):
    def requests(self, kind: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Every call received, oldest first, each with `method`, `path`, `query`, `headers`, `body`, `parsed`
        (its form or JSON) and the `status` answered. `kind`: sheets, mailbox_power, clubready or hook (`name`
        the webhook's)."""
        params = {k: v for k, v in {"kind": kind, "name": name}.items() if v is not None}
        return list(self._call("GET", "/requests", params=params))

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def sheet(self, spreadsheet_id: str, sheet: str) -> list[list[str]]:
        """The sheet's rows as stored."""
        return list(self._call("GET", f"/sheets/{quote(spreadsheet_id, safe='')}/{quote(sheet, safe='')}"))

    def fail_hook(self, name: str, times: int) -> None:
        """The webhook `/hooks/{name}` answers its next `times` calls with 500."""
        self._call("PUT", f"/hooks/{quote(name, safe='')}/fail", {"times": times})

    def set_faults(self, target: str, queued: list[str] | None = None, rates: dict[str, float] | None = None,
                   hold_seconds: float = 5.0, latency_seconds: float = 0.0) -> None:
        """`target`: "sheets", "mailbox_power", "clubready" or "hook:{name}"; faults "500", "429", "timeout",
        "drop" answer its next calls in order, then calls fail at `rates`."""
        self._call("PUT", f"/faults/{quote(target, safe='')}", {"queued": queued or [], "rates": rates or {},
                                                               "hold_seconds": hold_seconds,
                                                               "latency_seconds": latency_seconds})
