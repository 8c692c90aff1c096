"""API keys for the read side of the HTTP API. A key belongs to one franchisee account (it reads that account)
or to a franchisor (it reads every one of its franchisees). Only a SHA-256 of the key is stored: a leaked
database does not leak working keys. The key itself is shown once, when it is made."""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Literal, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from models.accounts import Franchisee, Franchisor
from models.db import session_scope

Scope = Literal["franchisor", "franchisee"]
KEY_PREFIX = "lf_"
PREFIX_LENGTH = 8  # "lf_" and 5 random characters: enough to tell keys apart in a list, useless to guess with


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    account_id: str = Field(index=True)  # a franchisee's account id, or a franchisor's id (see scope)
    scope: str  # Scope; a plain column since SQLModel cannot map a Literal
    prefix: str = Field(unique=True)
    key_hash: str = Field(unique=True)  # sha256 hex of the whole key
    label: str = ""
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    revoked_at: datetime | None = None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def scope_of(session: Session, account_id: str) -> Scope:
    """Franchisor ids and franchisee account ids are separate namespaces, so an id found in both is refused
    rather than guessed."""
    is_franchisor = session.get(Franchisor, account_id) is not None
    is_franchisee = session.get(Franchisee, account_id) is not None
    if is_franchisor and is_franchisee:
        raise ValueError(f"{account_id!r} is both a franchisor and a franchisee account: refusing to guess")
    if is_franchisor:
        return "franchisor"
    if is_franchisee:
        return "franchisee"
    raise ValueError(f"unknown account or franchisor {account_id!r}")


def create_api_key(engine: Engine, account_id: str, label: str = "") -> str:
    """Make a key for a franchisee account or a franchisor and return it: the only time it is ever seen."""
    for _ in range(5):  # a clash of the 5 random prefix characters is rare; draw again when it happens
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with session_scope(engine) as session:
                scope = scope_of(session, account_id)
                session.add(ApiKey(account_id=account_id, scope=scope, prefix=key[:PREFIX_LENGTH],
                                   key_hash=hash_key(key), label=label))
            return key
        except IntegrityError:
            continue
    raise RuntimeError("could not draw an unused key prefix")


def list_api_keys(engine: Engine, account_id: str | None = None) -> list[ApiKey]:
    """Every key (revoked ones too, for the record), oldest first; only one account's when asked."""
    with Session(engine) as session:
        query = select(ApiKey).order_by(col(ApiKey.id))
        if account_id is not None:
            query = query.where(ApiKey.account_id == account_id)
        return list(session.exec(query))


Key = TypeVar("Key", bound=SQLModel)


def revoke_by_prefix(engine: Engine, table: type[Key], prefix: str) -> Key | None:
    """Revoke the key with this prefix in `table` (API keys, lead keys); None when there is none. Revoking
    twice keeps the first time."""
    with session_scope(engine) as session:
        key = session.exec(select(table).where(table.prefix == prefix)).first()  # type: ignore[attr-defined]
        if key is not None and key.revoked_at is None:  # type: ignore[attr-defined]
            key.revoked_at = datetime.now(UTC)  # type: ignore[attr-defined]
            session.add(key)
        return key


def revoke_api_key(engine: Engine, prefix: str) -> ApiKey | None:
    return revoke_by_prefix(engine, ApiKey, prefix)


def authorize(engine: Engine, key: str) -> ApiKey | None:
    """The live ApiKey this key is, or None. The row is found by its public prefix and the hashes compared in
    constant time, so the answer's timing says nothing about how much of a guess was right."""
    with Session(engine) as session:
        found = session.exec(select(ApiKey).where(ApiKey.prefix == key[:PREFIX_LENGTH])).first()
    if found is None or not hmac.compare_digest(found.key_hash, hash_key(key)):
        return None
    return None if found.revoked_at is not None else found
