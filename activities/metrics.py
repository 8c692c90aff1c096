"""Ledgerflow's own counters, recorded through the Temporal SDK's metric meter: they come out of the same
Prometheus endpoint as the SDK's metrics (LEDGERFLOW_METRICS_BIND_ADDRESS, see config/temporal.py), labelled
by the SDK with the namespace, task queue and activity type that counted them.

One function per counter, called on one line where the thing happens. Outside an activity (a plain call in a
unit test, a script) or on a worker without a metrics endpoint (the SDK's meter is then a no-op) nothing is
recorded, and recording never fails the caller: a counter is not worth an activity's retry.

Counters are counted by activity attempts, so they are exact where the counted thing happens once (a QBO
answer, a ledger row changing state) and at-least-once elsewhere: a retried attempt counts again.
"""

import logging
from decimal import Decimal

from temporalio import activity

_log = logging.getLogger(__name__)

QBO_WRITES = "ledgerflow_qbo_writes"
QBO_THROTTLED = "ledgerflow_qbo_throttled"
QBO_REALM_BUSY = "ledgerflow_qbo_realm_busy"
QBO_RETRIES = "ledgerflow_qbo_retries"
LEAD_RECEIPTS = "ledgerflow_lead_receipts"
LEAD_CONTACTS_CREATED = "ledgerflow_lead_contacts_created"
ROYALTY_CHECKS = "ledgerflow_royalty_checks_written"
ROYALTY_CENTS = "ledgerflow_royalty_charged_cents"

DESCRIPTIONS = {
    QBO_WRITES: "Writes sent to QBO (create, update, void), by entity, operation and outcome (ok or error)",
    QBO_THROTTLED: "QBO answers of 429 ThrottleExceeded; each is retried after qbo_throttle_retry_seconds",
    QBO_REALM_BUSY: "QBO calls Ledgerflow's own per-company limiter turned away (the activity retries), by limit",
    QBO_RETRIES: "Attempts after the first of activities that call QBO, counted at their first QBO call",
    LEAD_RECEIPTS: "Leads and captured emails settled, by outcome (created, duplicate, failed, noted, unmatched)",
    LEAD_CONTACTS_CREATED: "CRM contacts created for leads",
    ROYALTY_CHECKS: "Royalty checks recorded as written in a franchisee's QBO file, by franchisor",
    ROYALTY_CENTS: "Royalty and marketing fee on the checks written, in cents, by franchisor and fee",
}


def _add(name: str, value: int = 1, **labels: str) -> None:
    if value <= 0 or not activity.in_activity():
        return
    try:
        activity.metric_meter().create_counter(name, DESCRIPTIONS[name]).add(value, labels)
    except Exception:  # never fail an activity (after its write) over a counter
        _log.warning("could not record the counter %s", name, exc_info=True)


def qbo_write(entity: str, operation: str, outcome: str) -> None:
    _add(QBO_WRITES, entity=entity, operation=operation, outcome=outcome)


def qbo_throttled() -> None:
    _add(QBO_THROTTLED)


def qbo_realm_busy(reason: str) -> None:
    _add(QBO_REALM_BUSY, reason=reason)


def qbo_attempt() -> None:
    """At an activity attempt's first QBO call: counted when the attempt is a retry."""
    if activity.in_activity() and activity.info().attempt > 1:
        _add(QBO_RETRIES)


def lead_settled(outcome: str) -> None:
    _add(LEAD_RECEIPTS, outcome=outcome)


def lead_contact_created() -> None:
    _add(LEAD_CONTACTS_CREATED)


def royalty_check_written(franchisor_id: str, royalty: Decimal, marketing: Decimal) -> None:
    _add(ROYALTY_CHECKS, franchisor=franchisor_id)
    for fee, amount in (("royalty", royalty), ("marketing", marketing)):
        _add(ROYALTY_CENTS, int((amount * 100).to_integral_value()), franchisor=franchisor_id, fee=fee)
