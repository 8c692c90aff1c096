"""The access log without the secrets some paths carry. A lead source posts to a URL holding the account's lead
key (`/leads/angi/{key}`: Angi, Thumbtack and Zapier are given the URL, not a header to send), and the gateway
to one holding the account's webhook token (`/webhooks/gateway/{account}/{token}`). uvicorn logs every request's
path at INFO; this filter stars those parts before any handler sees the record."""

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
_SECRET_PATHS = [
    (re.compile(r"(/leads/[^/?]+/)[^/?]+"), r"\1***"),
    (re.compile(r"(/webhooks/gateway/[^/?]+/)[^/?]+"), r"\1***"),
]


def masked_path(path: str) -> str:
    for pattern, replacement in _SECRET_PATHS:
        path = pattern.sub(replacement, path)
    return path


class MaskSecretPaths(logging.Filter):
    """uvicorn's access record is `'%s - "%s %s HTTP/%s" %d'` with (client, method, path, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            args = list(record.args)
            args[2] = masked_path(args[2])
            record.args = tuple(args)
        return True


def mask_secret_paths() -> None:
    """Put the filter on uvicorn's access logger, once however many apps a process creates."""
    access = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, MaskSecretPaths) for f in access.filters):
        access.addFilter(MaskSecretPaths())
