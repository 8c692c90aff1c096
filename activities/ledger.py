"""The ledger in the database: what was created in QBO for each CRM object, and each proposal's record."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select
from temporalio import activity

from models.accounts import Franchisee
from models.db import as_utc, dialect_insert, session_scope
from models.ledger import CrmSyncCursor, LedgerInvoice, LedgerPayment, ProposalRecord, QboObjectMap
from models.payment_settings import PaymentSettings
from models.proposals import ProposalRef, ProposalState, SaveProposalInput
from models.reconcile import CursorInput
from models.time_zones import local_today

# Core statements built once: these run for every QBO object a proposal touches, and through an ORM session a
# record and a lookup cost 2 ms of CPU against 0.35 ms (SQLite, measured 2026-12-03).
_MAPPED = select(QboObjectMap.qbo_id).where(
    QboObjectMap.account_id == bindparam("account_id"), QboObjectMap.realm_id == bindparam("realm_id"),
    QboObjectMap.crm_type == bindparam("crm_type"), QboObjectMap.crm_id == bindparam("crm_id"),
    QboObjectMap.qbo_entity == bindparam("qbo_entity"))
_RECORD = insert(QboObjectMap)


def mapped_qbo_id(engine: Engine, account_id: str, realm_id: str, crm_type: str, crm_id: str,
                  qbo_entity: str) -> str | None:
    with engine.connect() as connection:
        return connection.execute(_MAPPED, {"account_id": account_id, "realm_id": realm_id, "crm_type": crm_type,
                                            "crm_id": crm_id, "qbo_entity": qbo_entity}).scalar()


def record_mapping(
    engine: Engine, account_id: str, realm_id: str, crm_type: str, crm_id: str, qbo_entity: str, qbo_id: str
) -> str:
    """Record the mapping; if another attempt recorded it first, keep and return theirs."""
    try:
        with engine.begin() as connection:
            connection.execute(_RECORD, {"account_id": account_id, "realm_id": realm_id, "crm_type": crm_type,
                                         "crm_id": crm_id, "qbo_entity": qbo_entity, "qbo_id": qbo_id})
    except IntegrityError:
        existing = mapped_qbo_id(engine, account_id, realm_id, crm_type, crm_id, qbo_entity)
        if existing is None:
            raise
        return existing
    return qbo_id


# The proposal's rows, written at the end of every pass of its workflow (twice a lifecycle at least): Core
# upserts built once per dialect, as the object map's statements are; through an ORM session the record, its
# payments and the invoice cost ~9% of the worker's interpreter under load (py-spy, 2026-12-03).
_RECORD_COLUMNS = ("realm_id", "contact_id", "number", "stage", "customer_id", "estimate_id", "invoice_id",
                   "unapplied_total", "stuck", "state", "updated_at")
# What the CRM or QBO says about a payment; its amounts, date and royalty columns stay as first recorded.
_PAYMENT_COLUMNS = ("contact_id", "qbo_payment_id", "applied_to_invoice", "voided", "voided_at")
# The invoice as issued: replaced only by another invoice (the autopay exclusion staff set stays).
_INVOICE_COLUMNS = ("realm_id", "invoice_id", "customer_id", "contact_id", "number", "total", "line_items",
                    "issued_on", "due_on")
_LOAD = select(ProposalRecord.realm_id, ProposalRecord.state).where(
    ProposalRecord.account_id == bindparam("account_id"), ProposalRecord.proposal_id == bindparam("proposal_id"))
_INVOICE_CONTACT = update(LedgerInvoice).where(  # an UPDATE's bind names must differ from its columns'
    LedgerInvoice.account_id == bindparam("of_account"), LedgerInvoice.proposal_id == bindparam("of_proposal"),
    LedgerInvoice.invoice_id == bindparam("of_invoice")).values(contact_id=bindparam("to_contact"))
_TERMS = select(Franchisee.time_zone, Franchisee.payments).where(Franchisee.account_id == bindparam("account_id"))


@dataclass(frozen=True)
class _Upserts:
    record: Any
    payment: Any
    invoice: Any


@lru_cache(maxsize=2)
def _upserts(dialect: str) -> _Upserts:
    def upsert(table: Any, keys: tuple[str, ...], columns: tuple[str, ...]) -> Any:
        statement = dialect_insert(dialect)(table)
        return statement.on_conflict_do_update(index_elements=list(keys),
                                               set_={c: statement.excluded[c] for c in columns})

    return _Upserts(record=upsert(ProposalRecord.__table__, ("account_id", "proposal_id"), _RECORD_COLUMNS),
                    payment=upsert(LedgerPayment.__table__, ("account_id", "crm_payment_id"), _PAYMENT_COLUMNS),
                    invoice=upsert(LedgerInvoice.__table__, ("account_id", "proposal_id"), _INVOICE_COLUMNS))


def _keep_invoice(connection: Connection, upserts: _Upserts, ref: ProposalRef, state: ProposalState) -> None:
    """The invoice as issued, written the first time the proposal is saved with it (in the pass that created
    it, so the proposal's lines are the invoice's); after that only its contact follows."""
    if connection.execute(_INVOICE_CONTACT, {"of_account": ref.account_id, "of_proposal": ref.proposal_id,
                                             "of_invoice": state.invoice_id, "to_contact": state.contact_id}).rowcount:
        return
    assert state.proposal is not None and state.customer_id is not None
    terms = connection.execute(_TERMS, {"account_id": ref.account_id}).first()
    time_zone, payments = terms if terms is not None else ("UTC", {})
    issued_on = local_today(time_zone)
    connection.execute(upserts.invoice, {
        "account_id": ref.account_id, "proposal_id": ref.proposal_id, "realm_id": ref.realm_id,
        "invoice_id": state.invoice_id, "customer_id": state.customer_id, "contact_id": state.contact_id,
        "number": state.proposal.number, "total": state.proposal.total,
        "line_items": sorted({line.product or line.description for line in state.proposal.lines}),
        "issued_on": issued_on,
        "due_on": issued_on + timedelta(days=PaymentSettings.model_validate(payments or {}).terms_days),
        "autopay_excluded": False})


class LedgerActivities:
    """The proposal workflow's record in the ledger: saved after each change, read when a run starts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @activity.defn
    def save_proposal_record(self, input: SaveProposalInput) -> None:
        """Upsert the proposal's row and one row per payment. Payment rows keep their identity and their
        royalty columns; only what the CRM or QBO said about them changes."""
        ref, state = input.ref, input.state
        upserts, now = _upserts(self.engine.dialect.name), datetime.now(UTC)
        with self.engine.begin() as connection:
            connection.execute(upserts.record, {
                "account_id": ref.account_id, "proposal_id": ref.proposal_id, "realm_id": ref.realm_id,
                "contact_id": state.contact_id, "number": state.proposal.number if state.proposal else None,
                "stage": state.stage.value if state.stage else None, "customer_id": state.customer_id,
                "estimate_id": state.estimate_id, "invoice_id": state.invoice_id,
                "unapplied_total": state.unapplied_total,
                "stuck": "; ".join(f"{s.step}: {s.error}" for s in state.stuck) or None,
                "state": state.model_dump_json(), "updated_at": now})
            if state.payments:
                connection.execute(upserts.payment, [{
                    "account_id": ref.account_id, "crm_payment_id": held.payment.id, "proposal_id": ref.proposal_id,
                    "contact_id": state.contact_id, "amount": held.payment.amount, "tip": held.payment.tip,
                    "convenience_fee": held.payment.convenience_fee, "received_on": held.payment.received_on,
                    "method": held.payment.method, "qbo_payment_id": held.qbo_id,
                    "applied_to_invoice": held.applied, "voided": held.voided, "voided_at": held.voided_at,
                    "recorded_at": now} for held in state.payments])
            if state.invoice_id is not None:
                _keep_invoice(connection, upserts, ref, state)

    @activity.defn
    def load_proposal_record(self, ref: ProposalRef) -> ProposalState | None:
        """The state the proposal's last run saved, for a run starting after an idle finish; None when new.
        A record for another QBO company is not reused: its map starts afresh there too."""
        with self.engine.connect() as connection:
            record = connection.execute(_LOAD, {"account_id": ref.account_id,
                                                "proposal_id": ref.proposal_id}).first()
        if record is None or record.realm_id != ref.realm_id:
            return None
        return ProposalState.model_validate_json(record.state)

    @activity.defn
    def load_sync_cursor(self, account_id: str) -> datetime | None:
        with Session(self.engine) as session:
            row = session.get(CrmSyncCursor, account_id)
        return None if row is None else as_utc(row.cursor)

    @activity.defn
    def save_sync_cursor(self, input: CursorInput) -> None:
        """Move the cursor forward only: two syncs finishing out of order never move it back."""
        with session_scope(self.engine) as session:
            row = session.get(CrmSyncCursor, input.account_id)
            if row is None:
                session.add(CrmSyncCursor(account_id=input.account_id, cursor=input.cursor))
            elif input.cursor > as_utc(row.cursor):
                row.cursor, row.updated_at = input.cursor, datetime.now(UTC)
                session.add(row)

    def activities(self) -> list[Callable[..., Any]]:
        return [self.save_proposal_record, self.load_proposal_record, self.load_sync_cursor, self.save_sync_cursor]
