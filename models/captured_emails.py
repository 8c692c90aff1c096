"""Mail sent to an account's capture address (the system BCC address staff copy on their own emails, and
that contacts' replies reach), as the parsed-mail webhook posts it: the SMTP sink in the sandbox, a
parsed-mail relay in production. Signed `X-Ledgerflow-Signature` like the CRM's webhooks."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

CAPTURE_LOCAL_PART = "capture+"  # capture+{account_id}@{settings.email_capture_domain}


def capture_address(account_id: str, domain: str) -> str:
    return f"{CAPTURE_LOCAL_PART}{account_id}@{domain}"


def bare_address(value: str) -> str:
    """"Dana Reyes <Dana@Example.com>" -> "dana@example.com"."""
    return value.rsplit("<", 1)[-1].rstrip(">").strip().lower()


class CapturedMail(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    message_id: str = Field(min_length=1, max_length=998)
    sender: str = Field(alias="from", min_length=3, max_length=320)
    to: list[str] = Field(default=[], max_length=500)
    cc: list[str] = Field(default=[], max_length=500)
    # The envelope's RCPT TO: the only place a BCC (the capture address) shows.
    recipients: list[str] = Field(default=[], max_length=500)
    subject: str = Field(default="", max_length=998)
    text: str = Field(default="", max_length=100_000)
    sent_at: datetime | None = None

    @field_validator("to", "cc", "recipients")
    @classmethod
    def _bare(cls, addresses: list[str]) -> list[str]:
        return [bare_address(a) for a in addresses if a.strip()]

    @property
    def sender_address(self) -> str:
        return bare_address(self.sender)

    def capture_accounts(self, domain: str) -> list[str]:
        """The accounts whose capture address the mail was sent to (usually one)."""
        suffix = "@" + domain.lower()
        return sorted({a[len(CAPTURE_LOCAL_PART):-len(suffix)] for a in [*self.recipients, *self.to, *self.cc]
                       if a.startswith(CAPTURE_LOCAL_PART) and a.endswith(suffix)})
