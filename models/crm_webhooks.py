"""How a CRM signs the webhooks it sends Ledgerflow: `X-Ledgerflow-Signature: sha256=<hex HMAC-SHA256 of the
raw body with the account's webhook secret>`. The CRM sandbox signs with this; the API verifies with it."""

import hashlib
import hmac

SIGNATURE_HEADER = "X-Ledgerflow-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(sign(secret, body), signature)
