"""What the action plan's sending steps hand their activities, and what comes back. Templates are rendered
before these are built, so each carries the final text; none carries a secret (activities load provider
credentials from settings). The idempotency key is derived from the business key and the step, so a retried
or replayed step sends at most once (see activities/outbox.py for how)."""

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

# Carried by every email and webhook we send, so receivers (and the sandboxes) can tell a resend from a new one.
IDEMPOTENCY_HEADER = "X-Ledgerflow-Idempotency-Key"
SendKind = Literal["email", "text", "webhook", "sheet_row", "mailing", "clubready"]

_PHONE_PUNCTUATION = re.compile(r"[\s().\-]")


def e164(phone: str) -> str:
    """A phone number as E.164 (`+15125550123`): given so already, or as a 10-digit US number (with or without
    the leading 1 and the usual punctuation). Anything else is a ValueError: texting a guess is worse than
    not texting."""
    compact = _PHONE_PUNCTUATION.sub("", phone.strip())
    if compact.startswith("+") and not compact.startswith("+1"):
        if re.fullmatch(r"\+[2-9]\d{6,13}", compact):
            return compact
    else:
        digits = compact.removeprefix("+")
        digits = digits[1:] if len(digits) == 11 and digits.startswith("1") else digits
        if re.fullmatch(r"[2-9]\d{2}[2-9]\d{6}", digits):  # NANP: area code and exchange never start with 0/1
            return f"+1{digits}"
    raise ValueError(f"{phone!r} is not a phone number in E.164 or 10-digit US form")


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http(s) URL")
    return url


Phone = Annotated[str, AfterValidator(e164)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Key = Annotated[str, Field(min_length=1, max_length=255)]
AccountId = Annotated[str, Field(min_length=1, max_length=64)]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailMessage(_Shape):
    idempotency_key: Key
    account_id: AccountId
    to: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    subject: str = Field(max_length=998)  # RFC 5322's line limit
    text: str
    html: str | None = None
    reply_to: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s<>]+@[^@\s<>]+$")


class TextMessage(_Shape):
    idempotency_key: Key
    account_id: AccountId
    to: Phone
    body: str = Field(min_length=1, max_length=1600)  # Twilio's limit for one (concatenated) message


class WebhookCall(_Shape):
    """A plan's webhook step: sent as a form unless `headers` set a JSON Content-Type."""

    idempotency_key: Key
    account_id: AccountId
    url: HttpUrl
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, str] = {}
    secret_headers: dict[str, str] = {}  # header -> secret name; the value is looked up by the activity
    body: dict[str, str] = {}


class SheetRow(_Shape):
    """One row appended to a Google Sheet, cells in the order given."""

    idempotency_key: Key
    account_id: AccountId
    spreadsheet_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
    sheet: str = Field(min_length=1, max_length=100)
    values: list[str] = Field(min_length=1)


class Mailing(_Shape):
    """A physical mail piece through Mailbox Power: its template and the recipient's fields (name, address)."""

    idempotency_key: Key
    account_id: AccountId
    template_id: str = Field(min_length=1, max_length=64)
    recipient: dict[str, str]


class ClubReadyProspect(_Shape):
    """ClubReady's "New User Push": the contact as a prospect of one club (ClubReady's StoreId)."""

    idempotency_key: Key
    account_id: AccountId
    club_id: str = Field(min_length=1, max_length=32)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(default="", max_length=100)
    email: str = Field(default="", max_length=320)
    phone: str = Field(default="", max_length=32)


class Sent(_Shape):
    """A send that happened: by this call, or (`duplicate`) by an earlier attempt with the same key."""

    kind: SendKind
    idempotency_key: str
    provider_id: str | None  # Twilio's sid, the email's Message-ID, the sheet range written, ...
    sent_at: AwareDatetime
    duplicate: bool
