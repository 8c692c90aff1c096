"""Every URL, port, credential and tunable of Ledgerflow: the one place that reads the environment."""

import sys
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_VENV_BIN = Path(sys.executable).parent
_CONFIG_DIR = Path(__file__).parent
# The secrets each outside service's URL brings with it: their defaults are the sandboxes', published here.
_SECRETS_OF_SERVICE = {
    "qbo_api_url": ("qbo_client_secret",),
    "sms_api_url": ("twilio_auth_token",),
    "sheets_api_url": ("sheets_api_token",),
    "mailbox_power_api_url": ("mailbox_power_api_key",),
    "clubready_api_url": ("clubready_api_key",),
    "crm_api_url": (),
    "gateway_api_url": (),
}
# Ledgerflow's own secrets: refused at their defaults as soon as any outside service is a real one.
_OWN_SECRETS = ("secret_key", "crm_webhook_secrets", "inbound_email_secret")


def on_loopback(url: str) -> bool:
    """The URL is a sandbox's on this machine (the only place plain http and the published secrets belong)."""
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", env_file=".env", extra="ignore")

    # Local state of the embedded stack (SQLite files, server logs).
    data_dir: Path = Path(".data")
    database_url: str = "sqlite:///.data/ledgerflow.db"
    # Fernet key (urlsafe base64, 32 bytes) for tokens stored in the DB. The default is for the sandbox only.
    secret_key: SecretStr = SecretStr("bGVkZ2VyZmxvdy1zYW5kYm94LW9ubHktZGV2LWtleSE=")

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    temporal_cli: Path = _VENV_BIN / "temporal"
    temporal_test_server: Path = _VENV_BIN / "temporal-test-server"
    task_queue: str = "ledgerflow"
    worker_activity_threads: int = 20
    # Activity tasks a worker takes at once: it runs `worker_activity_threads` of them at a time and the rest wait
    # in the worker. Temporal hands a workflow's next activity straight back to the worker that completed the
    # workflow task (eager dispatch) only when that worker has a free slot: with slots = threads, every slot was
    # taken under load and each activity went through Temporal's task queue instead, written to its database and
    # read back (server CPU per 8-activity workflow 107 against 62 ms, bench/README.md). Bounded, so a task
    # waits seconds, not minutes, of its start-to-close time in the worker.
    worker_activity_slots: int = 100
    # Workflow tasks are pure Python on one interpreter lock: more at once only slows each (the SDK's default of
    # 100 made a burst of new runs take over 5 s a task, past Temporal's 10 s task timeout, and retry).
    worker_workflow_tasks: int = 10
    # The worker's Prometheus endpoint (GET http://{this}/metrics): the SDK's metrics and Ledgerflow's counters
    # (activities/metrics.py). Off when empty; e.g. "127.0.0.1:9464", or "0.0.0.0:9464" for a scraper elsewhere.
    # One address per process: two workers on one machine need two addresses.
    metrics_bind_address: str = ""
    # Logs: "json" is one JSON object a line (config/log_format.py), "text" the plain format.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"

    # HTTP API (the front door)
    # Its address as callers outside reach it, when a proxy stands in front ("https://hooks.example.com"):
    # Twilio signs the URL it called, which the front door behind the proxy cannot see. Empty: the URL as served.
    api_public_url: str = ""
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_max_body_bytes: int = 256 * 1024  # a CRM event is a few KiB; anything this big is refused with 413

    # CRM webhooks: the HMAC-SHA256 secret per CRM account. The defaults sign the sandbox's demo accounts only.
    crm_webhook_secrets: dict[str, SecretStr] = {
        "acme-austin": SecretStr("sandbox-webhook-secret-austin"),
        "acme-denver": SecretStr("sandbox-webhook-secret-denver"),
    }

    # The CRM (ClientTether v2): the sandbox emulator on crm_sandbox_port unless the URL is given. Each
    # account's keys live encrypted in the database (models/crm_credentials.py).
    crm_sandbox_port: int = 8720
    crm_api_url: str = ""
    crm_http_timeout_seconds: float = 10.0
    crm_retries: int = 3

    # The payment gateway (Stax): the sandbox emulator on gateway_sandbox_port unless the URL is given. Each
    # merchant account's API key lives encrypted in the database (models/gateway_credentials.py).
    gateway_sandbox_port: int = 8730
    gateway_api_url: str = ""
    gateway_http_timeout_seconds: float = 30.0
    gateway_retries: int = 2  # within one activity attempt, for timeouts and 5xx only; Temporal retries after
    # An ACH debit's status is looked at this often until it settles and its return window passes; the gateway's
    # webhooks (POST /webhooks/gateway/{account}/{token}) wake the watch sooner.
    ach_poll_interval: timedelta = timedelta(hours=12)
    # How long POST /accounts/{a}/payments waits for the charge's outcome before answering 202 (still going).
    payment_answer_wait_seconds: float = 20.0

    # Messaging and partner calls of action plans: email over SMTP, texts through Twilio's API, Google Sheets,
    # Mailbox Power, ClubReady. The sandboxes (python -m sandbox.messaging, python -m sandbox.partners) stand in
    # unless the hosts and URLs are given; the secrets' defaults are the sandboxes' own.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_from: str = "Ledgerflow <no-reply@ledgerflow.local>"
    smtp_username: str = ""  # no AUTH when empty (the sandbox)
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = False
    sms_sandbox_port: int = 8740
    sms_api_url: str = ""  # Twilio: https://api.twilio.com
    twilio_account_sid: str = "AC00000000000000000000000000sandbox"
    twilio_auth_token: SecretStr = SecretStr("sandbox-twilio-auth-token")
    twilio_from_number: str = "+15125550100"
    partners_sandbox_port: int = 8750
    sheets_api_url: str = ""  # https://sheets.googleapis.com
    sheets_api_token: SecretStr = SecretStr("sandbox-sheets-token")  # an OAuth access token (Bearer)
    mailbox_power_api_url: str = ""
    mailbox_power_api_key: SecretStr = SecretStr("sandbox-mailbox-power-key")
    clubready_api_url: str = ""  # https://www.clubready.com
    clubready_api_key: SecretStr = SecretStr("sandbox-clubready-key")
    # One provider call's limit (per network operation for SMTP). An outbox claim younger than three of these
    # may belong to an attempt still sending, so a retry waits it out (activities/outbox.py).
    messaging_http_timeout_seconds: float = 10.0

    # QuickBooks Online: the sandbox emulator on qbo_sandbox_port unless the URLs are given.
    qbo_sandbox_port: int = 8710
    qbo_api_url: str = ""
    qbo_discovery_url: str = ""
    qbo_client_id: str = "ledgerflow-sandbox-client"
    qbo_client_secret: SecretStr = SecretStr("ledgerflow-sandbox-secret")
    qbo_redirect_uri: str = "http://127.0.0.1:8000/qbo/callback"
    qbo_minor_version: int = 75
    qbo_http_timeout_seconds: float = 30.0
    # One QBO activity's time limit: a worker that dies mid-call has its activity run elsewhere after this.
    qbo_activity_timeout: timedelta = timedelta(minutes=2)
    # How long to wait after QBO's 429 before trying again: Intuit advises 60 seconds.
    qbo_throttle_retry_seconds: float = 60.0
    # Plain-http OAuth is refused by requests-oauthlib unless allowed; allow it only for a loopback sandbox.
    qbo_allow_insecure_transport: bool = True

    # Network configuration: franchisor, franchisees, sales-cycle mapping.
    network_file: Path = _CONFIG_DIR / "network.yaml"
    # Action plans: every *.yaml here is a plan; a plan that does not validate is never enrolled.
    plans_dir: Path = _CONFIG_DIR / "plans"
    # Credentials plans' webhook steps send (secret_headers): name -> value, as JSON in LEDGERFLOW_PLAN_SECRETS.
    plan_secrets: dict[str, SecretStr] = {}
    # The inbound-mail relay signs each email it posts to /inbound/email with this (HMAC-SHA256, as CRM webhooks).
    inbound_email_secret: SecretStr = SecretStr("sandbox-inbound-email-secret")
    # Each account's capture address is capture+{account_id}@ this domain (models/captured_emails.py); the
    # parsed-mail relay posts what reaches it to /inbound/email-capture, signed with inbound_email_secret.
    email_capture_domain: str = "capture.ledgerflow.test"
    # A lead's workflow stays open this long after its last delivery, so a lead sent again at once (Angi's
    # email parser, a double post) is handled by the same run, in order.
    lead_settle_time: timedelta = timedelta(seconds=30)

    # Workflows
    proposal_idle_timeout: timedelta = timedelta(days=30)
    # A proposal step stopped by a final QBO fault (a bad item, a missing account) is tried again this often.
    proposal_stuck_retry_interval: timedelta = timedelta(hours=1)
    # Reconciliation reads each account's CRM changes this often: the safety net under the webhooks.
    reconcile_every: timedelta = timedelta(hours=6)
    # How long a franchisee's royalty check may keep failing on QBO outages before the night's run reports it
    # failed (it stays due, and the next run writes it).
    royalty_check_patience: timedelta = timedelta(hours=2)

    @model_validator(mode="after")
    def _sandbox_urls(self) -> "Settings":
        self.crm_api_url = self.crm_api_url or f"http://127.0.0.1:{self.crm_sandbox_port}"
        self.gateway_api_url = self.gateway_api_url or f"http://127.0.0.1:{self.gateway_sandbox_port}"
        self.sms_api_url = self.sms_api_url or f"http://127.0.0.1:{self.sms_sandbox_port}"
        partners = f"http://127.0.0.1:{self.partners_sandbox_port}"
        self.sheets_api_url = self.sheets_api_url or partners
        self.mailbox_power_api_url = self.mailbox_power_api_url or partners
        self.clubready_api_url = self.clubready_api_url or partners
        sandbox = f"http://127.0.0.1:{self.qbo_sandbox_port}"
        self.qbo_api_url = self.qbo_api_url or f"{sandbox}/v3"
        self.qbo_discovery_url = self.qbo_discovery_url or f"{sandbox}/.well-known/openid_configuration"
        return self

    @model_validator(mode="after")
    def _no_sandbox_secret_outside_the_sandbox(self) -> "Settings":
        """A default secret is in this file for anyone to read: with a real service, it would sign webhooks or
        decrypt stored tokens for whoever has the source. Refuse to start instead."""
        real = [name for name in _SECRETS_OF_SERVICE if not on_loopback(getattr(self, name))]
        if not real:
            return self
        named = [*_OWN_SECRETS, *(secret for service in real for secret in _SECRETS_OF_SERVICE[service])]
        defaults = [name for name in named
                    if getattr(self, name) == type(self).model_fields[name].get_default(call_default_factory=True)]
        if defaults:
            raise ValueError(f"{', '.join('LEDGERFLOW_' + n.upper() for n in defaults)} still hold the sandbox's "
                             f"published defaults while {', '.join('LEDGERFLOW_' + n.upper() for n in real)} point "
                             "at real services: set your own")
        return self

    @property
    def temporal_ui_url(self) -> str:
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @property
    def activity_slots(self) -> int:
        """The worker's activity slots: never fewer than its threads, which would leave threads idle."""
        return max(self.worker_activity_slots, self.worker_activity_threads)


@lru_cache
def get_settings() -> Settings:
    return Settings()
