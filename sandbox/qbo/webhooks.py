"""Webhooks from the sandbox: CloudEvents arrays signed with `intuit-signature`, sent from a background
thread and retried, as Intuit does."""

import base64
import hashlib
import hmac
import queue
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox.qbo.wire import dumps


def signature(verifier_token: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


class WebhookSender:
    def __init__(self, url: str, verifier_token: str, attempts: int = 5) -> None:
        self.url = url
        self.verifier_token = verifier_token
        self.attempts = attempts
        self._queue: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def notify(self, realm_id: str, entity: str, object_id: str, operation: str) -> None:
        self._queue.put([{
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "intuit.sandbox",
            "type": f"qbo.{entity.lower()}.{operation}.v1",
            "time": datetime.now(UTC).isoformat(),
            "intuitentityid": object_id,
            "intuitaccountid": realm_id,
            "data": {},
        }])

    def _run(self) -> None:
        while True:
            events = self._queue.get()
            body = dumps(events).encode()
            headers = {"intuit-signature": signature(self.verifier_token, body), "Content-Type": "application/json"}
            for attempt in range(self.attempts):
                try:
                    if httpx.post(self.url, content=body, headers=headers, timeout=10).status_code < 300:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(min(2**attempt, 30))
