"""The address the payment gateway posts an account's webhooks to. Stax signs nothing, so the address itself
carries a secret: a token derived from Ledgerflow's secret key and the account, checked on every post (and
the posts are only nudges: what they say is looked up at the gateway before anything is done)."""

import hashlib
import hmac

from config.settings import Settings

EVENT_HEADER = "stax-event-name"


def webhook_token(settings: Settings, account_id: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"gateway-webhook:{account_id}".encode(), hashlib.sha256).hexdigest()[:40]


def token_matches(settings: Settings, account_id: str, token: str) -> bool:
    return hmac.compare_digest(webhook_token(settings, account_id), token)


def webhook_path(settings: Settings, account_id: str) -> str:
    """The path (under the API's base URL) to give the gateway as the account's webhook URL."""
    return f"/webhooks/gateway/{account_id}/{webhook_token(settings, account_id)}"
