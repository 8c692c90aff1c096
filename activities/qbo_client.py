"""python-quickbooks clients per QBO company: fresh OAuth tokens, the company's limits, a timeout on every
call, every write audited, and QBO's faults turned into retryable or final activity errors."""

import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import requests
from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from quickbooks.mixins import DecimalEncoder
from sqlalchemy import Engine, bindparam, delete, insert, select, update
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError
from urllib3.exceptions import HTTPError

from activities import metrics
from activities.qbo_limits import RealmBusy, RealmLimiter, RealmLimits
from activities.qbo_transport import QboTransport
from config.settings import Settings, on_loopback
from models.audit import QboAuditLog
from models.qbo_connection import QboConnection

T = TypeVar("T")
# Codes that mean the request itself is wrong: retrying cannot help.
FINAL_CODES = {610, 2010, 2020, 2500, 4000, 6000, 6070, 6140}
TOKEN_MARGIN = timedelta(minutes=5)
_SENT = insert(QboAuditLog)
_FINISHED = update(QboAuditLog).where(QboAuditLog.id == bindparam("audit_id"))
_FORGOTTEN = delete(QboAuditLog).where(QboAuditLog.id == bindparam("audit_id"))
_SENT_BEFORE = select(QboAuditLog.id).where(QboAuditLog.request_id == bindparam("request_id"),
                                            QboAuditLog.realm_id == bindparam("realm_id")).limit(1)


class _QuickBooks(QuickBooks):
    """python-quickbooks pointed at a configurable base URL, with a timeout it does not have by itself, sending
    through the connector's transport. By itself it makes an OAuth2Session for every client, so every call
    opened a new connection to QBO (a TCP and TLS handshake each) and built a session to throw away."""

    base_url = ""
    timeout_seconds = 30.0
    access_token = ""
    transport: QboTransport

    @property
    def api_url(self) -> str:
        return self.base_url

    def _start_session(self) -> str:
        return self.refresh_token  # the connector sets `transport` and `access_token`

    def process_request(self, request_type: str, url: str, headers: Any = "", params: Any = "",
                        data: Any = "") -> Any:
        headers.update({"Authorization": "Bearer " + self.access_token})
        return self.transport.request(request_type, url, headers=headers, params=params, data=data,
                                      timeout=self.timeout_seconds)


def qbo_json(obj: Any) -> str:
    """A python-quickbooks object as JSON: what its `to_json` writes, without the indentation. Indented, Python's
    json module leaves its C encoder for the pure-Python one (3-4x the CPU), and every write was encoded three
    times (the audited body, the request, the answer): a fifth of a lifecycle's activity CPU (cProfile)."""
    return json.dumps(obj, cls=DecimalEncoder, default=obj.json_filter(), sort_keys=True)


def _is_update(obj: Any) -> bool:
    """Whether saving `obj` updates an object QBO has, by python-quickbooks' own rule for choosing the endpoint."""
    return bool(getattr(obj, "Id", None)) and int(obj.Id) > 0


def _save(qb: QuickBooks, obj: Any, body: str, request_id: str, params: dict[str, str] | None) -> dict[str, Any]:
    """`obj.save(qb=qb, request_id=request_id, params=params)` sending `body`, already encoded, instead of
    encoding the object again: QBO's answer, the object as QBO stored it."""
    send = qb.update_object if _is_update(obj) else qb.create_object
    answer = send(obj.qbo_object_name, body, request_id=request_id, params=params)
    return dict(answer[obj.qbo_json_object_name or obj.qbo_object_name])


def _void(qb: QuickBooks, obj: Any) -> dict[str, Any]:
    answer = obj.void(qb=qb)
    return dict(answer.get(obj.qbo_object_name, answer))


def qbo_fault_code(error: BaseException) -> int | None:
    """QBO's error code behind an activity error that `QboConnector.call` raised, when QBO answered with one."""
    cause = error.__cause__
    return int(cause.error_code or 0) or None if isinstance(cause, QuickbooksException) else None


def qbo_error(exc: QuickbooksException, throttle_wait: timedelta) -> ApplicationError:
    """The activity error for a QBO fault: final for a bad request (QBO's message kept), retryable otherwise;
    after a 429 the retry waits `throttle_wait` without holding a worker slot."""
    code = int(exc.error_code or 0)
    detail = f"QBO {code}: {exc.message} {exc.detail}".strip()
    if "ThrottleExceeded" in str(exc.message) or "ThrottleExceeded" in str(exc.detail):
        metrics.qbo_throttled()
        return ApplicationError(detail, type="QboThrottled", next_retry_delay=throttle_wait)
    if code in FINAL_CODES:
        return ApplicationError(detail, type="QboValidationError", non_retryable=True)
    return ApplicationError(detail, type=f"QboError{code}")


