"""Structured logs: one JSON object a line, with the Temporal context of the record where there is one.

    {"time": "2026-11-18T09:30:00.123Z", "level": "INFO", "logger": "temporalio.activity",
     "message": "lead L-1: created contact 42", "workflow_id": "lead:acme-austin:angi:L-1", "run_id": "...",
     "workflow_type": "LeadIntakeWorkflow", "activity_type": "find_or_create_contact", "attempt": 1,
     "account_id": "acme-austin"}

The context comes from the `temporal_activity` / `temporal_workflow` dicts the SDK's `activity.logger` and
`workflow.logger` put on a record, or, for any other logger called inside an activity, from the running
activity itself. The account (and franchisor) are read off the business-key workflow id
(`proposal:{account}:{proposal}`, `royalty:{franchisor}:{date}:{account}`, ...); `extra={"account_id": ...}`
on a call wins. Settings' secrets are SecretStr and print as stars; as a net under that, bearer tokens,
OAuth token fields and credential-looking query parameters are starred in every message.
"""

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from temporalio import activity, workflow

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Workflow ids whose second part is the franchisee's account (models/*: proposal_workflow_id, lead_workflow_id...).
_ACCOUNT_KEYED = frozenset({"proposal", "lead", "plan", "email", "collect", "refund", "ach", "autopay", "scheduled",
                            "reconcile"})
# A schedule starts its workflows as "{schedule's workflow id}-{scheduled time}".
_SCHEDULED_AT = re.compile(r"-\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z$")
_SECRETS = [
    (re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+"), r"\1***"),
    (re.compile(r"(?i)\b([\w-]*(?:token|secret|password|api[_-]?key)|authorization)([\"']?\s*[:=]\s*[\"']?)"
                r"[^\s\"',&}]+"), r"\1\2***"),
    (re.compile(r"(?i)([?&][\w.-]*(?:key|token|secret|password|signature|sig)=)[^&\s\"']+"), r"\1***"),
]
# Libraries that log tokens, request bodies or database rows (decrypted credentials among them) below WARNING:
# never below WARNING, whatever the level asked for.
QUIET_LOGGERS = ("oauthlib", "requests_oauthlib", "intuitlib", "sqlalchemy.engine")


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def business_context(workflow_id: str) -> dict[str, str]:
    """The account (and franchisor) a business-key workflow id names; {} for any other id."""
    kind, _, rest = _SCHEDULED_AT.sub("", workflow_id).partition(":")
    parts = rest.split(":")
    if kind in _ACCOUNT_KEYED and parts[0]:
        return {"account_id": parts[0]}
    if kind == "royalty" and parts[0]:  # royalty:{franchisor}:{date}, its franchisees' runs :{account} after it
        return {"franchisor_id": parts[0], **({"account_id": parts[2]} if len(parts) > 2 and parts[2] else {})}
    if kind == "royalty-nightly" and parts[0]:
        return {"franchisor_id": parts[0]}
    return {}


def temporal_context(record: logging.LogRecord) -> dict[str, Any]:
    """Workflow id, run id, types, attempt and account of the record, as far as they are known."""
    found: dict[str, Any] = {}
    details = getattr(record, "temporal_activity", None)
    if details is None and activity.in_activity():  # another logger, called inside an activity
        info = activity.info()
        details = {"workflow_id": info.workflow_id, "workflow_run_id": info.workflow_run_id,
                   "workflow_type": info.workflow_type, "activity_type": info.activity_type, "attempt": info.attempt}
    if isinstance(details, dict):
        found = {"workflow_id": details.get("workflow_id"), "run_id": details.get("workflow_run_id"),
                 "workflow_type": details.get("workflow_type"), "activity_type": details.get("activity_type"),
                 "attempt": details.get("attempt")}
    flow = getattr(record, "temporal_workflow", None)
    if isinstance(flow, dict):
        found = {"workflow_id": flow.get("workflow_id"), "run_id": flow.get("run_id"),
                 "workflow_type": flow.get("workflow_type"), "attempt": flow.get("attempt"),
                 **{k: flow[k] for k in ("update_id", "update_name") if k in flow}}
    if found.get("workflow_id"):
        found.update(business_context(str(found["workflow_id"])))
    for key in ("account_id", "franchisor_id"):
        if getattr(record, key, None) is not None:
            found[key] = str(getattr(record, key))
    return {k: v for k, v in found.items() if v is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ms), level, logger, message, the Temporal context, the exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace(
                "+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **temporal_context(record),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def quiet_libraries() -> None:
    """Hold the loggers that would print secrets, and those under them already made, at WARNING or above."""
    made = [name for name in logging.root.manager.loggerDict if name.startswith(tuple(f"{q}." for q in QUIET_LOGGERS))]
    for name in (*QUIET_LOGGERS, *made):
        logger = logging.getLogger(name)
        logger.setLevel(max(logging.WARNING, logger.getEffectiveLevel()))


def configure_logging(log_format: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """The process's logging: one handler on the root logger, JSON or plain text."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_libraries()
    if log_format == "json":  # the context is in the object's fields: not again at the end of each message
        activity.logger.activity_info_on_message = False
        workflow.logger.workflow_info_on_message = False
