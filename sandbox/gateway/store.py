"""The gateway sandbox's data: merchants (each with its API key), their customers and payment methods, and every
transaction with its children (voids, refunds, ACH returns).

In memory, or kept in a JSON file when given one, written after every change (before the answer goes out), so a
restarted sandbox keeps its merchants' keys and settings and still answers a repeated idempotency_id with the
original transaction instead of charging again. Money is kept as cents strings and handed out as Decimal.

Surcharges (credit cards only) are the gateway's, never part of `total`: a charge keeps the `total` it was asked
for and records the gateway's `surcharge` beside it, so the customer paid total + surcharge.

Each change that Stax announces by webhook leaves an event in an outbox, with the charge as it stood at that
moment; the app takes them out once the change is saved and posts them (see `take_events`).
"""

import json
import secrets
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Literal

from models.money import CENT, cents

Method = Literal["card", "bank"]
Failure = Literal["decline", "return"]
DECLINED = {"card": "Card declined by the issuer", "bank": "Bank account failed verification"}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Refusal(Exception):
    """The gateway will not do it: 422 naming the field (Stax's validation shape), or 404 for what the
    merchant cannot see."""

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.field, self.message, self.status = field, message, status


@dataclass
class Merchant:
    """A merchant, its key and its settings; the defaults are what a state file from before the settings means."""

    id: str
    name: str
    api_key: str
    surcharge_rate: str = "0"  # a percent, kept as its exact decimal string; 0: no surcharge
    webhook_url: str | None = None

    @property
    def rate(self) -> Decimal:
        return Decimal(self.surcharge_rate)


def surcharge_of(rate: Decimal, method: str, total: Decimal) -> Decimal:
    """What the gateway adds to a charge: `rate` percent of the total, to the cent half-up, on cards only."""
    if method != "card" or rate <= 0:
        return Decimal("0.00")
    return (Decimal(total) * rate / 100).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Event:
    """A webhook to send once the change is saved: the merchant's URL then, Stax's event name, the charge."""

    url: str
    name: str
    transaction: dict[str, Any]


