"""The keys lead sources post with: one per account and channel (Angi's unique endpoint, a Thumbtack or Zapier
endpoint, a web form's `web_key`), optionally naming the CRM lead source its leads get (a lead-source key starts
that source's plan; the account's own web key the default plan). Angi may add an `x-api-key`, kept beside the
key. Only SHA-256 digests are stored; a key is shown once, when it is made. A franchisor's Thumbtack key serves
every franchisee its business ids are routed to (config/network.yaml, `leads.thumbtack_business_ids`)."""

import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from models.api_keys import PREFIX_LENGTH, hash_key, revoke_by_prefix, scope_of
from models.db import session_scope
from models.leads import LeadChannel

LEAD_KEY_PREFIX = "lk_"


class LeadKey(SQLModel, table=True):
    __tablename__ = "lead_key"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True)  # a franchisee's account, or a franchisor (Thumbtack parent keys)
    scope: str  # models.api_keys.Scope
    channel: str  # LeadChannel
    lead_source: str | None = None  # the CRM lead source's name; None: the channel's own (web form: none)
    prefix: str = Field(unique=True)
    key_hash: str = Field(unique=True)
    api_key_hash: str | None = None  # Angi's optional x-api-key, when the account set one
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    revoked_at: datetime | None = None


def create_lead_key(engine: Engine, account_id: str, channel: LeadChannel, lead_source: str | None = None,
                    api_key: str | None = None) -> str:
    """Make a key and return it (the only time it is seen). Only Thumbtack keys may belong to a franchisor."""
    for _ in range(5):
        key = LEAD_KEY_PREFIX + secrets.token_urlsafe(24)
        try:
            with session_scope(engine) as session:
                scope = scope_of(session, account_id)
                if scope == "franchisor" and channel is not LeadChannel.THUMBTACK:
                    raise ValueError("only a Thumbtack key may belong to a franchisor (its sub-accounts share it)")
                session.add(LeadKey(account_id=account_id, scope=scope, channel=channel.value,
                                    lead_source=lead_source, prefix=key[:PREFIX_LENGTH], key_hash=hash_key(key),
                                    api_key_hash=hash_key(api_key) if api_key else None))
            return key
        except IntegrityError:
            continue
    raise RuntimeError("could not draw an unused key prefix")


def find_lead_key(engine: Engine, key: str, channel: LeadChannel) -> LeadKey | None:
    """The live key of this channel, or None; compared in constant time, as API keys are."""
    with Session(engine) as session:
        found = session.exec(select(LeadKey).where(LeadKey.prefix == key[:PREFIX_LENGTH])).first()
    if found is None or not hmac.compare_digest(found.key_hash, hash_key(key)):
        return None
    return found if found.revoked_at is None and found.channel == channel.value else None


def api_key_matches(lead_key: LeadKey, api_key: str | None) -> bool:
    """Angi's `x-api-key`: required only when the key was made with one."""
    if lead_key.api_key_hash is None:
        return True
    return api_key is not None and hmac.compare_digest(lead_key.api_key_hash, hash_key(api_key))


def list_lead_keys(engine: Engine, account_id: str) -> list[LeadKey]:
    with Session(engine) as session:
        return list(session.exec(select(LeadKey).where(LeadKey.account_id == account_id).order_by(col(LeadKey.id))))


def revoke_lead_key(engine: Engine, prefix: str) -> LeadKey | None:
    return revoke_by_prefix(engine, LeadKey, prefix)