class QboConnector:
    def __init__(self, settings: Settings, engine: Engine, limiter: RealmLimiter | None = None) -> None:
        self.settings = settings
        self.engine = engine
        # A call whose worker died holds its slot only until our HTTP timeout would have ended it anyway (a
        # slot covers one request; see `call`).
        lease = timedelta(seconds=settings.qbo_http_timeout_seconds + 5)
        self.limiter = limiter or RealmLimiter(engine, RealmLimits(lease=lease))
        self._refresh_lock = threading.Lock()
        self.transport = QboTransport(settings.qbo_api_url, connections=settings.worker_activity_threads)
        self._auth_clients: dict[str, AuthClient] = {}
        # Each company's connection as last read, kept until its access token expires or QBO rejects it:
        # reading the row and decrypting its tokens on every call was ~6% of the worker's interpreter (py-spy).
        self._connections: dict[str, QboConnection] = {}
        if settings.qbo_allow_insecure_transport and on_loopback(settings.qbo_api_url):
            # requests-oauthlib refuses plain http; the loopback sandbox speaks nothing else.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

    # -- tokens --------------------------------------------------------------------------------------
    def _auth_client(self, realm_id: str) -> AuthClient:
        """One AuthClient per company per process: it fetches the discovery document when made."""
        if realm_id not in self._auth_clients:
            self._auth_clients[realm_id] = AuthClient(
                client_id=self.settings.qbo_client_id,
                client_secret=self.settings.qbo_client_secret.get_secret_value(),
                redirect_uri=self.settings.qbo_redirect_uri,
                environment=self.settings.qbo_discovery_url,
                realm_id=realm_id,
            )
        return self._auth_clients[realm_id]

    def _usable(self, conn: QboConnection, rejected: str | None) -> bool:
        expires = conn.access_token_expires_at  # SQLModel returns aware UTC datetimes
        return bool(conn.access_token) and conn.access_token != rejected and expires is not None \
            and expires - TOKEN_MARGIN > datetime.now(UTC)

    def _connection(self, realm_id: str, rejected: str | None = None) -> QboConnection:
        """The company's connection with a usable access token (not `rejected`), from memory while it lasts."""
        kept = self._connections.get(realm_id)
        if kept is not None and self._usable(kept, rejected):
            return kept
        self._connections.pop(realm_id, None)
        conn = self._stored_connection(realm_id, rejected)
        self._connections[realm_id] = conn
        return conn

    def _stored_connection(self, realm_id: str, rejected: str | None) -> QboConnection:
        """The connection from the database, refreshed if its access token is not usable. Refresh tokens rotate,
        so a refresh happens with the connection's row locked: across every worker, one refresh per company at
        a time, and the newest refresh token is stored before anyone uses it."""
        with Session(self.engine) as session:
            conn = session.get(QboConnection, realm_id)
        if conn is None:
            raise ApplicationError(f"QuickBooks company {realm_id} is not connected", type="QboNotConnected",
                                   non_retryable=True)
        if self._usable(conn, rejected):
            return conn
        with self._refresh_lock, Session(self.engine, expire_on_commit=False) as session:
            session.execute(update(QboConnection).where(QboConnection.realm_id == realm_id)
                            .values(realm_id=QboConnection.realm_id))  # lock the row
            conn = session.get(QboConnection, realm_id, populate_existing=True)
            assert conn is not None
            if self._usable(conn, rejected):  # another worker refreshed while we waited
                session.commit()  # releases the lock; expire_on_commit is off, so conn stays readable
                return conn
            auth = self._auth_client(realm_id)
            try:
                auth.refresh(refresh_token=conn.refresh_token)
            except AuthClientError as exc:
                session.rollback()
                raise ApplicationError(f"QuickBooks refused to refresh the token of company {realm_id}: "
                                       f"HTTP {exc.status_code}", type="QboRefreshFailed") from exc
            now = datetime.now(UTC)
            conn.access_token = auth.access_token
            conn.refresh_token = auth.refresh_token
            conn.access_token_expires_at = now + timedelta(seconds=int(auth.expires_in or 3600))
            conn.updated_at = now
            session.add(conn)
            session.commit()
            return conn

    def _client(self, realm_id: str, conn: QboConnection) -> QuickBooks:
        auth = self._auth_client(realm_id)
        qb = _QuickBooks(auth_client=auth, refresh_token=conn.refresh_token, company_id=realm_id,
                         minorversion=self.settings.qbo_minor_version, use_decimal=True)
        qb.transport, qb.access_token = self.transport, conn.access_token or ""
        qb.base_url = self.settings.qbo_api_url.rstrip("/")
        qb.timeout_seconds = self.settings.qbo_http_timeout_seconds
        return qb

    def client(self, realm_id: str) -> QuickBooks:
        return self._client(realm_id, self._connection(realm_id))

    # -- calls ---------------------------------------------------------------------------------------
    def call(self, realm_id: str, fn: Callable[[QuickBooks], T]) -> T:
        """One QBO call within the company's limits; a rejected access token is refreshed once and the call
        retried. Each request to QBO takes a slot of its own, and the token refresh holds none: a slot never
        outlasts one request, which the lease below relies on."""
        try:
            conn = self._connection(realm_id)  # a token refresh that cannot reach QBO is an outage too
            try:
                return self._limited(realm_id, conn, fn)
            except AuthorizationException:
                fresh = self._connection(realm_id, rejected=conn.access_token)
                return self._limited(realm_id, fresh, fn)
        except QuickbooksException as exc:
            raise qbo_error(exc, timedelta(seconds=self.settings.qbo_throttle_retry_seconds)) from exc
        # Timeouts, refused connections (ours, or requests' in a token refresh): QBO may be back soon.
        except (HTTPError, requests.RequestException) as exc:
            raise ApplicationError(f"QBO unreachable: {exc.__class__.__name__}: {exc}",
                                   type="QboUnreachable") from exc

    def _limited(self, realm_id: str, conn: QboConnection, fn: Callable[[QuickBooks], T]) -> T:
        with self.limiter.slot(realm_id):
            return fn(self._client(realm_id, conn))

    def audited_save(self, realm_id: str, obj: Any, request_id: str, params: dict[str, str] | None = None) -> Any:
        """Save a python-quickbooks object with a requestid; the body is in the audit log before it is sent,
        and QBO's answer after. Returns the object as QBO stored it."""
        operation = "update" if _is_update(obj) else "create"  # the audit names the endpoint _save uses
        body = qbo_json(obj)
        stored = self._audited(realm_id, obj, operation, request_id, body,
                               lambda qb: _save(qb, obj, body, request_id, params))
        saved = type(obj).from_json(stored)
        obj.Id = saved.Id
        return saved

    def audited_void(self, realm_id: str, obj: Any) -> dict[str, Any]:
        """Void a transaction read fresh: QBO takes no requestid here, its SyncToken keeps a repeat from
        doing anything (5010)."""
        return self._audited(realm_id, obj, "void", f"void:{obj.Id}:{obj.SyncToken}", qbo_json(obj),
                             lambda qb: _void(qb, obj))

    def _audited(self, realm_id: str, obj: Any, operation: str, request_id: str, body: str,
                 send: Callable[[QuickBooks], dict[str, Any]]) -> dict[str, Any]:
        """`send` within the company's limits, audited: QBO's answer as it came (the audit keeps it so, not
        re-encoded from python-quickbooks' objects, which cost as much as encoding the body)."""
        info = activity.info() if activity.in_activity() else None
        entity = obj.qbo_object_name
        with self.engine.begin() as connection:  # Core: an ORM session per write cost more than the write
            audit_id = connection.execute(_SENT, {
                "realm_id": realm_id, "entity": entity, "operation": operation, "request_id": request_id,
                "body": body, "workflow_id": info.workflow_id if info else None,
                "activity_attempt": info.attempt if info else None}).inserted_primary_key[0]
        sent = False

        def sending(qb: QuickBooks) -> dict[str, Any]:
            nonlocal sent
            sent = True
            return send(qb)

        try:
            stored = self.call(realm_id, sending)
        except RealmBusy as busy:
            if not sent:  # held back by the company's limits before any request: QBO never got it
                self._forget_audit(audit_id)
            else:  # e.g. QBO refused the token, and the retry with a fresh one was held back
                self._finish_audit(audit_id, entity, operation, "error", error=str(busy))
            raise
        except Exception as exc:
            self._finish_audit(audit_id, entity, operation, "error", error=str(exc))
            raise
        self._finish_audit(audit_id, entity, operation, "ok", qbo_id=str(stored.get("Id") or obj.Id),
                           response=json.dumps(stored, cls=DecimalEncoder))
        return stored

    def sent_before(self, realm_id: str, request_id: str) -> bool:
        """Whether a write with this requestid ever went out to the company, as far as the audit log knows: its
        row is written before the request and dropped only when the company's limits held the write back before
        any request was sent."""
        with self.engine.connect() as connection:
            return connection.execute(_SENT_BEFORE, {"realm_id": realm_id, "request_id": request_id}).first() \
                is not None

    def _forget_audit(self, audit_id: int) -> None:
        with self.engine.begin() as connection:
            connection.execute(_FORGOTTEN, {"audit_id": audit_id})

    def _finish_audit(self, audit_id: int, entity: str, operation: str, status: str, qbo_id: str | None = None,
                      response: str | None = None, error: str | None = None) -> None:
        metrics.qbo_write(entity, operation, status)
        with self.engine.begin() as connection:
            connection.execute(_FINISHED, {"audit_id": audit_id, "status": status, "qbo_id": qbo_id,
                                           "response": response, "error": error, "finished_at": datetime.now(UTC)})
