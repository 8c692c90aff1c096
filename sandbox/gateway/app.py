"""The gateway sandbox's HTTP surface: Stax's API (`Authorization: Bearer <api key>`: charge, transactions,
void-or-refund, surcharge review) with its per-IP limits, its webhooks, and an admin API to set up merchants
(their surcharge rate and webhook URL) and payment methods, run the nightly settlement, return ACH debits and
inject faults.

How it answers, which Ledgerflow's adapter relies on:
- A charge the bank declines is recorded and answered HTTP 200 with `success: false` and a `message`; a repeat
  with its idempotency_id gets the same decline. A decline is an answer, never a transport error.
- A request the gateway will not process is a 4xx: 401 for a missing or unknown key, 404 for an unknown (or
  another merchant's) transaction, 422 `{"<field>": ["<message>"]}` for bad parameters, an over-refund, or an
  idempotency_id reused with other parameters.
- 429 with Retry-After when one IP has sent `requests_per_window` requests in the window (200 a minute), and
  for `block_seconds` (an hour) once it has had `failures_per_window` failed requests (4xx but 429) in the
  window (10).
- Amounts are JSON numbers parsed exactly, or strings: at most 2 decimals and above 0, never through a float.
- Surcharges (a merchant's `surcharge_rate`, a percent) are added to credit-card charges by the gateway and
  never to `total`: the transaction keeps `total` as asked and shows the gateway's `surcharge` beside it ("0.00"
  for a bank debit or a merchant that does not surcharge). `GET /surcharge/review` previews it.
- Webhooks, when the merchant has a `webhook_url`: a JSON POST of the charge as `GET /transaction/{id}` shows it
  (for a void, refund or ACH return the charge it belongs to, as it now stands), header `stax-event-name`:
  `create_transaction` (a new charge, declines included; a repeated idempotency_id sends nothing),
  `update_transaction` (a void, refund or return), `update_transaction_settled` (settlement). Sent after the
  change is saved, retried until answered; unsigned, as Stax documents no signature.
"""

import asyncio
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from models.money import cents
from sandbox.delivery import WebhookDelivery
from sandbox.gateway.store import Failure, GatewayStore, Merchant, Method, Refusal, surcharge_of
from sandbox.injected import FaultSettings
from sandbox.qbo.chaos import Fault, FaultPlan
from sandbox.qbo.wire import dumps, loads

MAX_PAGE = 200
T = TypeVar("T", bound=BaseModel)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json", headers=headers)


def _too_many(wait_seconds: float) -> Response:
    return _json({"error": "Too Many Attempts."}, 429, {"Retry-After": str(max(1, math.ceil(wait_seconds)))})


class Answered(Exception):
    """A call answered before (or instead of) its work: a bad key, bad parameters, an injected fault."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


# -- the per-IP limits -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    requests_per_window: int = 200
    failures_per_window: int = 10
    window_seconds: float = 60.0
    block_seconds: float = 3600.0


@dataclass
class _Client:
    requests: deque[float] = field(default_factory=deque)
    failures: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class ClientLimiter:
    """Stax's limits per client IP, over a sliding window."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}

    def _client(self, ip: str, now: float) -> _Client:
        client = self._clients.setdefault(ip, _Client())
        for times in (client.requests, client.failures):
            while times and times[0] <= now - self.limits.window_seconds:
                times.popleft()
        return client

    def admit(self, ip: str) -> float | None:
        """None when the request may go on, else how long the client must wait."""
        now = time.monotonic()
        with self._lock:
            client = self._client(ip, now)
            if client.blocked_until > now:
                return client.blocked_until - now
            if len(client.requests) >= self.limits.requests_per_window:
                return client.requests[0] + self.limits.window_seconds - now
            client.requests.append(now)
            return None

    def failed(self, ip: str) -> None:
        """One more failed request; the one that reaches the limit blocks the client."""
        now = time.monotonic()
        with self._lock:
            client = self._client(ip, now)
            client.failures.append(now)
            if len(client.failures) >= self.limits.failures_per_window:
                client.blocked_until = now + self.limits.block_seconds


# -- request bodies --------------------------------------------------------------------------------------
# Dollars as Stax takes them: exact, at most 2 decimals, never negative.
Dollars = Annotated[Decimal, Field(ge=0, decimal_places=2, max_digits=13), AfterValidator(cents)]


