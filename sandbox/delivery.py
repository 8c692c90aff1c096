"""Outgoing webhooks from the sandboxes: POSTed from a background thread, retried with backoff until the
receiver answers 2xx, as real services do."""

import json
import queue
import threading
import time
from typing import Any

import httpx

from models.crm_webhooks import SIGNATURE_HEADER, sign


class WebhookDelivery:
    def __init__(self, attempts: int = 6, first_delay: float = 0.5) -> None:
        self.attempts = attempts
        self.first_delay = first_delay
        self.delivered: list[tuple[str, bytes, int]] = []  # (url, body, status) of each final answer
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str]]] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self._queue.put((url, body, headers))

    def delivered_json(self, url: str | None = None) -> list[dict[str, Any]]:
        """Every JSON webhook delivered so far (to `url` only, when given), oldest first, with the receiver's
        final answer (0: none)."""
        return [{"url": to, "status": status, "body": json.loads(body)}
                for to, body, status in list(self.delivered) if url is None or to == url]

    def send_signed(self, url: str, payload: dict[str, Any], secret: str) -> None:
        """JSON signed as the CRM signs its webhooks (`X-Ledgerflow-Signature`): what the CRM, the inbound-mail
        relay and the capture relay send Ledgerflow."""
        body = json.dumps(payload).encode()
        self.send(url, body, {SIGNATURE_HEADER: sign(secret, body), "Content-Type": "application/json"})

    def _run(self) -> None:
        while True:
            url, body, headers = self._queue.get()
            status = 0
            for attempt in range(self.attempts):
                try:
                    status = httpx.post(url, content=body, headers=headers, timeout=10).status_code
                    if status < 300 or status in (401, 404, 413, 422):  # refused for good: do not hammer
                        break
                except httpx.HTTPError:
                    status = 0
                time.sleep(min(self.first_delay * 2**attempt, 30))
            self.delivered.append((url, body, status))
