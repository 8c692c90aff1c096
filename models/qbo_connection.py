"""A QuickBooks company's OAuth tokens. Refresh tokens rotate, so the newest one is always stored."""

from datetime import UTC, datetime

from sqlalchemy import Column, Engine
from sqlmodel import Field, SQLModel

from models.db import session_scope
from models.encrypted import EncryptedText


class QboConnection(SQLModel, table=True):
    __tablename__ = "qbo_connection"

    realm_id: str = Field(primary_key=True)
    access_token: str | None = Field(default=None, sa_column=Column(EncryptedText))
    refresh_token: str = Field(sa_column=Column(EncryptedText, nullable=False))
    access_token_expires_at: datetime | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def save_connection(engine: Engine, realm_id: str, refresh_token: str) -> None:
    """Store a company's refresh token, as the OAuth callback does; the access token is fetched on first use."""
    with session_scope(engine) as session:
        session.merge(QboConnection(realm_id=realm_id, refresh_token=refresh_token, access_token=None,
                                    access_token_expires_at=None))
