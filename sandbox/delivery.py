"""Outgoing webhooks from the sandboxes: POSTed from a background thread, retried with backoff until the
receiver answers 2xx, as real services do."""

import queue
import threading
import time
from collections.abc import Callable

import httpx

Signer = Callable[[bytes], dict[str, str]]


class WebhookDelivery:
    def __init__(self, attempts: int = 6, first_delay: float = 0.5) -> None:
        self.attempts = attempts
        self.first_delay = first_delay
        self.delivered: list[tuple[str, bytes, int]] = []  # (url, body, status) of each final answer
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str]]] = queue.Queue()
        threading.Thread(target=self._run, daemon=True).start()

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self._queue.put((url, body, headers))

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