class LineItem(BaseModel):
    model_config = ConfigDict(extra="allow")

    item: str | None = None
    details: str | None = None
    quantity: Decimal | None = Field(default=None, gt=0, allow_inf_nan=False)
    price: Dollars | None = None


class Meta(BaseModel):
    model_config = ConfigDict(extra="allow")

    tax: Dollars | None = None
    subtotal: Dollars | None = None
    fee: Dollars | None = None
    payment_note: str | None = Field(default=None, max_length=255)
    lineItems: list[LineItem] | None = None  # Stax's spelling


class NewCharge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_method_id: str = Field(min_length=1)
    total: Annotated[Dollars, Field(gt=0)]
    pre_auth: bool = False
    meta: Meta | None = None
    invoice_id: str | None = None
    idempotency_id: str | None = Field(default=None, min_length=1, max_length=255)


class VoidOrRefund(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total: Annotated[Dollars, Field(gt=0)] | None = None
    idempotency_id: str | None = Field(default=None, min_length=1, max_length=255)


class NewMerchant(BaseModel):
    name: str = Field(min_length=1)
    merchant_id: str | None = Field(default=None, min_length=1)


class NewPaymentMethod(BaseModel):
    method: Method
    customer_name: str = Field(min_length=1)
    customer_id: str | None = None
    fails: Failure | None = None  # "decline": every charge is declined; "return": the debit bounces once settled


class AchReturn(BaseModel):
    code: str = "R01"


class MerchantSettings(BaseModel):
    """What a PUT replaces: both settings at once, so what was left out is off."""

    model_config = ConfigDict(extra="forbid")

    surcharge_rate: Decimal = Field(default=Decimal("0"), ge=0, le=100, decimal_places=4, allow_inf_nan=False)
    webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=2000)


class SurchargeQuery(BaseModel):
    payment_method_id: str = Field(min_length=1)
    total: Annotated[Dollars, Field(gt=0)]


def _parsed(model: type[T], body: Any) -> T:
    """The body as `model`, or Stax's 422: each bad field with its messages."""
    try:
        return model.model_validate(body)
    except ValidationError as error:
        problems: dict[str, list[str]] = {}
        for problem in error.errors():
            name = ".".join(str(part) for part in problem["loc"]) or "body"
            problems.setdefault(name, []).append(problem["msg"])
        raise Answered(_json(problems, 422)) from error


async def _body(request: Request) -> Any:
    """JSON with every number kept exact."""
    try:
        return loads(await request.body() or b"{}")
    except ValueError as error:
        raise Answered(_json({"body": ["The body must be JSON."]}, 422)) from error


