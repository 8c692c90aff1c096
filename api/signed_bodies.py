"""A signed JSON body as every webhook-style endpoint takes it: the HMAC over the raw bytes first (401), then
the body against its model (422 naming the field). Nothing is read from a body that is not signed."""

from typing import TypeVar

from fastapi import HTTPException, status
from pydantic import BaseModel, ValidationError

from models.crm_webhooks import SIGNATURE_HEADER, signature_matches

Body = TypeVar("Body", bound=BaseModel)


def signed_body(model: type[Body], raw: bytes, secret: str | None, signature: str | None) -> Body:
    if secret is None or not signature_matches(secret, raw, signature):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing or bad {SIGNATURE_HEADER}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                            error.errors(include_url=False, include_context=False, include_input=False)) from error
