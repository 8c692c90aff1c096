"""python-quickbooks clients per QBO company: fresh OAuth tokens, a timeout on every call, every write
audited, and QBO's faults turned into retryable or final activity errors."""

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlparse

from intuitlib.client import AuthClient
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.exceptions import AuthorizationException, QuickbooksException
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from config.settings import Settings
from models.audit import QboAuditLog
from models.db import session_scope
from models.qbo_connection import QboConnection

T = TypeVar("T")
# Codes that mean the request itself is wrong: retrying cannot help.
FINAL_CODES = {610, 2010, 2020, 2500, 4000, 6000, 6070}
TOKEN_MARGIN = timedelta(minutes=5)
THROTTLE_WAIT = timedelta(seconds=60)


class _QuickBooks(QuickBooks):
    """python-quickbooks pointed at a configurable base URL, with a timeout it does not have by itself."""

    base_url = ""
    timeout_seconds = 30.0

    @property
    def api_url(self) -> str:
        return self.base_url

    def process_request(self, request_type: str, url: str, headers: Any = "", params: Any = "",
                        data: Any = "") -> Any:
        headers.update({"Authorization": "Bearer " + self.session.access_token})
        return self.session.request(request_type, url, headers=headers, params=params, data=data,
                                    timeout=self.timeout_seconds)


def qbo_error(exc: QuickbooksException) -> ApplicationError:
    """The activity error for a QBO fault: final for a bad request, retryable for everything else."""
    code = int(exc.error_code or 0)
    detail = f"QBO {code}: {exc.message} {exc.detail}".strip()
    if "ThrottleExceeded" in str(exc.message) or "ThrottleExceeded" in str(exc.detail):
        return ApplicationError(detail, type="QboThrottled", next_retry_delay=THROTTLE_WAIT)
    if code in FINAL_CODES:
        return ApplicationError(detail, type="QboValidationError", non_retryable=True)
    return ApplicationError(detail, type=f"QboError{code}")


class QboConnector:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self._refresh_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        if settings.qbo_allow_insecure_transport and urlparse(settings.qbo_api_url).hostname in (
            "127.0.0.1", "localhost", "::1"
        ):
            # requests-oauthlib refuses plain http; the loopback sandbox speaks nothing else.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"

    # -- tokens --------------------------------------------------------------------------------------
    def _auth_client(self, refresh_token: str, access_token: str | None = None) -> AuthClient:
        return AuthClient(
            client_id=self.settings.qbo_client_id,
            client_secret=self.settings.qbo_client_secret.get_secret_value(),
            redirect_uri=self.settings.qbo_redirect_uri,
            environment=self.settings.qbo_discovery_url,
            access_token=access_token,
            refresh_token=refresh_token,
        )

    def _lock_for(self, realm_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._refresh_locks.setdefault(realm_id, threading.Lock())

    def _fresh_connection(self, realm_id: str, force_refresh: bool = False) -> QboConnection:
        """The company's connection with a usable access token. Refresh tokens rotate, so refreshes of one
        company are serialised and the newest token is stored before it is used."""
        with self._lock_for(realm_id):
            with Session(self.engine) as session:
                conn = session.get(QboConnection, realm_id)
            if conn is None:
                raise ApplicationError(f"QuickBooks company {realm_id} is not connected",
                                       type="QboNotConnected", non_retryable=True)
            expires = conn.access_token_expires_at
            if expires is not None and expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            now = datetime.now(UTC)
            if not force_refresh and conn.access_token and expires and expires - TOKEN_MARGIN > now:
                return conn
            auth = self._auth_client(conn.refresh_token)
            try:
                auth.refresh()
            except AuthClientError as exc:
                raise ApplicationError(f"QuickBooks refused to refresh the token of company {realm_id}: "
                                       f"{exc.status_code} {exc.content!r}", type="QboRefreshFailed") from exc
            conn.access_token = auth.access_token
            conn.refresh_token = auth.refresh_token
            conn.access_token_expires_at = now + timedelta(seconds=int(auth.expires_in or 3600))
            conn.updated_at = now
            with session_scope(self.engine) as session:
                session.merge(conn)
            return conn

    def client(self, realm_id: str) -> QuickBooks:
        conn = self._fresh_connection(realm_id)
        auth = self._auth_client(conn.refresh_token, conn.access_token)
        qb = _QuickBooks(auth_client=auth, refresh_token=conn.refresh_token, company_id=realm_id,
                         minorversion=self.settings.qbo_minor_version, use_decimal=True)
        qb.base_url = self.settings.qbo_api_url.rstrip("/")
        qb.timeout_seconds = self.settings.qbo_http_timeout_seconds
        return qb

    # -- calls ---------------------------------------------------------------------------------------
    def call(self, realm_id: str, fn: Callable[[QuickBooks], T]) -> T:
        """Run one QBO call; a rejected token is refreshed once and the call retried."""
        try:
            return fn(self.client(realm_id))
        except AuthorizationException:
            self._fresh_connection(realm_id, force_refresh=True)
            try:
                return fn(self.client(realm_id))
            except QuickbooksException as exc:
                raise qbo_error(exc) from exc
        except QuickbooksException as exc:
            raise qbo_error(exc) from exc

    def audited_save(self, realm_id: str, obj: Any, request_id: str) -> Any:
        """Save a python-quickbooks object with a requestid, writing the body to the audit log first."""
        info = activity.info() if activity.in_activity() else None
        audit = QboAuditLog(
            realm_id=realm_id,
            entity=obj.qbo_object_name,
            operation="update" if getattr(obj, "Id", None) else "create",
            request_id=request_id,
            body=obj.to_json(),
            workflow_id=info.workflow_id if info else None,
            activity_attempt=info.attempt if info else None,
        )
        with session_scope(self.engine) as session:
            session.add(audit)
        try:
            saved = self.call(realm_id, lambda qb: obj.save(qb=qb, request_id=request_id))
        except Exception as exc:
            self._finish_audit(audit, "error", error=str(exc))
            raise
        self._finish_audit(audit, "ok", qbo_id=str(saved.Id))
        return saved

    def _finish_audit(self, audit: QboAuditLog, status: str, qbo_id: str | None = None,
                      error: str | None = None) -> None:
        audit.status, audit.qbo_id, audit.error = status, qbo_id, error
        audit.finished_at = datetime.now(UTC)
        with session_scope(self.engine) as session:
            session.merge(audit)
