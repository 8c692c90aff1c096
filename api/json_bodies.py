"""A request's JSON object, read the one way every endpoint that takes unsigned JSON reads it."""

import json
from typing import Any

from fastapi import HTTPException, Request, status


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or 422."""
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"body is not JSON: {error}") from error
    if not isinstance(body, dict):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "body must be a JSON object")
    return body