class GatewayStore:
    def __init__(self, state_file: Path | None = None) -> None:
        self.lock = threading.RLock()
        self.state_file = state_file
        self.merchants: dict[str, Merchant] = {}
        self.customers: dict[str, dict[str, Any]] = {}
        self.payment_methods: dict[str, dict[str, Any]] = {}
        self.transactions: dict[str, dict[str, Any]] = {}  # in the order they were made
        self._by_idempotency_id: dict[tuple[str, str], str] = {}  # (merchant, idempotency_id) -> transaction
        self._events: list[Event] = []
        if state_file is not None and state_file.exists():
            self._load(json.loads(state_file.read_text()))

    def _load(self, data: dict[str, Any]) -> None:
        self.merchants = {m["id"]: Merchant(**m) for m in data["merchants"]}
        self.customers, self.payment_methods = data["customers"], data["payment_methods"]
        self.transactions = data["transactions"]
        for transaction in self.transactions.values():
            transaction.setdefault("surcharge", "0.00")  # made before surcharges existed
            if transaction["idempotency_id"] is not None:
                self._by_idempotency_id[transaction["merchant_id"], transaction["idempotency_id"]] = transaction["id"]

    def save(self) -> None:
        """Write the whole state (small: it is a sandbox) after every change."""
        if self.state_file is None:
            return
        with self.lock:
            data = {"merchants": [asdict(m) for m in self.merchants.values()], "customers": self.customers,
                    "payment_methods": self.payment_methods, "transactions": self.transactions}
            temporary = self.state_file.with_suffix(".tmp")
            temporary.parent.mkdir(parents=True, exist_ok=True)
            temporary.write_text(json.dumps(data))
            temporary.replace(self.state_file)

    # -- merchants, customers, payment methods -----------------------------------------------------------
    def add_merchant(self, name: str, merchant_id: str | None = None) -> Merchant:
        """A new merchant with a fresh API key; an existing id keeps its key (only the name changes)."""
        with self.lock:
            merchant = self.merchants.get(merchant_id or "")
            if merchant is None:
                merchant = Merchant(merchant_id or str(uuid.uuid4()), name, "stax_" + secrets.token_urlsafe(24))
                self.merchants[merchant.id] = merchant
            merchant.name = name
            self.save()
            return merchant

    def merchant(self, merchant_id: str) -> Merchant:
        merchant = self.merchants.get(merchant_id)
        if merchant is None:
            raise Refusal("merchant", f"merchant {merchant_id} not found", 404)
        return merchant

    def set_settings(self, merchant_id: str, surcharge_rate: Decimal, webhook_url: str | None) -> Merchant:
        """Replace the merchant's settings. A new rate applies to later charges only; a repeat of an earlier
        idempotency_id still answers the surcharge it was charged."""
        with self.lock:
            merchant = self.merchant(merchant_id)
            merchant.surcharge_rate, merchant.webhook_url = str(surcharge_rate), webhook_url
            self.save()
            return merchant

    def merchant_by_key(self, api_key: str) -> Merchant | None:
        return next((m for m in self.merchants.values() if secrets.compare_digest(m.api_key, api_key)), None)

    def add_payment_method(self, merchant: Merchant, method: Method, customer_name: str,
                           fails: Failure | None = None, customer_id: str | None = None) -> dict[str, Any]:
        """A card or bank account of a customer (found by id or name, else created). `fails` scripts what the
        bank does: "decline" every charge, or "return" an ACH debit once it settles."""
        if fails == "return" and method != "bank":
            raise Refusal("fails", "Only a bank account's debits can be returned.")
        with self.lock:
            customer = self.customers.get(customer_id or "") or next(
                (c for c in self.customers.values() if c["merchant_id"] == merchant.id and c["name"] == customer_name),
                None)
            if customer is None:
                customer = {"id": customer_id or str(uuid.uuid4()), "merchant_id": merchant.id, "name": customer_name,
                            "created_at": now_iso()}
                self.customers[customer["id"]] = customer
            elif customer["merchant_id"] != merchant.id:
                raise Refusal("customer_id", "The selected customer id is invalid.")
            payment_method = {"id": str(uuid.uuid4()), "merchant_id": merchant.id, "customer_id": customer["id"],
                              "method": method, "person_name": customer["name"], "fails": fails,
                              "card_last_four": "1111" if method == "card" else None,
                              "bank_name": "Sandbox Bank" if method == "bank" else None, "created_at": now_iso()}
            self.payment_methods[payment_method["id"]] = payment_method
            self.save()
            return dict(payment_method)

    def own_payment_method(self, merchant: Merchant, payment_method_id: str) -> dict[str, Any]:
        """The merchant's payment method, or the 422 Stax answers for one it does not know."""
        payment_method = self.payment_methods.get(payment_method_id)
        if payment_method is None or payment_method["merchant_id"] != merchant.id:
            raise Refusal("payment_method_id", "The selected payment method id is invalid.")
        return payment_method

    # -- webhooks ----------------------------------------------------------------------------------------
    def _announce(self, name: str, charge: dict[str, Any]) -> None:
        """Queue `name` with the charge as it stands now, if its merchant takes webhooks (called under the
        lock, before the save; sent only after it)."""
        url = self.merchants[charge["merchant_id"]].webhook_url
        if url:
            self._events.append(Event(url, name, self.public(charge)))

    def take_events(self) -> list[Event]:
        """The events of every change made so far, oldest first, each handed out once. Taken under the lock,
        so any change they describe has been saved."""
        with self.lock:
            events, self._events = self._events, []
            return events

    # -- transactions ------------------------------------------------------------------------------------
    def transaction(self, merchant: Merchant, transaction_id: str) -> dict[str, Any]:
        transaction = self.transactions.get(transaction_id)
        if transaction is None or transaction["merchant_id"] != merchant.id:
            raise Refusal("id", f"transaction {transaction_id} not found", 404)
        return transaction

    def _repeat(self, merchant: Merchant, idempotency_id: str | None, request: dict[str, Any]) -> dict[str, Any] | None:
        """What an earlier request with this idempotency_id made, if any. The same id with other parameters
        is refused: the caller has a bug, and guessing which request it meant could move money twice."""
        if idempotency_id is None:
            return None
        earlier_id = self._by_idempotency_id.get((merchant.id, idempotency_id))
        if earlier_id is None:
            return None
        earlier = self.transactions[earlier_id]
        if earlier["request"] != request:
            raise Refusal("idempotency_id", f"The idempotency_id {idempotency_id!r} was already used with other "
                                            f"parameters (transaction {earlier_id}).")
        return earlier

    def _record(self, merchant: Merchant, kind: str, payment_method: dict[str, Any], total: Decimal,
                idempotency_id: str | None, request: dict[str, Any], **fields: Any) -> dict[str, Any]:
        transaction = {"id": str(uuid.uuid4()), "merchant_id": merchant.id, "type": kind,
                       "method": payment_method["method"], "payment_method_id": payment_method["id"],
                       "customer_id": payment_method["customer_id"], "total": str(cents(total)),
                       "surcharge": "0.00", "total_refunded": "0.00", "success": True, "message": None,
                       "pre_auth": False, "settled_at": None, "invoice_id": None, "meta": {}, "reference_id": None,
                       "child_ids": [],
                       "idempotency_id": idempotency_id, "request": request, "created_at": now_iso(), **fields}
        transaction["updated_at"] = transaction["created_at"]
        self.transactions[transaction["id"]] = transaction
        if idempotency_id is not None:
            self._by_idempotency_id[merchant.id, idempotency_id] = transaction["id"]
        return transaction

    def charge(self, merchant: Merchant, payment_method_id: str, total: Decimal, idempotency_id: str | None,
               pre_auth: bool = False, meta: dict[str, Any] | None = None,
               invoice_id: str | None = None) -> dict[str, Any]:
        """A charge: declined when the payment method is set to decline (recorded all the same, as Stax keeps
        failed transactions), otherwise successful and waiting for the nightly settlement. A card on a
        surcharging merchant carries the surcharge beside `total` (a declined one the surcharge it attempted)."""
        request = {"op": "charge", "payment_method_id": payment_method_id, "total": str(cents(total)),
                   "pre_auth": pre_auth, "meta": meta or {}, "invoice_id": invoice_id}
        with self.lock:
            earlier = self._repeat(merchant, idempotency_id, request)
            if earlier is not None:
                return earlier
            payment_method = self.own_payment_method(merchant, payment_method_id)
            if pre_auth and payment_method["method"] == "bank":
                raise Refusal("pre_auth", "A bank account cannot be pre-authorized.")
            declined = payment_method["fails"] == "decline"
            transaction = self._record(merchant, "charge", payment_method, total, idempotency_id, request,
                                       pre_auth=pre_auth, meta=meta or {}, invoice_id=invoice_id, success=not declined,
                                       message=DECLINED[payment_method["method"]] if declined else None,
                                       surcharge=str(surcharge_of(merchant.rate, payment_method["method"], total)))
            self._announce("create_transaction", transaction)
            self.save()
            return transaction

    def _void_child(self, transaction: dict[str, Any]) -> dict[str, Any] | None:
        return next((self.transactions[c] for c in transaction["child_ids"]
                     if self.transactions[c]["type"] == "void"), None)

    def _open_charge(self, transaction: dict[str, Any]) -> None:
        """Only a successful charge not yet voided or returned can be voided, refunded or returned."""
        if transaction["type"] != "charge":
            raise Refusal("id", f"Only a charge can be voided or refunded; this is a {transaction['type']}.")
        if not transaction["success"]:
            raise Refusal("id", "A declined transaction cannot be voided or refunded.")
        if self._void_child(transaction) is not None:
            state = "returned" if transaction["settled_at"] else "voided"
            raise Refusal("id", f"The transaction was already {state}.")

    def _child(self, parent: dict[str, Any], kind: str, total: Decimal, idempotency_id: str | None = None,
               request: dict[str, Any] | None = None, message: str | None = None) -> dict[str, Any]:
        """A void, refund or return under the charge. A void gives back the whole of what was paid, the
        surcharge too; a refund gives back part of `total` only."""
        merchant = self.merchants[parent["merchant_id"]]
        payment_method = self.payment_methods[parent["payment_method_id"]]
        child = self._record(merchant, kind, payment_method, total, idempotency_id, request or {},
                             reference_id=parent["id"], message=message,
                             surcharge=parent["surcharge"] if kind == "void" else "0.00")
        parent["child_ids"].append(child["id"])
        parent["updated_at"] = child["created_at"]
        return child

    def void_or_refund(self, merchant: Merchant, transaction_id: str, total: Decimal | None,
                       idempotency_id: str | None) -> dict[str, Any]:
        """Before settlement a void, of the full amount only; after it a refund, partial allowed, never more
        than what is left. Answers the charge, its children included."""
        request = {"op": "void-or-refund", "transaction_id": transaction_id,
                   "total": None if total is None else str(cents(total))}
        with self.lock:
            earlier = self._repeat(merchant, idempotency_id, request)
            if earlier is not None:
                return self.transactions[earlier["reference_id"]]
            charge = self.transaction(merchant, transaction_id)
            self._open_charge(charge)
            full = Decimal(charge["total"])
            if charge["settled_at"] is None:
                if total is not None and total != full:
                    raise Refusal("total", f"Before it settles a transaction can only be voided in full ({full}).")
                self._child(charge, "void", full, idempotency_id, request)
            else:
                left = full - Decimal(charge["total_refunded"])
                amount = left if total is None else total
                if left <= 0:
                    raise Refusal("total", "The transaction was already refunded in full.")
                if amount > left:
                    raise Refusal("total", f"The refund total {amount} is more than what is left to refund ({left}).")
                self._child(charge, "refund", amount, idempotency_id, request)
                charge["total_refunded"] = str(cents(Decimal(charge["total_refunded"]) + amount))
            self._announce("update_transaction", charge)
            self.save()
            return charge

    def settle(self, merchant_id: str, transaction_id: str | None = None) -> list[dict[str, Any]]:
        """The nightly batch: every successful, captured charge not yet settled or voided settles now (only
        `transaction_id`, when given). A bank account set to "return" has its debit returned right after."""
        with self.lock:
            settled = []
            for charge in list(self.transactions.values()):
                if (charge["merchant_id"] != merchant_id or charge["type"] != "charge" or not charge["success"]
                        or charge["pre_auth"] or charge["settled_at"] is not None
                        or self._void_child(charge) is not None
                        or (transaction_id is not None and charge["id"] != transaction_id)):
                    continue
                charge["settled_at"] = charge["updated_at"] = now_iso()
                self._announce("update_transaction_settled", charge)
                if self.payment_methods[charge["payment_method_id"]]["fails"] == "return":
                    self._return(charge, "R01")
                settled.append(charge)
            self.save()
            return settled

    def return_debit(self, transaction_id: str, code: str = "R01") -> dict[str, Any]:
        """The bank sends an ACH debit back (after settlement: a pending one settles first). It shows as a child
        of type void on the settled charge, so a void on a settled charge means it was returned."""
        with self.lock:
            charge = self.transactions.get(transaction_id)
            if charge is None:
                raise Refusal("id", f"transaction {transaction_id} not found", 404)
            self._open_charge(charge)
            if charge["method"] != "bank":
                raise Refusal("id", "Only a bank debit can be returned.")
            if Decimal(charge["total_refunded"]) > 0:
                raise Refusal("id", "A refunded debit cannot be returned.")
            if charge["settled_at"] is None:
                charge["settled_at"] = now_iso()
                self._announce("update_transaction_settled", charge)
            self._return(charge, code)
            self.save()
            return charge

    def _return(self, charge: dict[str, Any], code: str) -> None:
        self._child(charge, "void", Decimal(charge["total"]), message=f"ACH return {code}")
        self._announce("update_transaction", charge)

    def charges(self, merchant_id: str, payment_method_id: str | None = None) -> list[dict[str, Any]]:
        return [t for t in self.transactions.values() if t["merchant_id"] == merchant_id and t["type"] == "charge"
                and (payment_method_id is None or t["payment_method_id"] == payment_method_id)]

    def public(self, transaction: dict[str, Any]) -> dict[str, Any]:
        """A transaction as Stax shows it: money as Decimal, what can still be done with it, its children."""
        with self.lock:
            total, refunded = Decimal(transaction["total"]), Decimal(transaction["total_refunded"])
            open_charge = (transaction["type"] == "charge" and transaction["success"]
                           and self._void_child(transaction) is None)
            settled = transaction["settled_at"] is not None
            hidden = ("merchant_id", "request", "child_ids")
            return {**{k: v for k, v in transaction.items() if k not in hidden},
                    "total": total, "surcharge": Decimal(transaction["surcharge"]), "total_refunded": refunded,
                    "is_captured": not transaction["pre_auth"],
                    "is_voidable": open_charge and not settled,
                    "is_refundable": open_charge and settled and not transaction["pre_auth"] and refunded < total,
                    "child_transactions": [self.public(self.transactions[c]) for c in transaction["child_ids"]]}