def create_app(store: GatewayStore | None = None, limits: Limits | None = None,
               delivery: WebhookDelivery | None = None) -> FastAPI:
    store = store or GatewayStore()
    delivery = delivery or WebhookDelivery()
    limiter = ClientLimiter(limits)
    fault_plans: dict[str, FaultPlan] = {}
    app = FastAPI(title="Payment gateway sandbox (Stax)", docs_url=None, redoc_url=None)
    app.state.store, app.state.limiter, app.state.fault_plans = store, limiter, fault_plans
    app.state.delivery = delivery

    def send_webhooks() -> None:
        """Post what the store has announced, each after its change was saved (the store saves before it hands
        an event out); queued, so no answer waits on a receiver."""
        for event in store.take_events():
            delivery.send(event.url, dumps(event.transaction).encode(),
                          {"stax-event-name": event.name, "Content-Type": "application/json"})

    @app.middleware("http")
    async def limited(request: Request, call_next: Any) -> Any:
        """Stax's limits on its API (not on the sandbox's admin surface)."""
        if request.url.path.startswith("/admin") or request.url.path == "/healthz":
            return await call_next(request)
        ip = request.client.host if request.client else "unknown"
        wait = limiter.admit(ip)
        if wait is not None:
            return _too_many(wait)
        response = await call_next(request)
        if 400 <= response.status_code < 500 and response.status_code != 429:
            limiter.failed(ip)
        return response

    @app.exception_handler(Answered)
    async def _answered(_request: Request, answered: Answered) -> Response:
        return answered.response

    @app.exception_handler(Refusal)
    async def _refused(_request: Request, refusal: Refusal) -> Response:
        if refusal.status == 404:
            return _json({"error": refusal.message}, 404)
        return _json({refusal.field: [refusal.message]}, refusal.status)

    def merchant_of(authorization: Annotated[str | None, Header()] = None) -> Merchant:
        scheme, _, key = (authorization or "").partition(" ")
        merchant = store.merchant_by_key(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
        if merchant is None:
            raise Answered(_json({"error": "Unauthenticated."}, 401))
        return merchant

    MerchantDep = Annotated[Merchant, Depends(merchant_of)]

    def plan_of(merchant_id: str) -> FaultPlan:
        return fault_plans.setdefault(merchant_id, FaultPlan())

    async def injected(merchant: Merchant, write: bool) -> bool:
        """Injected latency and the faults that come before any work; True when the answer is to be dropped."""
        plan = plan_of(merchant.id)
        if plan.latency_seconds:
            await asyncio.sleep(plan.latency_seconds)
        fault = plan.next_fault(write)
        if fault == Fault.THROTTLE:
            raise Answered(_too_many(1))
        if fault == Fault.SERVER_ERROR:
            raise Answered(_json({"error": "Internal Server Error (injected by the sandbox)"}, 500))
        if fault == Fault.TIMEOUT:
            await asyncio.sleep(plan.hold_seconds)
            raise Answered(_json({"error": "Gateway Timeout"}, 504))
        return fault == Fault.DROP

    async def answer(merchant: Merchant, drop: bool, body: Any) -> Response:
        """The answer, unless a drop was injected: then the work stands and the client never hears back."""
        if drop:
            await asyncio.sleep(plan_of(merchant.id).hold_seconds)
            return _json({"error": "Gateway Timeout"}, 504)
        return _json(body)

    # -- Stax's API ----------------------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/charge")
    async def charge(merchant: MerchantDep, request: Request) -> Response:
        drop = await injected(merchant, write=True)
        new = _parsed(NewCharge, await _body(request))
        meta = new.meta.model_dump(mode="json", exclude_none=True) if new.meta else None
        transaction = store.charge(merchant, new.payment_method_id, new.total, new.idempotency_id, new.pre_auth,
                                   meta, new.invoice_id)
        send_webhooks()
        return await answer(merchant, drop, store.public(transaction))

    @app.get("/surcharge/review")
    async def surcharge_review(merchant: MerchantDep, request: Request) -> Response:
        """What a charge of `total` to the payment method would add: the merchant's rate on a credit card,
        nothing on a bank account (its bin_type "ACH")."""
        drop = await injected(merchant, write=False)
        query = _parsed(SurchargeQuery, dict(request.query_params))
        with store.lock:
            method = store.own_payment_method(merchant, query.payment_method_id)["method"]
            rate = merchant.rate if method == "card" else Decimal("0")
        amount = surcharge_of(rate, method, query.total)
        return await answer(merchant, drop, {"bin_type": "CREDIT" if method == "card" else "ACH",
                                             "surcharge_rate": rate, "surcharge_amount": amount,
                                             "total_with_surcharge": cents(query.total + amount)})

    @app.get("/transaction")
    async def transactions(merchant: MerchantDep, payment_method_id: str | None = None,
                           type: Literal["charge", "void", "refund"] | None = None, page: int = 1,
                           per_page: int = 50) -> Response:
        """The merchant's transactions, oldest first, in Stax's (Laravel's) page shape."""
        drop = await injected(merchant, write=False)
        if page < 1 or not 1 <= per_page <= MAX_PAGE:
            raise Refusal("per_page", f"page must be at least 1 and per_page between 1 and {MAX_PAGE}.")
        with store.lock:
            rows = [store.public(t) for t in store.transactions.values() if t["merchant_id"] == merchant.id
                    and (payment_method_id is None or t["payment_method_id"] == payment_method_id)
                    and (type is None or t["type"] == type)]
        last_page = max(1, math.ceil(len(rows) / per_page))
        return await answer(merchant, drop, {"total": len(rows), "per_page": per_page, "current_page": page,
                                             "last_page": last_page,
                                             "data": rows[(page - 1) * per_page:page * per_page]})

    @app.get("/transaction/{transaction_id}")
    async def transaction(merchant: MerchantDep, transaction_id: str) -> Response:
        drop = await injected(merchant, write=False)
        return await answer(merchant, drop, store.public(store.transaction(merchant, transaction_id)))

    @app.post("/transaction/{transaction_id}/void-or-refund")
    async def void_or_refund(merchant: MerchantDep, transaction_id: str, request: Request) -> Response:
        """A void before settlement (full amount), a refund after (partial allowed). Like /charge, it takes an
        idempotency_id: a repeat answers the charge as it stands, without voiding or refunding again."""
        drop = await injected(merchant, write=True)
        change = _parsed(VoidOrRefund, await _body(request))
        charge = store.void_or_refund(merchant, transaction_id, change.total, change.idempotency_id)
        send_webhooks()
        return await answer(merchant, drop, store.public(charge))

    # -- admin (sandbox only): what the merchant's bank and its staff do -----------------------------------
    @app.post("/admin/merchants")
    def admin_create_merchant(new: NewMerchant) -> Response:
        """Create the merchant (or rename an existing one: its key stays) and hand out its API key."""
        merchant = store.add_merchant(new.name, new.merchant_id)
        return _json({"id": merchant.id, "name": merchant.name, "api_key": merchant.api_key})

    @app.get("/admin/merchants/{merchant_id}")
    def admin_merchant(merchant_id: str, payment_method_id: str | None = None) -> Response:
        """The merchant with its payment methods and every charge (children inside), for tests to look at."""
        merchant = store.merchant(merchant_id)
        with store.lock:
            methods = [m for m in store.payment_methods.values() if m["merchant_id"] == merchant_id]
            charges = [store.public(t) for t in store.charges(merchant_id, payment_method_id)]
        return _json({**settings_of(merchant), "name": merchant.name, "payment_methods": methods,
                      "charges": charges})

    def settings_of(merchant: Merchant) -> dict[str, Any]:
        return {"id": merchant.id, "surcharge_rate": merchant.rate, "webhook_url": merchant.webhook_url}

    @app.put("/admin/merchants/{merchant_id}/settings")
    async def admin_set_settings(merchant_id: str, request: Request) -> Response:
        """Replace the merchant's settings: {"surcharge_rate": "3.0", "webhook_url": "http://..."}; what is
        left out goes back to its default (no surcharge, no webhooks). Later charges only."""
        store.merchant(merchant_id)
        settings = _parsed(MerchantSettings, await _body(request))
        return _json(settings_of(store.set_settings(merchant_id, settings.surcharge_rate, settings.webhook_url)))

    @app.post("/admin/merchants/{merchant_id}/payment-methods")
    def admin_add_payment_method(merchant_id: str, new: NewPaymentMethod) -> Response:
        return _json(store.add_payment_method(store.merchant(merchant_id), new.method, new.customer_name,
                                              new.fails, new.customer_id))

    @app.put("/admin/merchants/{merchant_id}/faults")
    async def admin_set_faults(merchant_id: str, request: Request) -> Response:
        """Replace the merchant's fault plan: {"queued": ["500", "drop"], "rates": {"timeout": 0.1},
        "hold_seconds": 35, "latency_seconds": 0.05, "seed": 1}; faults "500", "429", "timeout", "drop"."""
        store.merchant(merchant_id)
        settings = _parsed(FaultSettings, await _body(request))
        fault_plans[merchant_id] = FaultPlan(**settings.model_dump())
        return _json(fault_plans[merchant_id].describe())

    @app.post("/admin/merchants/{merchant_id}/settle")
    def admin_settle(merchant_id: str) -> Response:
        """The nightly batch: every pending charge of the merchant settles (cards and ACH alike)."""
        store.merchant(merchant_id)
        settled = [store.public(t) for t in store.settle(merchant_id)]
        send_webhooks()
        return _json(settled)

    @app.post("/admin/transactions/{transaction_id}/settle")
    def admin_settle_one(transaction_id: str) -> Response:
        with store.lock:
            found = store.transactions.get(transaction_id)
            if found is None:
                raise Refusal("id", f"transaction {transaction_id} not found", 404)
            store.settle(found["merchant_id"], transaction_id)
            settled = store.public(found)
        send_webhooks()
        return _json(settled)

    @app.post("/admin/transactions/{transaction_id}/return")
    def admin_return(transaction_id: str, ach_return: AchReturn | None = None) -> Response:
        """The bank returns an ACH debit (return code R01 unless given): a child void on the settled charge."""
        code = ach_return.code if ach_return else AchReturn().code
        returned = store.public(store.return_debit(transaction_id, code))
        send_webhooks()
        return _json(returned)

    return app
