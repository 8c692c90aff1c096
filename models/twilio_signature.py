"""Twilio's request signature (`X-Twilio-Signature`): base64 of the HMAC-SHA1, keyed with the account's auth
token, of the full URL Twilio called followed by each POST parameter's name and value, sorted by name. The
SMS sandbox signs its inbound webhooks with this; the API verifies inbound SMS with it."""

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

SIGNATURE_HEADER = "X-Twilio-Signature"


Params = Mapping[str, str] | Iterable[tuple[str, str]]


def twilio_signature(url: str, params: Params, auth_token: str) -> str:
    """`params` as a mapping, or as (name, value) pairs when a name repeats (all its values are signed)."""
    pairs = params.items() if isinstance(params, Mapping) else params
    payload = url + "".join(name + value for name, value in sorted(pairs))
    return base64.b64encode(hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()).decode()


def signature_matches(url: str, params: Params, auth_token: str, signature: str | None) -> bool:
    return signature is not None and hmac.compare_digest(twilio_signature(url, params, auth_token), signature)
