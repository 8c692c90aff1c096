"""Settings refuse what would be unsafe in production: the sandbox's published secrets beside a real service."""

import pytest
from cryptography.fernet import Fernet
from pydantic import ValidationError

from config.settings import Settings

REAL_QBO = "https://quickbooks.api.intuit.com/v3"


def own_secrets() -> dict[str, object]:
    return {"secret_key": Fernet.generate_key().decode(), "crm_webhook_secrets": {"acme-austin": "s3cret-austin"},
            "inbound_email_secret": "s3cret-relay"}


def test_the_sandbox_defaults_are_fine_while_every_service_is_a_sandbox_on_loopback() -> None:
    assert Settings().qbo_api_url.startswith("http://127.0.0.1:")


def test_a_real_service_with_the_published_secrets_is_refused_naming_each_one() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(qbo_api_url=REAL_QBO)
    message = str(refused.value)
    for name in ("LEDGERFLOW_SECRET_KEY", "LEDGERFLOW_CRM_WEBHOOK_SECRETS", "LEDGERFLOW_INBOUND_EMAIL_SECRET",
                 "LEDGERFLOW_QBO_CLIENT_SECRET", "LEDGERFLOW_QBO_API_URL"):
        assert name in message
    assert "LEDGERFLOW_TWILIO_AUTH_TOKEN" not in message  # texts still go to the sandbox: its token is fine


def test_a_real_service_starts_once_its_secrets_and_ledgerflows_own_are_set() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(qbo_api_url=REAL_QBO, **own_secrets())
    assert "LEDGERFLOW_QBO_CLIENT_SECRET" in str(refused.value) and "SECRET_KEY" not in str(refused.value)
    settings = Settings(qbo_api_url=REAL_QBO, qbo_client_secret="intuit-app-secret", **own_secrets())
    assert settings.qbo_api_url == REAL_QBO
