"""A column type that stores secrets (OAuth tokens, API keys) encrypted at rest with Fernet."""

from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from config.settings import get_settings


def _fernet() -> Fernet:
    return Fernet(get_settings().secret_key.get_secret_value().encode())


class EncryptedText(TypeDecorator[str]):
    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else _fernet().encrypt(value.encode()).decode()

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else _fernet().decrypt(value.encode()).decode()
