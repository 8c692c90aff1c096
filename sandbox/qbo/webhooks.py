"""Webhooks from the QBO sandbox: CloudEvents arrays signed with `intuit-signature`, as Intuit sends them."""

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

from sandbox.delivery import WebhookDelivery
from sandbox.qbo.wire import dumps


def signature(verifier_token: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()).decode()


class WebhookSender:
    def __init__(self, url: str, verifier_token: str, delivery: WebhookDelivery | None = None) -> None:
        self.url = url
        self.verifier_token = verifier_token
        self.delivery = delivery or WebhookDelivery()

    def notify(self, realm_id: str, entity: str, object_id: str, operation: str) -> None:
        body = dumps([{
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "intuit.sandbox",
            "type": f"qbo.{entity.lower()}.{operation}.v1",
            "time": datetime.now(UTC).isoformat(),
            "intuitentityid": object_id,
            "intuitaccountid": realm_id,
            "data": {},
        }]).encode()
        self.delivery.send(self.url, body, {"intuit-signature": signature(self.verifier_token, body),
                                            "Content-Type": "application/json"})
