"""A client for the gateway sandbox's admin surface: what the tests and the demo do as the merchant's bank and
staff would (merchants, their keys and settings, payment methods, the nightly settlement, ACH returns,
faults)."""

from decimal import Decimal
from typing import Any

from sandbox.admin_client import SandboxAdminClient
from sandbox.qbo.wire import loads


class GatewaySandboxAdmin(SandboxAdminClient):
    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, decode=loads)

    def create_merchant(self, name: str, merchant_id: str | None = None) -> dict[str, Any]:
        """The merchant with its API key: `{"id", "name", "api_key"}`. An existing id keeps its key."""
        return dict(self._call("POST", "/merchants", {"name": name, "merchant_id": merchant_id}))

    def add_payment_method(self, merchant_id: str, method: str, customer_name: str, fails: str | None = None,
                           customer_id: str | None = None) -> dict[str, Any]:
        """A "card" or "bank" payment method of the customer; `fails` is "decline" (every charge) or "return"
        (a bank debit bounces once settled)."""
        return dict(self._call("POST", f"/merchants/{merchant_id}/payment-methods",
                               {"method": method, "customer_name": customer_name, "fails": fails,
                                "customer_id": customer_id}))

    def set_settings(self, merchant_id: str, surcharge_rate: Decimal | str = Decimal("0"),
                     webhook_url: str | None = None) -> dict[str, Any]:
        """Replace the merchant's settings (both: what is not given is off): `surcharge_rate`, a percent added
        to credit-card charges (0: none), and `webhook_url`, where Stax's webhooks go (None: none). Answers
        `{"id", "surcharge_rate", "webhook_url"}`."""
        if not isinstance(surcharge_rate, Decimal | str):
            raise TypeError(f"a surcharge rate must be a Decimal or a string, not {type(surcharge_rate).__name__}")
        settings = dict(self._call("PUT", f"/merchants/{merchant_id}/settings",
                                   {"surcharge_rate": str(surcharge_rate), "webhook_url": webhook_url}))
        return {**settings, "surcharge_rate": Decimal(settings["surcharge_rate"])}

    def merchant(self, merchant_id: str) -> dict[str, Any]:
        """The merchant, its settings, payment methods and charges."""
        return dict(self._call("GET", f"/merchants/{merchant_id}"))

    def charges(self, merchant_id: str, payment_method_id: str | None = None) -> list[dict[str, Any]]:
        """Every charge of the merchant (of one payment method), its voids, refunds and returns inside."""
        params = {"payment_method_id": payment_method_id} if payment_method_id else None
        return list(self._call("GET", f"/merchants/{merchant_id}", params=params)["charges"])

    def settle(self, merchant_id: str) -> list[dict[str, Any]]:
        """Run the nightly batch: every pending charge settles. Returns those that did."""
        return list(self._call("POST", f"/merchants/{merchant_id}/settle"))

    def settle_transaction(self, transaction_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/transactions/{transaction_id}/settle"))

    def return_debit(self, transaction_id: str, code: str = "R01") -> dict[str, Any]:
        """The bank returns an ACH debit: a child void appears on the (settled) charge."""
        return dict(self._call("POST", f"/transactions/{transaction_id}/return", {"code": code}))

    def set_faults(self, merchant_id: str, queued: list[str] | None = None, rates: dict[str, float] | None = None,
                   hold_seconds: float = 35.0, latency_seconds: float = 0.0, seed: int | None = None) -> None:
        """Replace the merchant's fault plan: `queued` faults ("500", "429", "timeout", "drop") answer its next
        calls in order (a "drop" waits for the next write and commits it), then calls fail at `rates`."""
        self._call("PUT", f"/merchants/{merchant_id}/faults",
                   {"queued": queued or [], "rates": rates or {}, "hold_seconds": hold_seconds,
                    "latency_seconds": latency_seconds, "seed": seed})
